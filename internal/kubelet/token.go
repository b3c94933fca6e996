package kubelet

import (
	"context"
	"sync"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// tokenCache keeps the tokens the node asked for its pods' projected
// volumes: a volume is rewritten every sync, the token only when 80 % of
// its life has passed (or 24 hours, whichever is sooner), as upstream's
// token manager does, so a running pod always holds a valid token without a
// TokenRequest per sync.
type tokenCache struct {
	mu sync.Mutex
	m  map[tokenKey]cachedToken
}

type tokenKey struct {
	pod      types.UID
	sa       string
	audience string
	seconds  int64
}

type cachedToken struct {
	token   string
	refresh time.Time
}

// forget drops a pod's tokens.
func (c *tokenCache) forget(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.m {
		if k.pod == uid {
			delete(c.m, k)
		}
	}
}

// requestToken obtains a token bound to the pod through the service
// account's token subresource, from the cache while it is fresh.
func (k *Kubelet) requestToken(ctx context.Context, pod *v1.Pod, p *v1.ServiceAccountTokenProjection) (string, error) {
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	expiry := int64(3600)
	if p.ExpirationSeconds != nil {
		expiry = *p.ExpirationSeconds
	}
	key := tokenKey{pod: pod.UID, sa: sa, audience: p.Audience, seconds: expiry}
	now := k.clock.Now()
	k.tokens.mu.Lock()
	if t, ok := k.tokens.m[key]; ok && now.Before(t.refresh) {
		k.tokens.mu.Unlock()
		return t.token, nil
	}
	k.tokens.mu.Unlock()
	var aud []string
	if p.Audience != "" {
		aud = []string{p.Audience}
	}
	tr, err := k.client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, &authnv1.TokenRequest{
		Spec: authnv1.TokenRequestSpec{
			Audiences: aud, ExpirationSeconds: ptr.To(expiry),
			BoundObjectRef: &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", err
	}
	life := tr.Status.ExpirationTimestamp.Sub(now)
	every := min(life*8/10, 24*time.Hour)
	if k.cfg.TokenRefresh > 0 {
		every = min(every, k.cfg.TokenRefresh)
	}
	refresh := now.Add(every)
	k.tokens.mu.Lock()
	if k.tokens.m == nil {
		k.tokens.m = map[tokenKey]cachedToken{}
	}
	k.tokens.m[key] = cachedToken{token: tr.Status.Token, refresh: refresh}
	k.tokens.mu.Unlock()
	return tr.Status.Token, nil
}
