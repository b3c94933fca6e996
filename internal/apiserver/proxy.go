package apiserver

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-sh/skiff/internal/registry"
)

// proxyName is the name segment of a pods/proxy or services/proxy URL:
// [scheme:]name[:port], as upstream's SplitSchemeNamePort reads it.
type proxyName struct{ scheme, name, port string }

func parseProxyName(id string) (proxyName, bool) {
	parts := strings.Split(id, ":")
	var p proxyName
	switch len(parts) {
	case 1:
		p.name = parts[0]
	case 2:
		p.name, p.port = parts[0], parts[1]
	case 3:
		p.scheme, p.name, p.port = parts[0], parts[1], parts[2]
		if p.scheme != "http" && p.scheme != "https" {
			return p, false
		}
	default:
		return p, false
	}
	return p, p.name != ""
}

// podProxyTarget is where pods/proxy for pod goes: the pod's IP and the
// named port, else its first declared container port, else none (80).
func podProxyTarget(pod *corev1.Pod, p proxyName) (*url.URL, error) {
	port := p.port
	if port == "" {
	containers:
		for _, c := range pod.Spec.Containers {
			for _, cp := range c.Ports {
				port = strconv.Itoa(int(cp.ContainerPort))
				break containers
			}
		}
	}
	if pod.Status.PodIP == "" {
		return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("pod %s has no IP yet", pod.Name))
	}
	return proxyURL(p.scheme, pod.Status.PodIP, port)
}

// serviceProxyTarget picks one ready endpoint of svc for the port p names
// (by name, or by number mapped to its name), pick choosing among them.
func serviceProxyTarget(svc *corev1.Service, ep *corev1.Endpoints, p proxyName, pick func(n int) int) (*url.URL, error) {
	portName := p.port
	if n, err := strconv.Atoi(p.port); err == nil {
		found := false
		for _, sp := range svc.Spec.Ports {
			if int(sp.Port) == n {
				portName, found = sp.Name, true
				break
			}
		}
		if !found {
			return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("no service port %d found for service %q", n, svc.Name))
		}
	}
	type target struct {
		ip   string
		port int32
	}
	var targets []target
	if ep != nil {
		for _, sub := range ep.Subsets {
			for _, port := range sub.Ports {
				if port.Name != portName {
					continue
				}
				for _, a := range sub.Addresses {
					targets = append(targets, target{a.IP, port.Port})
				}
			}
		}
	}
	if len(targets) == 0 {
		return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("no endpoints available for service %q", svc.Name))
	}
	t := targets[pick(len(targets))]
	return proxyURL(p.scheme, t.ip, strconv.Itoa(int(t.port)))
}

func proxyURL(scheme, ip, port string) (*url.URL, error) {
	if net.ParseIP(ip) == nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("address %q is not an IP", ip))
	}
	if scheme == "" {
		scheme = "http"
	}
	host := ip
	if port != "" {
		host = net.JoinHostPort(ip, port)
	}
	return &url.URL{Scheme: scheme, Host: host}, nil
}

// proxyRest is the part of the request path after .../<name>/proxy, with
// its trailing slash kept ("/" when there is none).
func proxyRest(path, name string) string {
	marker := "/" + name + "/proxy"
	i := strings.Index(path, marker)
	if i < 0 {
		return "/"
	}
	rest := path[i+len(marker):]
	if !strings.HasPrefix(rest, "/") {
		rest = "/" + rest
	}
	return rest
}

func isResourceProxy(ri RequestInfo) bool {
	sub, _, _ := strings.Cut(ri.Subresource, "/")
	return ri.Group == "" && sub == "proxy" && (ri.Resource == "pods" || ri.Resource == "services")
}

