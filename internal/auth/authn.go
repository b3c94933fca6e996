// Package auth authenticates API requests (client certificates and bearer
// tokens from a token file).
package auth

import (
	"context"
	"crypto/subtle"
	"crypto/x509"
	"encoding/csv"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// User is an authenticated identity.
type User struct {
	Name   string
	UID    string
	Groups []string
	// Extra is what the credential says besides (a ServiceAccount token's
	// pod and node, its ID).
	Extra map[string][]string
}

// TokenAuthenticator authenticates bearer tokens a static list does not
// hold (ServiceAccount tokens): the user, or false for a token it does not
// accept for any of the audiences.
type TokenAuthenticator interface {
	AuthenticateToken(token string, audiences []string) (User, bool)
}

// Authenticator identifies the user of a request.
type Authenticator struct {
	mu     sync.RWMutex
	tokens map[string]User
	// Tokens authenticates the bearer tokens the static list does not
	// hold (ServiceAccount tokens); nil: none.
	Tokens TokenAuthenticator
	// Audiences are the API server's own audiences: a ServiceAccount
	// token must be meant for one of them.
	Audiences []string
	// ClientCAs verify client certificates. The TLS listener only asks
	// for a certificate; verifying it here turns one from another CA, or
	// expired, into a 401 rather than a failed handshake, as upstream.
	ClientCAs *x509.CertPool
	// verified remembers chains that verified against ClientCAs.
	verified certCache
}

// ErrUnauthorized is a request whose credentials are not valid: the
// response is 401 with nothing said of why.
var ErrUnauthorized = errors.New("Unauthorized")

// AddToken accepts a bearer token for user (for example a node-join
// bootstrap token).
func (a *Authenticator) AddToken(token string, u User) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.tokens[token] = u
}

type userKey struct{}

// WithUser stores the request's user in ctx.
func WithUser(ctx context.Context, u User) context.Context {
	return context.WithValue(ctx, userKey{}, u)
}

// UserFrom returns the user WithUser stored.
func UserFrom(ctx context.Context) (User, bool) {
	u, ok := ctx.Value(userKey{}).(User)
	return u, ok
}

// New returns an authenticator with tokens loaded from tokenFile (a CSV of
// token,user,uid,"group1,group2" as upstream's --token-auth-file), if set.
func New(tokenFile string) (*Authenticator, error) {
	a := &Authenticator{tokens: map[string]User{}}
	if tokenFile == "" {
		return a, nil
	}
	f, err := os.Open(tokenFile)
	if err != nil {
		return nil, fmt.Errorf("open token file: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	r.Comment = '#'
	records, err := r.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("parse token file %s: %w", tokenFile, err)
	}
	for i, rec := range records {
		if len(rec) < 3 {
			return nil, fmt.Errorf("token file %s line %d: want token,user,uid[,groups]", tokenFile, i+1)
		}
		u := User{Name: rec[1], UID: rec[2]}
		if len(rec) > 3 && rec[3] != "" {
			u.Groups = strings.Split(rec[3], ",")
		}
		a.tokens[rec[0]] = u
	}
	return a, nil
}

// Authenticate returns the request's user; false with a nil error for a
// request that presents no credentials (anonymous), ErrUnauthorized for one
// whose credentials are not valid. A client certificate gives CN as user
// and O as groups.
func (a *Authenticator) Authenticate(r *http.Request) (User, bool, error) {
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		if chains := r.TLS.VerifiedChains; len(chains) > 0 {
			return certUser(chains[0][0]), true, nil
		}
		if a.ClientCAs == nil {
			return User{}, false, ErrUnauthorized
		}
		return a.verifyClientCert(r.TLS.PeerCertificates, time.Now())
	}
	if h := r.Header.Get("Authorization"); h != "" {
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return User{}, false, ErrUnauthorized
		}
		u, ok := a.AuthenticateToken(strings.TrimSpace(tok), a.Audiences)
		if !ok {
			return User{}, false, ErrUnauthorized
		}
		return u, true, nil
	}
	return User{}, false, nil
}

// verifyClientCert verifies a presented chain against ClientCAs, once per
// chain while it is valid.
func (a *Authenticator) verifyClientCert(certs []*x509.Certificate, now time.Time) (User, bool, error) {
	key := chainKey(certs)
	if u, ok := a.verified.lookup(key, now); ok {
		return u, true, nil
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	chains, err := certs[0].Verify(x509.VerifyOptions{Roots: a.ClientCAs, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil || len(chains) == 0 {
		return User{}, false, ErrUnauthorized
	}
	u := certUser(chains[0][0])
	a.verified.store(key, chains[0], u)
	return u, true, nil
}

// certUser is a client certificate's user: CN as name, O as groups.
func certUser(c *x509.Certificate) User {
	return User{Name: c.Subject.CommonName, Groups: append(append([]string{}, c.Subject.Organization...), "system:authenticated")}
}

// AuthenticateToken authenticates a bearer token for one of audiences (the
// API server's, or a TokenReview's): the token file's and join tokens
// first, then ServiceAccount tokens. The user is in system:authenticated.
func (a *Authenticator) AuthenticateToken(tok string, audiences []string) (User, bool) {
	a.mu.RLock()
	for t, u := range a.tokens {
		if subtle.ConstantTimeCompare([]byte(t), []byte(tok)) == 1 {
			a.mu.RUnlock()
			u.Groups = append(append([]string{}, u.Groups...), "system:authenticated")
			return u, true
		}
	}
	a.mu.RUnlock()
	if a.Tokens == nil {
		return User{}, false
	}
	u, ok := a.Tokens.AuthenticateToken(tok, audiences)
	if !ok {
		return User{}, false
	}
	u.Groups = append(append([]string{}, u.Groups...), "system:authenticated")
	return u, true
}
