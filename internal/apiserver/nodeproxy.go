package apiserver

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/httpstream/wsstream"

	"github.com/skiff-sh/skiff/internal/registry"
)

// nodeSubresources are served by proxying to the node's kubelet.
var nodeSubresources = map[string]bool{"log": true, "exec": true, "attach": true, "portforward": true, "proxy": true}

func isNodeStream(ri RequestInfo) bool {
	sub, _, _ := strings.Cut(ri.Subresource, "/")
	return (ri.Resource == "pods" || ri.Resource == "nodes") && ri.Group == "" && nodeSubresources[sub]
}

// connectOptions is the options object a CONNECT request is admitted with.
func connectOptions(sub, container string, q url.Values) runtime.Object {
	flag := func(k string) bool { return q.Get(k) == "true" || q.Get(k) == "1" }
	if sub == "exec" {
		return &corev1.PodExecOptions{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "PodExecOptions"}, Container: container, Command: q["command"],
			Stdin: flag("stdin"), Stdout: flag("stdout"), Stderr: flag("stderr"), TTY: flag("tty")}
	}
	return &corev1.PodAttachOptions{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "PodAttachOptions"}, Container: container,
		Stdin: flag("stdin"), Stdout: flag("stdout"), Stderr: flag("stderr"), TTY: flag("tty")}
}

// serveNodeStream proxies pods/log, pods/exec, pods/attach,
// pods/portforward and nodes/proxy to the kubelet of the pod's node, over
// HTTPS with the API server's kubelet client certificate.
func (s *Server) serveNodeStream(w http.ResponseWriter, r *http.Request, res *registry.Resource, ri RequestInfo) error {
	if s.kubeletTLS == nil {
		return apierrors.NewServiceUnavailable("this server has no kubelet client credentials")
	}
	sub, _, _ := strings.Cut(ri.Subresource, "/")
	if ri.Resource == "nodes" {
		if sub != "proxy" {
			return apierrors.NewNotFound(res.GroupResource(), ri.Name)
		}
		// nodes/NAME[:PORT]/proxy: the port, if any, is the kubelet's own.
		name, _, _ := strings.Cut(ri.Name, ":")
		node, err := s.node(r, name)
		if err != nil {
			return err
		}
		return s.proxyToKubelet(w, r, node, proxyRest(r.URL.Path, ri.Name), r.URL.RawQuery)
	}
	obj, err := s.reg.Get(r.Context(), res, ri.Namespace, ri.Name)
	if err != nil {
		return err
	}
	pod := obj.(*corev1.Pod)
	if pod.Spec.NodeName == "" {
		return apierrors.NewBadRequest(fmt.Sprintf("pod %s does not have a host assigned", pod.Name))
	}
	q := r.URL.Query()
	var path string
	switch sub {
	case "log", "exec", "attach":
		if sub != "log" && (r.Method != http.MethodPost && r.Method != http.MethodGet) {
			return apierrors.NewMethodNotSupported(schema.GroupResource{Resource: "pods/" + sub}, r.Method)
		}
		container, err := podContainer(pod, q.Get("container"))
		if err != nil {
			return err
		}
		if sub != "log" {
			// exec and attach are CONNECT requests validating admission
			// (webhooks, policies) may refuse, as upstream.
			if err := s.reg.AdmitConnect(r.Context(), res, pod, sub, connectOptions(sub, container, q)); err != nil {
				return err
			}
		}
		q.Del("container")
		if sub == "log" {
			if err := checkLogRequest(pod, container, q); err != nil {
				return err
			}
			path = "/containerLogs/" + pod.Namespace + "/" + pod.Name + "/" + container
			if isWebSocket(r) {
				node, err := s.node(r, pod.Spec.NodeName)
				if err != nil {
					return err
				}
				return s.logsOverWebSocket(w, r, node, path, q.Encode())
			}
		} else {
			if isWebSocket(r) && !runtimeSpeaks(r) {
				// The runtime's streaming server speaks SPDY and the
				// channel.k8s.io WebSocket protocols up to v4; a client
				// offering only newer ones (kubectl's v5) falls back to SPDY
				// when the handshake is refused.
				return apierrors.NewBadRequest("WebSocket protocols " + strings.Join(wsProtocols(r), ", ") + " are not supported by this node; use SPDY or channel.k8s.io")
			}
			path = "/" + sub + "/" + pod.Namespace + "/" + pod.Name + "/" + container
		}
	case "portforward":
		if isWebSocket(r) {
			return apierrors.NewBadRequest("WebSocket port forwarding is not supported by this server yet; use SPDY")
		}
		path = "/portForward/" + pod.Namespace + "/" + pod.Name
	}
	node, err := s.node(r, pod.Spec.NodeName)
	if err != nil {
		return err
	}
	return s.proxyToKubelet(w, r, node, path, q.Encode())
}

