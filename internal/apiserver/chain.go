package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/skiff-sh/skiff/internal/admission"
	"github.com/skiff-sh/skiff/internal/auth"
	"github.com/skiff-sh/skiff/internal/authz"
)

// A stage wraps the rest of the request path.
type stage func(http.Handler) http.Handler

// chain is the request path, outermost first. The order is the point:
//   - the request is parsed once, first, so every later stage (and the
//     metrics of a request that fails early) sees its verb and resource;
//   - a short request then moves to a warm goroutine (package warm), whose
//     stack has already grown, for everything after parsing;
//   - recovery and metrics wrap everything else, so a panic anywhere below
//     becomes a 500 Status and is counted;
//   - the CA certificate is public (a joining node fetches /cacerts
//     before it has any credential, and checks it against its token), and
//     so are the server-join endpoints, which check the server token
//     themselves;
//   - authentication comes before anything that reads a body or touches
//     state; a request without credentials is system:anonymous;
//   - the audit log records the authenticated user's request, and what
//     impersonation and authorization then decide about it;
//   - impersonation swaps the user only after the real one was allowed to
//     impersonate, so everything after it sees the impersonated user;
//   - authorization decides on the request's attributes alone, before
//     any handler (health, discovery and OpenAPI included) runs;
//   - priority and fairness classify what authorization let in, and hold
//     it for a seat of its priority level (a refused request takes none);
//   - the join token's limit narrows a bootstrap identity further (it
//     holds in AlwaysAllow mode too);
//   - the body limit refuses an oversized declared body before any handler
//     reads it (handlers also cap what they read, for chunked bodies);
//   - warnings (admission's) become Warning headers, before any handler
//     writes its answer.
func (s *Server) chain() []stage {
	return []stage{
		s.withRequestInfo,
		s.withWarmStack,
		s.withRecovery,
		s.withPublicPaths,
		s.withAuthentication,
		s.withAudit,
		s.withImpersonation,
		s.withAuthorization,
		s.withPriorityAndFairness,
		s.withBootstrapLimit,
		s.withBodyLimit,
		s.withWarnings,
	}
}

// build assembles the chain around the router.
func build(stages []stage, last http.Handler) http.Handler {
	h := last
	for _, st := range slices.Backward(stages) {
		h = st(h)
	}
	return h
}

// ServeHTTP serves one request through the chain.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

type requestInfoKey struct{}

// requestInfoFrom is the RequestInfo the first stage parsed.
func requestInfoFrom(ctx context.Context) RequestInfo {
	ri, _ := ctx.Value(requestInfoKey{}).(RequestInfo)
	return ri
}

func (s *Server) withRequestInfo(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		watchParam := r.URL.Query().Get("watch")
		ri := ParseRequest(r.Method, r.URL.Path, watchParam == "true" || watchParam == "1")
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, ri)))
	})
}

// withWarmStack serves a request that is not long-running on a warm
// goroutine when one is idle. Watches, streams and proxies stay on their
// own goroutines: they would hold a pool goroutine for their lifetime.
func (s *Server) withWarmStack(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if longRunning(requestInfoFrom(r.Context()), r) {
			next.ServeHTTP(w, r)
			return
		}
		s.warm.TryRun(func() { next.ServeHTTP(w, r) })
	})
}

// withRecovery turns a panic into a 500 Status and a logged stack, and
// counts every request by verb, resource and code.
func (s *Server) withRecovery(next http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		start := time.Now()
		w := &statusRecorder{ResponseWriter: rw}
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
			s.observe(requestInfoFrom(r.Context()), r.Method, w.code, time.Since(start))
		}()
		next.ServeHTTP(w, r)
	})
}

func (s *Server) observe(ri RequestInfo, method string, code int, took time.Duration) {
	if code == 0 {
		code = http.StatusOK
	}
	verb := ri.Verb
	if verb == "" {
		verb = strings.ToUpper(method)
	}
	s.requests.WithLabelValues(verb, ri.Group, ri.Version, ri.Resource, ri.Subresource, strconv.Itoa(code)).Inc()
	if verb != "watch" {
		s.latency.WithLabelValues(verb, ri.Group, ri.Version, ri.Resource, ri.Subresource).Observe(took.Seconds())
	}
}

func (s *Server) withPublicPaths(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/cacerts" {
			// A joining node trusts this only if its hash matches the one
			// in its join token.
			w.Header().Set("Content-Type", "application/x-pem-file")
			_, _ = w.Write(s.caPEM)
			return
		}
		if h := s.public[r.URL.Path]; h != nil {
			h.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) withAuthentication(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, ok, err := s.authn.Authenticate(r)
		switch {
		case err != nil, !ok && !s.anonymous:
			s.auditFailedAuthentication(w, r)
			s.writeError(w, r, statusError(http.StatusUnauthorized, "Unauthorized", "Unauthorized"))
			return
		case !ok:
			user = auth.User{Name: authz.Anonymous, Groups: []string{authz.Unauthenticated}}
		}
		next.ServeHTTP(w, r.WithContext(auth.WithUser(r.Context(), user)))
	})
}

