package aggregator

import (
	"context"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/transport"
)

// Resolver finds the address (host:port) a Service port is reached at.
type Resolver func(ctx context.Context, namespace, name string, port int32) (string, error)

// Route is how the requests for one remote group-version are served.
type Route struct {
	Name            string // version.group
	GV              schema.GroupVersion
	GroupPriority   int32
	VersionPriority int32
	Service         ServiceReference
	// Available is the APIService's Available condition: requests for an
	// unavailable group-version get 503 without being sent.
	Available bool
	// Discovery is what the server last said it serves (nil: never
	// fetched), Fresh whether that was at the last attempt.
	Discovery *apidiscoveryv2.APIVersionDiscovery
	Fresh     bool
	// OpenAPIV3 is the server's OpenAPI v3 document of the group-version
	// (nil: it has none, or it could not be fetched), OpenAPIV3Hash its
	// hash as the root listing names it.
	OpenAPIV3     []byte
	OpenAPIV3Hash string
	transport     http.RoundTripper
	resolve       Resolver
	// failed is set when a request could not reach the server, so that
	// the availability check runs again without waiting for its period
	// (shared by the copies With makes).
	failed *atomic.Bool
}

// Failed reports (and forgets) whether a request failed to reach the
// server since the last call.
func (r *Route) Failed() bool { return r.failed.Swap(false) }

// Table is the remote group-versions, replaced whole when anything
// changes (Generation counts the changes).
type Table struct {
	Generation uint64
	Routes     map[schema.GroupVersion]*Route
}

// Routes holds the current Table for the API server's handlers.
type Routes struct{ table atomic.Pointer[Table] }

// Load is the current table (never nil).
func (r *Routes) Load() *Table {
	if t := r.table.Load(); t != nil {
		return t
	}
	return &Table{}
}

// Store replaces the table.
func (r *Routes) Store(t *Table) { r.table.Store(t) }

// Lookup is the route of a group-version served elsewhere, or nil.
func (r *Routes) Lookup(group, version string) *Route {
	t := r.table.Load()
	if t == nil {
		return nil
	}
	return t.Routes[schema.GroupVersion{Group: group, Version: version}]
}

// Groups lists the remote groups, each with its versions by priority.
func (t *Table) Groups() map[string][]*Route {
	out := map[string][]*Route{}
	for _, r := range t.Routes {
		out[r.GV.Group] = append(out[r.GV.Group], r)
	}
	for _, rs := range out {
		sort.Slice(rs, func(i, j int) bool {
			if rs[i].VersionPriority != rs[j].VersionPriority {
				return rs[i].VersionPriority > rs[j].VersionPriority
			}
			return version.CompareKubeAwareVersionStrings(rs[i].GV.Version, rs[j].GV.Version) > 0
		})
	}
	return out
}

// discoveryTimeout bounds a discovery request to an aggregated server, as
// upstream bounds them: clients wait on discovery.
const discoveryTimeout = 5 * time.Second

// NewRoute builds the route of a remote APIService: TLS to the Service's
// DNS name, verified by caBundle (or not at all, if it says so), the
// API server's front-proxy client certificate presented.
func NewRoute(a *APIService, proxyCert *tls.Certificate, resolve Resolver) (*Route, error) {
	cfg := &tls.Config{ServerName: a.Spec.Service.Name + "." + a.Spec.Service.Namespace + ".svc", MinVersion: tls.VersionTLS12,
		InsecureSkipVerify: a.Spec.InsecureSkipTLSVerify} //nolint:gosec // the APIService asks for it, as upstream allows
	if len(a.Spec.CABundle) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(a.Spec.CABundle) {
			return nil, fmt.Errorf("caBundle of APIService %s holds no certificate", a.Name)
		}
		cfg.RootCAs = pool
	}
	if proxyCert != nil {
		cfg.Certificates = []tls.Certificate{*proxyCert}
	}
	rt := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     cfg,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 32,
		IdleConnTimeout:     90 * time.Second,
	}
	gp, vp := a.Spec.GroupPriorityMinimum, a.Spec.VersionPriority
	return &Route{Name: a.Name, GV: schema.GroupVersion{Group: a.Spec.Group, Version: a.Spec.Version}, GroupPriority: gp, VersionPriority: vp,
		Service:   ServiceReference{Namespace: a.Spec.Service.Namespace, Name: a.Spec.Service.Name, Port: &[]int32{a.Port()}[0]},
		Available: a.IsAvailable(), transport: rt, resolve: resolve, failed: &atomic.Bool{}}, nil
}