// serveResourceProxy serves pods/proxy and services/proxy: the request,
// any method, goes to the pod (or a ready endpoint of the Service) over
// plain HTTP or, with an https: name prefix, TLS without verification, as
// upstream's API server proxies them.
func (s *Server) serveResourceProxy(w http.ResponseWriter, r *http.Request, res *registry.Resource, ri RequestInfo) error {
	p, ok := parseProxyName(ri.Name)
	if !ok {
		return apierrors.NewBadRequest(fmt.Sprintf("invalid request %q", ri.Name))
	}
	obj, err := s.reg.Get(r.Context(), res, ri.Namespace, p.name)
	if err != nil {
		return err
	}
	var target *url.URL
	switch o := obj.(type) {
	case *corev1.Pod:
		target, err = podProxyTarget(o, p)
	case *corev1.Service:
		epRes := s.reg.Lookup(schema.GroupVersionResource{Version: "v1", Resource: "endpoints"})
		var ep *corev1.Endpoints
		if e, gerr := s.reg.Get(r.Context(), epRes, ri.Namespace, p.name); gerr == nil {
			ep = e.(*corev1.Endpoints)
		} else if !apierrors.IsNotFound(gerr) {
			return gerr
		}
		target, err = serviceProxyTarget(o, ep, p, rand.IntN)
	}
	if err != nil {
		return err
	}
	if strings.HasSuffix(r.URL.Path, "/proxy") && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		// As upstream: the bare .../proxy moves to .../proxy/, so relative
		// links of the page resolve under the proxy.
		loc := r.URL.Path + "/"
		if r.URL.RawQuery != "" {
			loc += "?" + r.URL.RawQuery
		}
		http.Redirect(w, r, loc, http.StatusMovedPermanently)
		return nil
	}
	rest := proxyRest(r.URL.Path, ri.Name)
	// The path up to .../proxy, which rewritten links start with.
	prefix := strings.TrimSuffix(strings.TrimSuffix(r.URL.Path, rest), "/")
	proxy := &httputil.ReverseProxy{
		ModifyResponse: func(resp *http.Response) error { return rewriteLinks(resp, prefix) },
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = target.Scheme, target.Host
			pr.Out.URL.Path, pr.Out.URL.RawPath = rest, ""
			pr.Out.URL.RawQuery = r.URL.RawQuery
			pr.Out.Host = target.Host
			// The caller's credentials are for the API server, not the pod.
			pr.Out.Header.Del("Authorization")
			pr.Out.Header.Del("Impersonate-User")
			pr.Out.Header.Del("Impersonate-Group")
		},
		Transport:     s.podTransport,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			s.writeError(w, r, apierrors.NewServiceUnavailable(fmt.Sprintf("error trying to reach %s: %v", target.Host, err)))
		},
	}
	proxy.ServeHTTP(w, r)
	return nil
}

// newPodTransport is the client the API server proxies to pods with:
// pods serve self-signed certificates if any, so TLS is not verified (as
// upstream), and idle connections are bounded.
func newPodTransport() *http.Transport {
	return &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second}).DialContext,
		TLSClientConfig:       &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // pods' certificates are not the cluster's
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 0,
	}
}

// maxRewrittenHTML bounds the HTML page read into memory for rewriting;
// a larger page passes unchanged.
const maxRewrittenHTML = 4 << 20

// rewriteLinks makes the absolute links of an uncompressed HTML response
// go through the proxy (prefix), as upstream's proxy does.
func rewriteLinks(resp *http.Response, prefix string) error {
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || resp.Header.Get("Content-Encoding") != "" ||
		resp.ContentLength > maxRewrittenHTML {
		return nil
	}
	orig := resp.Body
	body, err := io.ReadAll(io.LimitReader(orig, maxRewrittenHTML+1))
	if err != nil {
		orig.Close()
		return err
	}
	if len(body) > maxRewrittenHTML {
		// Too large to rewrite: what was read goes first, then the rest.
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), orig), orig}
		return nil
	}
	orig.Close()
	out := body
	if rewritten, err := rewriteHTML(bytes.NewReader(body), prefix); err == nil {
		out = rewritten
	}
	resp.Body = io.NopCloser(bytes.NewReader(out))
	resp.ContentLength = int64(len(out))
	resp.Header.Set("Content-Length", strconv.Itoa(len(out)))
	return nil
}
