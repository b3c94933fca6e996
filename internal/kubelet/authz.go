package kubelet

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The node agent's HTTPS API is authenticated and authorized by the API
// server, as upstream's kubelet in webhook mode: a client certificate of
// the cluster CA or a bearer token (a TokenReview), then a
// SubjectAccessReview for the node's subresource the path names. The API
// server's own client (kube-apiserver-kubelet-client, which proxies logs,
// exec and port-forward) is admitted by name without a review.

// apiServerClient is the API server's client certificate's name.
const apiServerClient = "kube-apiserver-kubelet-client"

// reviewTTL is how long a decision is reused (upstream: 5 minutes for an
// allowed one, 30 s for a denied one; one short period for both here).
const reviewTTL = 30 * time.Second

type review struct {
	allowed bool
	at      time.Time
}

// reviews caches decisions and token authentications.
type reviews struct {
	mu sync.Mutex
	m  map[string]review
}

func (r *reviews) get(key string, now time.Time) (review, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.m[key]
	if !ok || now.Sub(v.at) > reviewTTL {
		return review{}, false
	}
	return v, true
}

func (r *reviews) put(key string, v review) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil || len(r.m) > 10000 {
		r.m = map[string]review{}
	}
	r.m[key] = v
}

// nodeSubresource is what a path of the node's API asks, as upstream's
// kubelet maps it.
func nodeSubresource(path string) string {
	switch {
	case strings.HasPrefix(path, "/stats"):
		return "stats"
	case strings.HasPrefix(path, "/metrics"):
		return "metrics"
	case strings.HasPrefix(path, "/logs"):
		return "log"
	}
	return "proxy"
}

// verbOf is the API verb of an HTTP method, as upstream's kubelet maps it.
func verbOf(method string) string {
	switch method {
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		return "delete"
	}
	return "get"
}

// authorize admits the API server, and anyone the API says may use the
// node's subresource.
func (k *Kubelet) authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			next.ServeHTTP(w, r)
			return
		}
		var user authnv1.UserInfo
		switch {
		case r.TLS != nil && len(r.TLS.VerifiedChains) > 0:
			subj := r.TLS.VerifiedChains[0][0].Subject
			if subj.CommonName == apiServerClient {
				next.ServeHTTP(w, r)
				return
			}
			user = authnv1.UserInfo{Username: subj.CommonName, Groups: append(slices.Clone(subj.Organization), "system:authenticated")}
		case strings.HasPrefix(r.Header.Get("Authorization"), "Bearer "):
			u, ok := k.authenticateToken(r.Context(), strings.TrimSpace(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")))
			if !ok {
				http.Error(w, "Unauthorized", http.StatusUnauthorized)
				return
			}
			user = u
		default:
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		sub, verb := nodeSubresource(r.URL.Path), verbOf(r.Method)
		if !k.allowed(r.Context(), user, verb, sub) {
			http.Error(w, fmt.Sprintf("Forbidden (user=%s, verb=%s, resource=nodes, subresource=%s)", user.Username, verb, sub), http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// authenticateToken asks the API who a bearer token is (TokenReview).
func (k *Kubelet) authenticateToken(ctx context.Context, token string) (authnv1.UserInfo, bool) {
	tr, err := k.client.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil || !tr.Status.Authenticated {
		return authnv1.UserInfo{}, false
	}
	return tr.Status.User, true
}

// allowed asks the API whether user may verb the node's subresource
// (SubjectAccessReview), reusing a recent answer.
func (k *Kubelet) allowed(ctx context.Context, u authnv1.UserInfo, verb, sub string) bool {
	key := u.Username + "\x00" + strings.Join(u.Groups, ",") + "\x00" + verb + "\x00" + sub
	now := k.clock.Now()
	if v, ok := k.reviews.get(key, now); ok {
		return v.allowed
	}
	extra := map[string]authorizationv1.ExtraValue{}
	for key, v := range u.Extra {
		extra[key] = authorizationv1.ExtraValue(v)
	}
	sar, err := k.client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: u.Username, UID: u.UID, Groups: u.Groups, Extra: extra,
		ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: verb, Resource: "nodes", Subresource: sub, Name: k.cfg.NodeName},
	}}, metav1.CreateOptions{})
	if err != nil {
		k.log.Warn("kubelet authorization review", "user", u.Username, "err", err)
		return false
	}
	k.reviews.put(key, review{allowed: sar.Status.Allowed, at: now})
	return sar.Status.Allowed
}