func isWebSocket(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// runtimeChannelProtocols are the WebSocket subprotocols of exec and attach
// that containerd's streaming server negotiates itself.
var runtimeChannelProtocols = map[string]bool{
	"channel.k8s.io": true, "base64.channel.k8s.io": true,
	"v4.channel.k8s.io": true, "v4.base64.channel.k8s.io": true,
}

func wsProtocols(r *http.Request) []string {
	var out []string
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(h, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// runtimeSpeaks: the request offers a protocol the runtime accepts, so the
// upgrade can pass through the kubelet untouched.
func runtimeSpeaks(r *http.Request) bool {
	for _, p := range wsProtocols(r) {
		if runtimeChannelProtocols[p] {
			return true
		}
	}
	return false
}

// logsOverWebSocket streams a container's log as WebSocket messages
// (binary.k8s.io or base64.binary.k8s.io), as upstream's API server does
// for clients such as browsers that cannot read a chunked response.
func (s *Server) logsOverWebSocket(w http.ResponseWriter, r *http.Request, node *corev1.Node, path, query string) error {
	target, err := kubeletURL(node)
	if err != nil {
		return err
	}
	target.Path, target.RawQuery = path, query
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, target.String(), nil)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	resp, err := s.kubeletTransport().RoundTrip(req)
	if err != nil {
		return apierrors.NewServiceUnavailable(fmt.Sprintf("error talking to the kubelet of node %s: %v", node.Name, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return apierrors.NewBadRequest(strings.TrimSpace(string(msg)))
	}
	// Copy answers the handshake on the hijacked connection and sends each
	// read as one message until the log ends or the client goes away.
	_ = wsstream.NewReader(resp.Body, true, wsstream.NewDefaultReaderProtocols()).Copy(w, r)
	return nil
}

// kubeletURL is the HTTPS endpoint of a node's kubelet.
func kubeletURL(node *corev1.Node) (*url.URL, error) {
	host := ""
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP && host == "" {
			host = a.Address
		}
	}
	port := node.Status.DaemonEndpoints.KubeletEndpoint.Port
	if host == "" || port == 0 {
		return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("node %s has no kubelet address", node.Name))
	}
	return &url.URL{Scheme: "https", Host: net.JoinHostPort(host, strconv.Itoa(int(port)))}, nil
}

func (s *Server) node(r *http.Request, name string) (*corev1.Node, error) {
	res := s.reg.Lookup(schema.GroupVersionResource{Version: "v1", Resource: "nodes"})
	obj, err := s.reg.Get(r.Context(), res, "", name)
	if err != nil {
		return nil, err
	}
	return obj.(*corev1.Node), nil
}

// podContainer picks the container a request names, or the only (or
// default-annotated) one, with upstream's message when it must be named.
func podContainer(pod *corev1.Pod, name string) (string, error) {
	all := map[string]bool{}
	var names []string
	for _, list := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for _, c := range list {
			all[c.Name] = true
			names = append(names, c.Name)
		}
	}
	for _, c := range pod.Spec.EphemeralContainers {
		all[c.Name] = true
	}
	if name != "" {
		if !all[name] {
			return "", apierrors.NewBadRequest(fmt.Sprintf("container %s is not valid for pod %s", name, pod.Name))
		}
		return name, nil
	}
	if len(pod.Spec.Containers) == 1 {
		return pod.Spec.Containers[0].Name, nil
	}
	if d := pod.Annotations["kubectl.kubernetes.io/default-container"]; d != "" && all[d] {
		return d, nil
	}
	return "", apierrors.NewBadRequest(fmt.Sprintf("a container name must be specified for pod %s, choose one of: %v", pod.Name, names))
}

// checkLogRequest validates log options as upstream does.
func checkLogRequest(pod *corev1.Pod, container string, q url.Values) error {
	for _, k := range []string{"tailLines", "limitBytes", "sinceSeconds"} {
		if v := q.Get(k); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 || (k != "tailLines" && n == 0) {
				return apierrors.NewBadRequest(fmt.Sprintf("%s: Invalid value: %q: must be a positive integer", k, v))
			}
		}
	}
	if q.Get("sinceSeconds") != "" && q.Get("sinceTime") != "" {
		return apierrors.NewBadRequest("at most one of `sinceTime` or `sinceSeconds` may be specified")
	}
	return nil
}

// proxyToKubelet forwards the request, including protocol upgrades (SPDY
// for exec, attach and port-forward), to https://<InternalIP>:<port>.
func (s *Server) proxyToKubelet(w http.ResponseWriter, r *http.Request, node *corev1.Node, path, query string) error {
	target, err := kubeletURL(node)
	if err != nil {
		return err
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = target.Scheme, target.Host
			pr.Out.URL.Path, pr.Out.URL.RawPath = path, ""
			pr.Out.URL.RawQuery = query
			pr.Out.Host = target.Host
			pr.Out.Header.Del("Authorization")
			pr.Out.Header.Del("Impersonate-User")
			pr.Out.Header.Del("Impersonate-Group")
		},
		Transport:     s.kubeletTransport(),
		FlushInterval: -1, // logs -f must arrive as written
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			s.writeError(w, r, apierrors.NewServiceUnavailable(fmt.Sprintf("error talking to the kubelet of node %s: %v", node.Name, err)))
		},
	}
	proxy.ServeHTTP(w, r)
	return nil
}

func (s *Server) kubeletTransport() http.RoundTripper {
	s.kubeletOnce.Do(func() {
		s.kubeletRT = &http.Transport{
			TLSClientConfig:     s.kubeletTLS.Clone(),
			ForceAttemptHTTP2:   false,
			MaxIdleConnsPerHost: 10,
			TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
		}
	})
	return s.kubeletRT
}
