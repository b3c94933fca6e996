// Package apiserver serves the Kubernetes REST API over the registry:
// discovery, the verbs, watch streaming, subresources, tables and OpenAPI.
package apiserver

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/version"

	"github.com/skiff-sh/skiff/internal/auth"
	"github.com/skiff-sh/skiff/internal/registry"
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
	OpenAPIV3      func(path string) ([]byte, bool, error)
	// Profiling serves /debug/pprof to authenticated users.
	Profiling bool
	// CAPEM is the cluster CA certificate served at /cacerts.
	CAPEM []byte
	// KubeletTLS is the client side of connections to kubelets (client
	// certificate and the CA their serving certificates chain to); nil
	// disables pods/log, exec, attach, portforward and nodes/proxy.
	KubeletTLS *tls.Config
}

// Server is the HTTP handler of the API.
type Server struct {
	reg            *registry.Registry
	codecs         *Codecs
	authn          *auth.Authenticator
	log            *slog.Logger
	version        version.Info
	ready          func(ctx context.Context) error
	metrics        *prometheus.Registry
	requests       *prometheus.CounterVec
	latency        *prometheus.HistogramVec
	inflight       atomic.Int64
	openapiV2      func() ([]byte, error)
	openapiV2Proto func() ([]byte, error)
	openapiV3      func(path string) ([]byte, bool, error)
	discovery      *discoveryDocs
	profiling      bool
	kubeletTLS     *tls.Config
	caPEM          []byte
	kubeletOnce    sync.Once
	kubeletRT      http.RoundTripper
	// podTransport carries pods/proxy and services/proxy requests.
	podTransport http.RoundTripper
	// ShuttingDown makes /readyz fail while the server drains.
	ShuttingDown atomic.Bool
}

// New builds the server.
func New(cfg Config) *Server {
	s := &Server{
		reg: cfg.Registry, codecs: cfg.Codecs, authn: cfg.Authn, log: cfg.Log, version: cfg.Version,
		ready: cfg.Ready, profiling: cfg.Profiling, kubeletTLS: cfg.KubeletTLS, caPEM: cfg.CAPEM, metrics: cfg.Metrics, openapiV2: cfg.OpenAPIV2, openapiV2Proto: cfg.OpenAPIV2Proto, openapiV3: cfg.OpenAPIV3,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "apiserver_request_total", Help: "Counter of apiserver requests broken out for each verb, group, version, resource and HTTP response code."}, []string{"verb", "group", "version", "resource", "subresource", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "apiserver_request_duration_seconds", Help: "Response latency distribution in seconds for each verb, group, version, resource and subresource.",
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}}, []string{"verb", "group", "version", "resource", "subresource"}),
	}
	if s.metrics != nil {
		s.metrics.MustRegister(s.requests, s.latency)
	}
	s.discovery = buildDiscovery(cfg.Registry)
	s.podTransport = newPodTransport()
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

