// Package apiserver serves the Kubernetes REST API over the registry:
// discovery, the verbs, watch streaming, subresources, tables and OpenAPI.
package apiserver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/version"

	"github.com/skiff-sh/skiff/internal/aggregator"
	"github.com/skiff-sh/skiff/internal/auth"
	"github.com/skiff-sh/skiff/internal/authz"
	"github.com/skiff-sh/skiff/internal/flowcontrol"
	"github.com/skiff-sh/skiff/internal/registry"
	"github.com/skiff-sh/skiff/internal/satoken"
	"github.com/skiff-sh/skiff/internal/warm"
)

// maxBodyBytes is the largest request body accepted (3 MiB, as upstream).
const maxBodyBytes = 3 << 20

// Config wires the server.
type Config struct {
	Registry *registry.Registry
	Codecs   *Codecs
	Authn    *auth.Authenticator
	Log      *slog.Logger
	Version  version.Info
	// Ready reports whether storage and bootstrap objects are ready.
	Ready func(ctx context.Context) error
	// Metrics is the Prometheus registry to register into.
	Metrics *prometheus.Registry
	// OpenAPIV2 and OpenAPIV3 serve /openapi/...; nil disables them.
	OpenAPIV2      func() ([]byte, error)
	OpenAPIV2Proto func() ([]byte, error)
	// OpenAPIV3 answers as the pieces of the document, in order.
	OpenAPIV3 func(path string) ([][]byte, bool, error)
	// Profiling serves /debug/pprof to authenticated users.
	Profiling bool
	// CAPEM is the cluster CA certificate served at /cacerts.
	CAPEM []byte
	// ServiceAccountKey publishes the OIDC discovery documents of
	// ServiceAccount tokens; ExternalURL is where the API is reached.
	ServiceAccountKey *satoken.Key
	ExternalURL       string
	// Authorizer decides every request (nil: AlwaysAllow).
	Authorizer authz.Authorizer
	// Anonymous serves requests without credentials as system:anonymous
	// (for authorization to decide); false refuses them with 401.
	Anonymous bool
	// Operations are skiff's own endpoints, by path under /skiff/ (each
	// authorized as a non-resource URL, so only those granted it, such as
	// cluster-admin, reach it).
	Operations map[string]http.Handler
	// Audit records requests (nil: none are).
	Audit *Audit
	// FlowControl is API Priority and Fairness (nil: every request runs
	// at once).
	FlowControl *flowcontrol.Controller
	// KubeletTLS is the client side of connections to kubelets (client
	// certificate and the CA their serving certificates chain to); nil
	// disables pods/log, exec, attach, portforward and nodes/proxy.
	KubeletTLS *tls.Config
	// Degraded, when set, says why answers may be stale ("" when they are
	// not): every response then carries it as a warning.
	Degraded func() string
	// Public are endpoints served before authentication, each checking
	// its own secret (the server-join endpoints and their server token).
	Public map[string]http.Handler
	// Aggregator routes the group-versions other servers serve
	// (APIServices with a Service); nil: none are.
	Aggregator *aggregator.Routes
}

// Server is the HTTP handler of the API.
type Server struct {
	reg            *registry.Registry
	codecs         *Codecs
	authn          *auth.Authenticator
	authz          authz.Authorizer
	anonymous      bool
	saKey          *satoken.Key
	externalURL    string
	log            *slog.Logger
	operations     map[string]http.Handler
	audit          *Audit
	flow           *flowcontrol.Controller
	flowMetrics    *flowMetrics
	version        version.Info
	ready          func(ctx context.Context) error
	metrics        *prometheus.Registry
	requests       *prometheus.CounterVec
	latency        *prometheus.HistogramVec
	inflight       atomic.Int64
	openapiV2      func() ([]byte, error)
	openapiV2Proto func() ([]byte, error)
	openapiV3      func(path string) ([][]byte, bool, error)
	discovery      atomic.Pointer[discoveryDocs]
	discoveryMu    sync.Mutex
	profiling      bool
	kubeletTLS     *tls.Config
	routes         *aggregator.Routes
	public         map[string]http.Handler
	degraded       func() string
	caPEM          []byte
	kubeletOnce    sync.Once
	kubeletRT      http.RoundTripper
	// podTransport carries pods/proxy and services/proxy requests.
	podTransport http.RoundTripper
	// handler is the request path (chain.go).
	handler http.Handler
	// warm serves short requests on goroutines with grown stacks.
	warm *warm.Pool
	// ShuttingDown makes /readyz fail while the server drains.
	ShuttingDown atomic.Bool
}

// warmRequestGoroutines bounds the goroutines kept for short requests:
// enough for the requests a busy server has in flight at once (most wait on
// etcd), few enough that their stacks (tens of KB each, shrunk by the
// garbage collector while idle) do not show in RSS. Requests beyond them run
// on net/http's own goroutine, as before.
const warmRequestGoroutines = 128