// With is a copy of the route with availability and discovery replaced
// (the transport and its connections are kept).
func (r *Route) With(available bool, disc *apidiscoveryv2.APIVersionDiscovery, fresh bool) *Route {
	c := *r
	c.Available, c.Discovery, c.Fresh = available, disc, fresh
	return &c
}

// WithOpenAPI is a copy of the route holding doc as its OpenAPI v3.
func (r *Route) WithOpenAPI(doc []byte) *Route {
	c := *r
	c.OpenAPIV3, c.OpenAPIV3Hash = doc, ""
	if doc != nil {
		sum := sha512.Sum512(doc)
		c.OpenAPIV3Hash = strings.ToUpper(hex.EncodeToString(sum[:]))
	}
	return &c
}

// V3Key is where the group-version's document sits under /openapi/v3/.
func (r *Route) V3Key() string {
	if r.GV.Group == "" {
		return "api/" + r.GV.Version
	}
	return "apis/" + r.GV.Group + "/" + r.GV.Version
}

// maxOpenAPIBytes bounds an OpenAPI document read from another server.
const maxOpenAPIBytes = 32 << 20

// FetchOpenAPIV3 reads the server's OpenAPI v3 document of the
// group-version, as upstream's aggregator collects them: the root listing
// first, then the document it points at.
func (r *Route) FetchOpenAPIV3(ctx context.Context) ([]byte, error) {
	get := func(path string, limit int64) ([]byte, error) {
		host, err := r.resolve(ctx, r.Service.Namespace, r.Service.Name, *r.Service.Port)
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(ctx, discoveryTimeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+host+path, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/json")
		transport.SetAuthProxyHeaders(req, aggregatorUser.Name, "", aggregatorUser.Groups, nil)
		resp, err := (&http.Client{Transport: r.transport}).Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
		if err == nil && int64(len(b)) > limit {
			err = fmt.Errorf("GET %s: larger than %d bytes", path, limit)
		}
		return b, err
	}
	raw, err := get("/openapi/v3", maxDiscoveryBytes)
	if err != nil {
		return nil, err
	}
	var root struct {
		Paths map[string]struct {
			URL string `json:"serverRelativeURL"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(raw, &root); err != nil {
		return nil, fmt.Errorf("/openapi/v3: %w", err)
	}
	p, ok := root.Paths[r.V3Key()]
	if !ok || !strings.HasPrefix(p.URL, "/") {
		return nil, fmt.Errorf("/openapi/v3 lists no %s", r.V3Key())
	}
	doc, err := get(p.URL, maxOpenAPIBytes)
	if err != nil {
		return nil, err
	}
	if !json.Valid(doc) {
		return nil, fmt.Errorf("%s: not JSON", p.URL)
	}
	return doc, nil
}

// Close drops the route's idle connections.
func (r *Route) Close() {
	if t, ok := r.transport.(*http.Transport); ok {
		t.CloseIdleConnections()
	}
}

// User is the identity a proxied request carries.
type User struct {
	Name   string
	UID    string
	Groups []string
	Extra  map[string][]string
}

// aggregatorUser is who the API server's own checks act as.
var aggregatorUser = User{Name: "system:kube-aggregator", Groups: []string{"system:masters"}}

// ServeHTTP carries a request to the group-version's server on behalf of
// user, as upstream's aggregator does: the caller's credentials are
// dropped, the user travels in the X-Remote-* headers the front-proxy
// certificate vouches for, responses (watches too) stream back, and
// connection upgrades pass through.
func (r *Route) ServeHTTP(w http.ResponseWriter, req *http.Request, u User, discovery bool) {
	if !r.Available {
		http.Error(w, "service unavailable", http.StatusServiceUnavailable)
		return
	}
	host, err := r.resolve(req.Context(), r.Service.Namespace, r.Service.Name, *r.Service.Port)
	if err != nil {
		r.failed.Store(true)
		http.Error(w, "service unavailable", http.StatusServiceUnavailable)
		return
	}
	if discovery {
		ctx, cancel := context.WithTimeout(req.Context(), discoveryTimeout)
		defer cancel()
		req = req.WithContext(ctx)
	}
	p := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = "https", host
			pr.Out.Host = host
			for k := range pr.Out.Header {
				if k == "Authorization" || strings.HasPrefix(k, "Impersonate-") {
					pr.Out.Header.Del(k)
				}
			}
			transport.SetAuthProxyHeaders(pr.Out, u.Name, u.UID, u.Groups, u.Extra)
		},
		Transport:     r.transport,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			r.failed.Store(true)
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		},
	}
	p.ServeHTTP(w, req)
}

// maxDiscoveryBytes bounds a discovery document read from another server.
const maxDiscoveryBytes = 8 << 20

// Probe asks the group-version's server for its discovery document, as
// upstream's availability check does (as system:kube-aggregator in
// system:masters), and returns what it serves.
func (r *Route) Probe(ctx context.Context) (*apidiscoveryv2.APIVersionDiscovery, error) {
	host, err := r.resolve(ctx, r.Service.Namespace, r.Service.Name, *r.Service.Port)
	if err != nil {
		return nil, err
	}
	path := "/apis/" + r.GV.Group + "/" + r.GV.Version
	if r.GV.Group == "" {
		path = "/api/" + r.GV.Version
	}
	u := "https://" + host + path
	ctx, cancel := context.WithTimeout(ctx, discoveryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	transport.SetAuthProxyHeaders(req, aggregatorUser.Name, "", aggregatorUser.Groups, nil)
	resp, err := (&http.Client{Transport: r.transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("failing or missing response from %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDiscoveryBytes))
	if err != nil {
		return nil, fmt.Errorf("failing or missing response from %s: %w", u, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return nil, fmt.Errorf("bad status from %s: %d", u, resp.StatusCode)
	}
	var list metav1.APIResourceList
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("discovery from %s: %w", u, err)
	}
	return ToAggregated(r.GV, &list), nil
}

// ToAggregated turns a group-version's resource list into its aggregated
// discovery entry: "parent/sub" entries become the parent's subresources.
func ToAggregated(gv schema.GroupVersion, list *metav1.APIResourceList) *apidiscoveryv2.APIVersionDiscovery {
	v := &apidiscoveryv2.APIVersionDiscovery{Version: gv.Version, Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent}
	index := map[string]int{}
	kind := func(r metav1.APIResource) *metav1.GroupVersionKind {
		k := &metav1.GroupVersionKind{Group: gv.Group, Version: gv.Version, Kind: r.Kind}
		if r.Group != "" || r.Version != "" {
			k.Group, k.Version = r.Group, r.Version
		}
		return k
	}
	for _, r := range list.APIResources {
		if strings.Contains(r.Name, "/") {
			continue
		}
		scope := apidiscoveryv2.ScopeCluster
		if r.Namespaced {
			scope = apidiscoveryv2.ScopeNamespace
		}
		index[r.Name] = len(v.Resources)
		v.Resources = append(v.Resources, apidiscoveryv2.APIResourceDiscovery{Resource: r.Name, ResponseKind: kind(r), Scope: scope,
			SingularResource: r.SingularName, Verbs: r.Verbs, ShortNames: r.ShortNames, Categories: r.Categories})
	}
	for _, r := range list.APIResources {
		parent, sub, ok := strings.Cut(r.Name, "/")
		if !ok {
			continue
		}
		i, found := index[parent]
		if !found {
			continue
		}
		v.Resources[i].Subresources = append(v.Resources[i].Subresources, apidiscoveryv2.APISubresourceDiscovery{Subresource: sub, ResponseKind: kind(r), Verbs: r.Verbs})
	}
	return v
}