// ServeHTTP routes a request. No panic escapes: it becomes a 500 Status and
// a logged stack.
func (s *Server) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	start := time.Now()
	w := &statusRecorder{ResponseWriter: rw}
	watchParam := r.URL.Query().Get("watch")
	ri := ParseRequest(r.Method, r.URL.Path, watchParam == "true" || watchParam == "1")
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.log.Error("panic serving request", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			if w.code == 0 {
				s.writeError(w, r, apierrors.NewInternalError(fmt.Errorf("panic: %v", p)))
			}
		}
		code := w.code
		if code == 0 {
			code = http.StatusOK
		}
		verb := ri.Verb
		if verb == "" {
			verb = strings.ToUpper(r.Method)
		}
		s.requests.WithLabelValues(verb, ri.Group, ri.Version, ri.Resource, ri.Subresource, strconv.Itoa(code)).Inc()
		if verb != "watch" {
			s.latency.WithLabelValues(verb, ri.Group, ri.Version, ri.Resource, ri.Subresource).Observe(time.Since(start).Seconds())
		}
	}()
	switch r.URL.Path {
	case "/healthz", "/livez":
		s.serveHealth(w, r, false)
		return
	case "/readyz":
		s.serveHealth(w, r, true)
		return
	case "/version", "/version/":
		writeJSON(w, http.StatusOK, s.version)
		return
	case "/cacerts":
		// Public: a joining node fetches the CA here and trusts it only if
		// its hash matches the one in its join token.
		w.Header().Set("Content-Type", "application/x-pem-file")
		_, _ = w.Write(s.caPEM)
		return
	}
	user, ok := s.authn.Authenticate(r)
	if !ok {
		s.writeError(w, r, statusError(http.StatusUnauthorized, "Unauthorized", "Unauthorized"))
		return
	}
	r = r.WithContext(auth.WithUser(r.Context(), user))
	if !bootstrapAllowed(user, ri) {
		s.writeError(w, r, statusError(http.StatusForbidden, "Forbidden", fmt.Sprintf("User %q cannot %s resource %q in API group %q: a join token may only request node certificates", user.Name, ri.Verb, ri.Resource, ri.Group)))
		return
	}
	if r.ContentLength > maxBodyBytes {
		s.writeError(w, r, statusError(http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", fmt.Sprintf("Request entity too large: limit is %d", maxBodyBytes)))
		return
	}
	switch p := r.URL.Path; {
	case strings.HasPrefix(p, "/debug/pprof") && s.profiling:
		servePprof(w, r)
	case p == "/metrics":
		promhttp.HandlerFor(s.metrics, promhttp.HandlerOpts{}).ServeHTTP(w, r)
	case p == "/openapi/v2":
		s.serveOpenAPIV2(w, r)
	case strings.HasPrefix(p, "/openapi/v3"):
		s.serveOpenAPIV3(w, r)
	case p == "/api" || p == "/api/" || p == "/apis" || p == "/apis/":
		s.serveDiscoveryRoot(w, r)
	case ri.IsResource:
		s.serveResource(w, r, ri)
	case strings.HasPrefix(p, "/api/") || strings.HasPrefix(p, "/apis/"):
		s.serveGroupDiscovery(w, r, ri)
	default:
		s.writeError(w, r, apierrors.NewNotFound(emptyGR, r.URL.Path))
	}
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

func (s *Server) serveOpenAPIV2(w http.ResponseWriter, r *http.Request) {
	if s.openapiV2 == nil {
		s.writeError(w, r, apierrors.NewNotFound(emptyGR, r.URL.Path))
		return
	}
	ct, get := mediaJSON, s.openapiV2
	if strings.Contains(r.Header.Get("Accept"), "application/com.github.proto-openapi.spec.v2") && s.openapiV2Proto != nil {
		ct, get = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf", s.openapiV2Proto
	}
	b, err := get()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", ct)
	w.Write(b)
}

func (s *Server) serveOpenAPIV3(w http.ResponseWriter, r *http.Request) {
	if s.openapiV3 == nil {
		s.writeError(w, r, apierrors.NewNotFound(emptyGR, r.URL.Path))
		return
	}
	b, ok, err := s.openapiV3(strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/openapi/v3"), "/"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !ok {
		s.writeError(w, r, apierrors.NewNotFound(emptyGR, r.URL.Path))
		return
	}
	w.Header().Set("Content-Type", mediaJSON)
	w.Write(b)
}

// bootstrapAllowed confines a node-join (bootstrap token) identity to what
// joining needs: discovery and its CertificateSigningRequests.
func bootstrapAllowed(u auth.User, ri RequestInfo) bool {
	if !slices.Contains(u.Groups, "system:bootstrappers") || !ri.IsResource {
		return true
	}
	if ri.Group != "certificates.k8s.io" || ri.Resource != "certificatesigningrequests" || ri.Subresource != "" {
		return false
	}
	switch ri.Verb {
	case "create", "get", "list", "watch":
		return true
	}
	return false
}