// New builds the server.
func New(cfg Config) *Server {
	s := &Server{
		reg: cfg.Registry, codecs: cfg.Codecs, authn: cfg.Authn, authz: cfg.Authorizer, anonymous: cfg.Anonymous, saKey: cfg.ServiceAccountKey, externalURL: cfg.ExternalURL, log: cfg.Log, version: cfg.Version,
		ready: cfg.Ready, profiling: cfg.Profiling, operations: cfg.Operations, audit: cfg.Audit, flow: cfg.FlowControl, kubeletTLS: cfg.KubeletTLS, caPEM: cfg.CAPEM, metrics: cfg.Metrics, openapiV2: cfg.OpenAPIV2, openapiV2Proto: cfg.OpenAPIV2Proto, openapiV3: cfg.OpenAPIV3, routes: cfg.Aggregator, public: cfg.Public, degraded: cfg.Degraded,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "apiserver_request_total", Help: "Counter of apiserver requests broken out for each verb, group, version, resource and HTTP response code."}, []string{"verb", "group", "version", "resource", "subresource", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "apiserver_request_duration_seconds", Help: "Response latency distribution in seconds for each verb, group, version, resource and subresource.",
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}}, []string{"verb", "group", "version", "resource", "subresource"}),
	}
	if s.metrics != nil {
		s.metrics.MustRegister(s.requests, s.latency)
	}
	if s.flow != nil {
		s.flowMetrics = newFlowMetrics(s.metrics, s.flow)
	}
	if s.authz == nil {
		s.authz = authz.AlwaysAllow
	}
	if s.routes == nil {
		s.routes = &aggregator.Routes{}
	}
	s.docs()
	s.podTransport = newPodTransport()
	s.warm = warm.New(warmRequestGoroutines)
	s.handler = build(s.chain(), http.HandlerFunc(s.route))
	return s
}

// statusRecorder remembers the status code written.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusRecorder) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack hands the connection over for WebSocket streams: x/net/websocket
// asserts http.Hijacker on the writer it gets rather than unwrapping it.
func (w *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.code == 0 {
		w.code = http.StatusSwitchingProtocols
	}
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request, readiness bool) {
	if readiness && s.ShuttingDown.Load() {
		http.Error(w, "[-]shutdown failed: server is shutting down\nreadyz check failed", http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if s.ready != nil {
		if err := s.ready(ctx); err != nil {
			check := "livez"
			if readiness {
				check = "readyz"
			}
			http.Error(w, fmt.Sprintf("[-]%v\n%s check failed", err, check), http.StatusServiceUnavailable)
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	io.WriteString(w, "ok")
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", mediaJSON)
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func (s *Server) serveOpenAPIV2(w http.ResponseWriter, r *http.Request) error {
	if s.openapiV2 == nil {
		return apierrors.NewNotFound(emptyGR, r.URL.Path)
	}
	ct, get := mediaJSON, s.openapiV2
	if strings.Contains(r.Header.Get("Accept"), "application/com.github.proto-openapi.spec.v2") && s.openapiV2Proto != nil {
		ct, get = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf", s.openapiV2Proto
	}
	b, err := get()
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", ct)
	w.Write(b)
	return nil
}

func (s *Server) serveOpenAPIV3(w http.ResponseWriter, r *http.Request) error {
	if s.openapiV3 == nil {
		return apierrors.NewNotFound(emptyGR, r.URL.Path)
	}
	path := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/openapi/v3"), "/")
	remote := s.routes.Load()
	for _, route := range remote.Routes {
		if route.OpenAPIV3 != nil && route.V3Key() == path {
			w.Header().Set("Content-Type", mediaJSON)
			w.Write(route.OpenAPIV3)
			return nil
		}
	}
	parts, ok, err := s.openapiV3(path)
	if err != nil {
		return err
	}
	if path == "" && ok {
		root, err := withRemoteV3(bytes.Join(parts, nil), remote)
		if err != nil {
			return err
		}
		parts = [][]byte{root}
	}
	if !ok {
		return apierrors.NewNotFound(emptyGR, r.URL.Path)
	}
	w.Header().Set("Content-Type", mediaJSON)
	for _, p := range parts {
		if _, err := w.Write(p); err != nil {
			return nil // the client went away
		}
	}
	return nil
}

// withRemoteV3 adds to the /openapi/v3 root listing the documents of the
// group-versions other servers serve.
func withRemoteV3(root []byte, remote *aggregator.Table) ([]byte, error) {
	var extra []*aggregator.Route
	for _, r := range remote.Routes {
		if r.OpenAPIV3 != nil {
			extra = append(extra, r)
		}
	}
	if len(extra) == 0 {
		return root, nil
	}
	var doc map[string]map[string]any
	if err := json.Unmarshal(root, &doc); err != nil {
		return nil, err
	}
	if doc["paths"] == nil {
		doc["paths"] = map[string]any{}
	}
	for _, r := range extra {
		doc["paths"][r.V3Key()] = map[string]any{"serverRelativeURL": "/openapi/v3/" + r.V3Key() + "?hash=" + r.OpenAPIV3Hash}
	}
	return json.Marshal(doc)
}