// withBootstrapLimit confines a node-join (bootstrap token) identity to
// what joining needs: discovery and its CertificateSigningRequests.
func (s *Server) withBootstrapLimit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, _ := auth.UserFrom(r.Context())
		if ri := requestInfoFrom(r.Context()); !bootstrapAllowed(user, ri) {
			s.writeError(w, r, statusError(http.StatusForbidden, "Forbidden", fmt.Sprintf("User %q cannot %s resource %q in API group %q: a join token may only request node certificates", user.Name, ri.Verb, ri.Resource, ri.Group)))
			return
		}
		next.ServeHTTP(w, r)
	})
}

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

func (s *Server) withBodyLimit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > maxBodyBytes {
			s.writeError(w, r, statusError(http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", fmt.Sprintf("Request entity too large: limit is %d", maxBodyBytes)))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// route is the end of the chain: it picks the handler for the path, and
// writes the Status of the error a handler returns (unless the handler had
// already begun its response, as a watch has).
func (s *Server) route(rw http.ResponseWriter, r *http.Request) {
	w, ok := rw.(*statusRecorder)
	if !ok {
		w = &statusRecorder{ResponseWriter: rw}
	}
	if err := s.dispatch(w, r); err != nil {
		if w.code != 0 {
			s.log.Debug("error after the response began", "path", r.URL.Path, "err", err)
			return
		}
		s.writeError(w, r, err)
	}
}

func (s *Server) dispatch(w http.ResponseWriter, r *http.Request) error {
	switch p := r.URL.Path; {
	case p == "/healthz", p == "/livez":
		s.serveHealth(w, r, false)
	case p == "/readyz":
		s.serveHealth(w, r, true)
	case p == "/version", p == "/version/":
		writeJSON(w, http.StatusOK, s.version)
	case (p == "/.well-known/openid-configuration" || p == "/openid/v1/jwks") && s.saKey != nil:
		doc, ct := s.saKey.Discovery(s.externalURL), "application/json"
		if p == "/openid/v1/jwks" {
			doc, ct = s.saKey.JWKS(), "application/jwk-set+json"
		}
		w.Header().Set("Content-Type", ct)
		_, _ = w.Write(doc)
	case strings.HasPrefix(p, "/debug/pprof") && s.profiling:
		servePprof(w, r)
	case s.operations[p] != nil:
		s.operations[p].ServeHTTP(w, r)
	case p == "/metrics":
		promhttp.HandlerFor(s.metrics, promhttp.HandlerOpts{}).ServeHTTP(w, r)
	case p == "/openapi/v2":
		return s.serveOpenAPIV2(w, r)
	case strings.HasPrefix(p, "/openapi/v3"):
		return s.serveOpenAPIV3(w, r)
	case p == "/api" || p == "/api/" || p == "/apis" || p == "/apis/":
		return s.serveDiscoveryRoot(w, r)
	case strings.HasPrefix(p, "/api/") || strings.HasPrefix(p, "/apis/"):
		ri := requestInfoFrom(r.Context())
		if route := s.routes.Lookup(ri.Group, ri.Version); route != nil && ri.Version != "" {
			s.serveAggregated(w, r, route, ri)
			return nil
		}
		if ri.IsResource {
			return s.serveResource(w, r, ri)
		}
		return s.serveGroupDiscovery(w, r, ri)
	default:
		return apierrors.NewNotFound(emptyGR, r.URL.Path)
	}
	return nil
}

// withWarnings lets admission plugins warn the client (each distinct
// warning becomes a Warning header, code 299, which kubectl prints) and
// annotate the request's audit event.
func (s *Server) withWarnings(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen := map[string]bool{}
		ctx := admission.WithWarnings(r.Context(), func(msg string) {
			if !seen[msg] && len(seen) < maxWarnings {
				seen[msg] = true
				w.Header().Add("Warning", fmt.Sprintf("299 - %q", msg))
			}
		})
		ctx = admission.WithAnnotations(ctx, func(k, v string) { annotate(ctx, k, v) })
		// Without a quorum the answers come from this server's caches,
		// which nothing updates: say so on every one.
		if s.degraded != nil {
			if msg := s.degraded(); msg != "" {
				seen[msg] = true
				w.Header().Add("Warning", fmt.Sprintf("299 - %q", msg))
			}
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// maxWarnings bounds the Warning headers of one response.
const maxWarnings = 50
