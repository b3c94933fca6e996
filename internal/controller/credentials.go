package controller

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
)

// Each controller talks to the API as its own ServiceAccount in
// kube-system (upstream's --use-service-account-credentials), so RBAC
// holds it to its system:controller:<account> role and the audit trail
// names it. The controller manager's own identity keeps what all share:
// the informers, leader election, and making these credentials.

const (
	// tokenLifetime is what a controller's token is asked for, as
	// upstream's controller manager does.
	tokenLifetime = time.Hour
	// tokenRefreshAt is the share of a token's life after which the next
	// request gets a new one.
	tokenRefreshAt = 0.8
)

// accountTokens hands out a ServiceAccount's bearer token, asking the
// TokenRequest API (as the controller manager) when none is held or the
// held one is old, and making the ServiceAccount first if it is missing.
type accountTokens struct {
	root      kubernetes.Interface
	namespace string
	name      string
	clock     clock.PassiveClock

	mu      sync.Mutex
	token   string
	renewAt time.Time
}

// Token returns a token that is valid for a while yet.
func (a *accountTokens) Token(ctx context.Context) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.clock.Now()
	if a.token != "" && now.Before(a.renewAt) {
		return a.token, nil
	}
	sa, err := a.ensureAccount(ctx)
	if err != nil {
		return "", err
	}
	req := &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(tokenLifetime / time.Second))}}
	out, err := a.root.CoreV1().ServiceAccounts(a.namespace).CreateToken(ctx, sa.Name, req, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for %s/%s: %w", a.namespace, a.name, err)
	}
	issued := now
	life := out.Status.ExpirationTimestamp.Sub(issued)
	a.token = out.Status.Token
	a.renewAt = issued.Add(time.Duration(float64(life) * tokenRefreshAt))
	return a.token, nil
}

// Forget drops the held token, so the next request asks for a new one: the
// API server refused it (its ServiceAccount was deleted and made again, say).
func (a *accountTokens) Forget(token string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.token == token {
		a.token = ""
	}
}

func (a *accountTokens) ensureAccount(ctx context.Context) (*corev1.ServiceAccount, error) {
	sas := a.root.CoreV1().ServiceAccounts(a.namespace)
	sa, err := sas.Get(ctx, a.name, metav1.GetOptions{})
	if err == nil {
		return sa, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("serviceaccount %s/%s: %w", a.namespace, a.name, err)
	}
	sa, err = sas.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: a.name, Namespace: a.namespace}}, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return sas.Get(ctx, a.name, metav1.GetOptions{})
	}
	if err != nil {
		return nil, fmt.Errorf("create serviceaccount %s/%s: %w", a.namespace, a.name, err)
	}
	return sa, nil
}

// bearer sets each request's Authorization from tokens.
type bearer struct {
	tokens *accountTokens
	next   http.RoundTripper
}

func (b bearer) RoundTrip(req *http.Request) (*http.Response, error) {
	tok, err := b.tokens.Token(req.Context())
	if err != nil {
		return nil, err
	}
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "Bearer "+tok)
	resp, err := b.next.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusUnauthorized {
		b.tokens.Forget(tok)
	}
	return resp, err
}

// accountConfig is root's connection with the credentials of the
// ServiceAccount namespace/name instead of root's own.
func accountConfig(root *rest.Config, client kubernetes.Interface, namespace, name string, clk clock.PassiveClock) *rest.Config {
	// Anonymous: root's server, CA and content types, without its
	// client certificate.
	cfg := rest.AnonymousClientConfig(root)
	cfg.UserAgent = root.UserAgent + "/" + name
	tokens := &accountTokens{root: client, namespace: namespace, name: name, clock: clk}
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return bearer{tokens: tokens, next: rt} }
	return cfg
}
