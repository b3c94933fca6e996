// Package join lets a machine join the cluster as a node: the server's
// join token, and the agent's side (trusting the CA by the token's hash,
// then obtaining node certificates through CertificateSigningRequests).
package join

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Token is a node-join token: "K10<sha256 of the CA certificate>::<id>.<secret>".
// The id and secret form a bootstrap token (upstream's shape) that may
// only request node client certificates; the hash lets the joining node
// check the server's CA before trusting it.
type Token struct {
	CAHash string
	ID     string
	Secret string
}

const prefix = "K10"

func (t Token) String() string { return prefix + t.CAHash + "::" + t.ID + "." + t.Secret }

// Bearer is the bootstrap token presented to the API.
func (t Token) Bearer() string { return t.ID + "." + t.Secret }

// User is the bootstrap identity the token authenticates as.
func (t Token) User() string { return "system:bootstrap:" + t.ID }

// Groups are the bootstrap identity's groups.
func (t Token) Groups() []string {
	return []string{"system:bootstrappers", "system:bootstrappers:skiff:default-node-token"}
}

// Parse reads a token, rejecting anything malformed.
func Parse(s string) (Token, error) {
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return Token{}, errors.New("join token: want K10<ca-hash>::<id>.<secret>")
	}
	hash, cred, ok := strings.Cut(rest, "::")
	if !ok {
		return Token{}, errors.New("join token: missing '::'")
	}
	id, secret, ok := strings.Cut(cred, ".")
	if _, err := hex.DecodeString(hash); err != nil || len(hash) != 64 || !ok || len(id) != 6 || len(secret) != 16 {
		return Token{}, errors.New("join token: malformed (want K10<64 hex>::<6 chars>.<16 chars>)")
	}
	return Token{CAHash: hash, ID: id, Secret: secret}, nil
}

// CAHash is the hex SHA-256 of a DER certificate.
func CAHash(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// MatchesCA reports whether der is the CA the token names.
func (t Token) MatchesCA(der []byte) bool {
	return subtle.ConstantTimeCompare([]byte(CAHash(der)), []byte(t.CAHash)) == 1
}

// LoadOrCreate reads the server's token from path, creating it (0600) on
// first start for the CA whose DER certificate is given.
func LoadOrCreate(path string, caDER []byte) (Token, error) {
	if b, err := os.ReadFile(path); err == nil {
		t, err := Parse(string(b))
		if err != nil {
			return Token{}, fmt.Errorf("%s: %w", path, err)
		}
		if t.MatchesCA(caDER) {
			return t, nil
		}
	}
	t := Token{CAHash: CAHash(caDER), ID: random(6), Secret: random(16)}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return Token{}, err
	}
	if err := os.WriteFile(path, []byte(t.String()+"\n"), 0o600); err != nil {
		return Token{}, fmt.Errorf("write join token: %w", err)
	}
	return t, nil
}

func random(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
