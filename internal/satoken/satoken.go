// Package satoken issues and verifies ServiceAccount tokens: JWTs signed
// with the cluster's service-account key (RS256, as upstream's default),
// bound tokens (an audience, an expiry, and the pod, Secret or node they
// belong to) and legacy Secret-held tokens; and it publishes the public key
// as the OIDC discovery documents so others can verify them.
package satoken

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// LegacyIssuer is the issuer of tokens kept in Secrets of type
// kubernetes.io/service-account-token.
const LegacyIssuer = "kubernetes/serviceaccount"

// Ref names an object a token is bound to (or its ServiceAccount).
type Ref struct {
	Name string `json:"name"`
	UID  string `json:"uid"`
}

// Private are the kubernetes.io claims of a bound token.
type Private struct {
	Namespace      string `json:"namespace"`
	ServiceAccount Ref    `json:"serviceaccount"`
	Pod            *Ref   `json:"pod,omitempty"`
	Secret         *Ref   `json:"secret,omitempty"`
	Node           *Ref   `json:"node,omitempty"`
	// WarnAfter is when an extended token (see registry.Tokens) would
	// have expired unextended.
	WarnAfter int64 `json:"warnafter,omitempty"`
}

// Claims are a token's claims: the registered ones, the kubernetes.io
// ones of a bound token, or the flat ones of a legacy token.
type Claims struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	Audience  []string `json:"aud,omitempty"`
	Expiry    int64    `json:"exp,omitempty"`
	NotBefore int64    `json:"nbf,omitempty"`
	IssuedAt  int64    `json:"iat,omitempty"`
	ID        string   `json:"jti,omitempty"`
	K8s       *Private `json:"kubernetes.io,omitempty"`

	LegacyNamespace string `json:"kubernetes.io/serviceaccount/namespace,omitempty"`
	LegacySecret    string `json:"kubernetes.io/serviceaccount/secret.name,omitempty"`
	LegacyName      string `json:"kubernetes.io/serviceaccount/service-account.name,omitempty"`
	LegacyUID       string `json:"kubernetes.io/serviceaccount/service-account.uid,omitempty"`
}

// Subject is the user name of a ServiceAccount's tokens.
func Subject(namespace, name string) string {
	return "system:serviceaccount:" + namespace + ":" + name
}

// Key is the cluster's service-account signing key and issuer.
type Key struct {
	priv   *rsa.PrivateKey
	kid    string
	Issuer string
}

// LoadOrCreate reads the signing key at dir/sa.key, making a 2048-bit RSA
// key (mode 0600) on first start.
func LoadOrCreate(dir, issuer string) (*Key, error) {
	path := filepath.Join(dir, "sa.key")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		priv, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, fmt.Errorf("service-account key: %w", err)
		}
		b = pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(priv)})
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return nil, fmt.Errorf("write service-account key: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("read service-account key: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("service-account key %s: no PEM block", path)
	}
	priv, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("service-account key %s: %w", path, err)
	}
	return NewKey(priv, issuer)
}

// NewKey wraps a private key; its key ID is upstream's: the base64url
// SHA-256 of the public key's DER.
func NewKey(priv *rsa.PrivateKey, issuer string) (*Key, error) {
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(der)
	return &Key{priv: priv, kid: base64.RawURLEncoding.EncodeToString(sum[:]), Issuer: issuer}, nil
}

type header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid,omitempty"`
	Typ string `json:"typ,omitempty"`
}

// Sign makes a token of the claims.
func (k *Key) Sign(c Claims) (string, error) {
	h, err := json.Marshal(header{Alg: "RS256", Kid: k.kid})
	if err != nil {
		return "", err
	}
	p, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	signed := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p)
	sum := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, k.priv, crypto.SHA256, sum[:])
	if err != nil {
		return "", err
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// ErrInvalid is any token that is not one of ours or not valid now; the
// reason stays on the server (a 401 says nothing of it).
var ErrInvalid = errors.New("invalid service account token")

// LooksLikeJWT: three dot-separated base64url parts, the first a JSON
// header. Other bearer tokens (the token file's, the join token) never do.
func LooksLikeJWT(tok string) bool {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return false
	}
	h, err := base64.RawURLEncoding.DecodeString(parts[0])
	return err == nil && len(h) > 0 && h[0] == '{'
}

// Verify checks a token's signature (RS256 only) and its issuer, time
// window and audience (a legacy token has neither audience nor expiry)
// against now, and returns its claims.
func (k *Key) Verify(tok string, audiences []string, now time.Time) (*Claims, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, ErrInvalid
	}
	hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	pb, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, ErrInvalid
	}
	var h header
	if err := json.Unmarshal(hb, &h); err != nil || h.Alg != "RS256" {
		return nil, ErrInvalid
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&k.priv.PublicKey, crypto.SHA256, sum[:], sig); err != nil {
		return nil, ErrInvalid
	}
	var c Claims
	if err := json.Unmarshal(pb, &c); err != nil {
		return nil, ErrInvalid
	}
	switch c.Issuer {
	case LegacyIssuer:
		if c.LegacyNamespace == "" || c.LegacyName == "" || c.LegacySecret == "" || c.Subject != Subject(c.LegacyNamespace, c.LegacyName) {
			return nil, ErrInvalid
		}
		return &c, nil
	case k.Issuer:
	default:
		return nil, ErrInvalid
	}
	// A minute of leeway for clock skew, as upstream.
	const skew = 60
	t := now.Unix()
	if c.K8s == nil || c.Expiry == 0 || t > c.Expiry+skew || (c.NotBefore != 0 && t < c.NotBefore-skew) {
		return nil, ErrInvalid
	}
	if c.Subject != Subject(c.K8s.Namespace, c.K8s.ServiceAccount.Name) {
		return nil, ErrInvalid
	}
	if !slices.ContainsFunc(c.Audience, func(a string) bool { return slices.Contains(audiences, a) }) {
		return nil, ErrInvalid
	}
	return &c, nil
}

// Discovery is the OIDC discovery document (/.well-known/openid-configuration),
// as upstream publishes it.
func (k *Key) Discovery(externalURL string) []byte {
	doc := map[string]any{
		"issuer":                                k.Issuer,
		"jwks_uri":                              strings.TrimSuffix(externalURL, "/") + "/openid/v1/jwks",
		"response_types_supported":              []string{"id_token"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
	}
	b, _ := json.Marshal(doc)
	return b
}

// JWKS is the public key set (/openid/v1/jwks).
func (k *Key) JWKS() []byte {
	pub := k.priv.PublicKey
	doc := map[string]any{"keys": []map[string]string{{
		"use": "sig", "kty": "RSA", "kid": k.kid, "alg": "RS256",
		"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}}}
	b, _ := json.Marshal(doc)
	return b
}
