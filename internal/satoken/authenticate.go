package satoken

import (
	"crypto/sha256"
	"crypto/subtle"
	"strings"
	"sync"
	"time"

	"github.com/skiff-sh/skiff/internal/auth"
)

// Objects looks up what a token names, in the API server's caches.
type Objects interface {
	// UID is the UID of the object of kind (ServiceAccount, Pod, Secret,
	// Node) at namespace/name, and whether it exists and is not being
	// deleted.
	UID(kind, namespace, name string) (string, bool)
	// SecretToken is the token a Secret of type
	// kubernetes.io/service-account-token holds.
	SecretToken(namespace, name string) ([]byte, bool)
}

// Groups of every ServiceAccount, and of those of one namespace.
const (
	AllServiceAccounts = "system:serviceaccounts"
	// Extra keys upstream sets on a bound token's user.
	ExtraPodName      = "authentication.kubernetes.io/pod-name"
	ExtraPodUID       = "authentication.kubernetes.io/pod-uid"
	ExtraNodeName     = "authentication.kubernetes.io/node-name"
	ExtraNodeUID      = "authentication.kubernetes.io/node-uid"
	ExtraCredentialID = "authentication.kubernetes.io/credential-id"
)

// Authenticator accepts the ServiceAccount tokens of Key: signed, in time,
// for an audience asked, and only while their ServiceAccount (same UID)
// and the object they are bound to (same UID) exist.
type Authenticator struct {
	Key     *Key
	Objects Objects
	Now     func() time.Time

	// cache keeps recent verdicts for cacheTTL, as upstream's cached token
	// authenticator: an in-cluster client sends the same token with every
	// request, and an RSA verification costs tens of microseconds. A token
	// whose object is deleted stays valid for at most cacheTTL more.
	mu    sync.Mutex
	cache map[[32]byte]verdict
}

type verdict struct {
	user auth.User
	ok   bool
	at   time.Time
}

const (
	cacheTTL  = 10 * time.Second
	cacheSize = 4096
)

// AuthenticateToken implements auth.TokenAuthenticator.
func (a *Authenticator) AuthenticateToken(tok string, audiences []string) (auth.User, bool) {
	if !LooksLikeJWT(tok) {
		return auth.User{}, false
	}
	now := time.Now()
	if a.Now != nil {
		now = a.Now()
	}
	key := sha256.Sum256([]byte(strings.Join(audiences, "\x00") + "\x00" + tok))
	a.mu.Lock()
	if v, ok := a.cache[key]; ok && now.Sub(v.at) < cacheTTL {
		a.mu.Unlock()
		return v.user, v.ok
	}
	a.mu.Unlock()
	u, ok := a.authenticate(tok, audiences, now)
	a.mu.Lock()
	if a.cache == nil || len(a.cache) >= cacheSize {
		a.cache = map[[32]byte]verdict{}
	}
	a.cache[key] = verdict{user: u, ok: ok, at: now}
	a.mu.Unlock()
	return u, ok
}

func (a *Authenticator) authenticate(tok string, audiences []string, now time.Time) (auth.User, bool) {
	c, err := a.Key.Verify(tok, audiences, now)
	if err != nil {
		return auth.User{}, false
	}
	if c.Issuer == LegacyIssuer {
		uid, ok := a.Objects.UID("ServiceAccount", c.LegacyNamespace, c.LegacyName)
		if !ok || (c.LegacyUID != "" && uid != c.LegacyUID) {
			return auth.User{}, false
		}
		// The token must still be the one its Secret holds.
		held, ok := a.Objects.SecretToken(c.LegacyNamespace, c.LegacySecret)
		if !ok || subtle.ConstantTimeCompare(held, []byte(tok)) != 1 {
			return auth.User{}, false
		}
		return user(c.LegacyNamespace, c.LegacyName, uid, nil), true
	}
	p := c.K8s
	uid, ok := a.Objects.UID("ServiceAccount", p.Namespace, p.ServiceAccount.Name)
	if !ok || uid != p.ServiceAccount.UID {
		return auth.User{}, false
	}
	extra := map[string][]string{}
	if c.ID != "" {
		extra[ExtraCredentialID] = []string{"JTI=" + c.ID}
	}
	for _, b := range []struct {
		kind, ns string
		ref      *Ref
	}{{"Pod", p.Namespace, p.Pod}, {"Secret", p.Namespace, p.Secret}, {"Node", "", p.Node}} {
		if b.ref == nil {
			continue
		}
		// A token bound to a pod also names the pod's node; the node
		// going away does not end the pod's token, the pod going does.
		if b.kind == "Node" && p.Pod != nil {
			extra[ExtraNodeName], extra[ExtraNodeUID] = []string{b.ref.Name}, []string{b.ref.UID}
			continue
		}
		got, ok := a.Objects.UID(b.kind, b.ns, b.ref.Name)
		if !ok || got != b.ref.UID {
			return auth.User{}, false
		}
		switch b.kind {
		case "Pod":
			extra[ExtraPodName], extra[ExtraPodUID] = []string{b.ref.Name}, []string{b.ref.UID}
		case "Node":
			extra[ExtraNodeName], extra[ExtraNodeUID] = []string{b.ref.Name}, []string{b.ref.UID}
		}
	}
	return user(p.Namespace, p.ServiceAccount.Name, uid, extra), true
}

func user(namespace, name, uid string, extra map[string][]string) auth.User {
	if len(extra) == 0 {
		extra = nil
	}
	return auth.User{Name: Subject(namespace, name), UID: uid, Groups: []string{AllServiceAccounts, AllServiceAccounts + ":" + namespace}, Extra: extra}
}
