package auth

import (
	"crypto/sha256"
	"crypto/x509"
	"sync"
	"time"
)

// certCacheSize bounds the verified-certificate cache: enough for every
// node, component and admin of a large cluster; past it the cache starts
// again rather than growing with the certificates a client can present.
const certCacheSize = 4096

// certCache remembers which client certificate chains verified against the
// client CAs. Verifying an ECDSA chain costs tens of microseconds, every
// request of a connection presents the same chain, and a verified chain
// stays valid until it expires (client certificates are not revoked), so
// each chain is verified once and then only its validity window is checked.
type certCache struct {
	mu      sync.Mutex
	entries map[[sha256.Size]byte]verifiedChain
}

// verifiedChain is what one verification found: the leaf's identity and
// the window in which every certificate of the chain is valid.
type verifiedChain struct {
	user      User
	notBefore time.Time
	notAfter  time.Time
}

// chainKey names a presented chain: its certificates' bytes, in order.
func chainKey(certs []*x509.Certificate) [sha256.Size]byte {
	h := sha256.New()
	for _, c := range certs {
		h.Write(c.Raw)
	}
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

// lookup returns the user of a chain verified before, while now is inside
// its window.
func (c *certCache) lookup(k [sha256.Size]byte, now time.Time) (User, bool) {
	c.mu.Lock()
	v, ok := c.entries[k]
	c.mu.Unlock()
	if !ok || now.Before(v.notBefore) || now.After(v.notAfter) {
		return User{}, false
	}
	u := v.user
	u.Groups = append([]string(nil), u.Groups...) // callers may change theirs
	return u, true
}

// store remembers a verified chain and its user.
func (c *certCache) store(k [sha256.Size]byte, chain []*x509.Certificate, u User) {
	v := verifiedChain{user: u}
	v.user.Groups = append([]string(nil), u.Groups...)
	for i, cert := range chain {
		if i == 0 || cert.NotBefore.After(v.notBefore) {
			v.notBefore = cert.NotBefore
		}
		if i == 0 || cert.NotAfter.Before(v.notAfter) {
			v.notAfter = cert.NotAfter
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) >= certCacheSize {
		c.entries = map[[sha256.Size]byte]verifiedChain{}
	}
	c.entries[k] = v
}
