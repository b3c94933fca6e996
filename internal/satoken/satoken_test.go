package satoken

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func testKey(t *testing.T, issuer string) *Key {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	k, err := NewKey(priv, issuer)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func bound(now time.Time, aud string, ttl time.Duration) Claims {
	return Claims{Issuer: "https://kubernetes.default.svc.cluster.local", Subject: Subject("a", "app"), Audience: []string{aud},
		IssuedAt: now.Unix(), NotBefore: now.Unix(), Expiry: now.Add(ttl).Unix(), ID: "j1",
		K8s: &Private{Namespace: "a", ServiceAccount: Ref{Name: "app", UID: "sa-uid"}, Pod: &Ref{Name: "p", UID: "p-uid"}}}
}

// TestVerify: a token verifies only as signed, by this key, within its
// time, for its audience.
func TestVerify(t *testing.T) {
	const iss = "https://kubernetes.default.svc.cluster.local"
	k, other := testKey(t, iss), testKey(t, iss)
	now := time.Unix(1_800_000_000, 0)
	good, err := k.Sign(bound(now, iss, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	c, err := k.Verify(good, []string{iss}, now.Add(time.Minute))
	if err != nil || c.K8s.Pod.UID != "p-uid" || c.Subject != "system:serviceaccount:a:app" {
		t.Fatalf("a good token: %+v %v", c, err)
	}
	foreign, _ := other.Sign(bound(now, iss, time.Hour))
	parts := strings.Split(good, ".")
	claims, _ := json.Marshal(bound(now, iss, 100*time.Hour))
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(claims) + "." + parts[2]
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." + parts[1] + "."
	cases := map[string]struct {
		tok string
		aud string
		at  time.Time
	}{
		"another key's":      {foreign, iss, now},
		"tampered claims":    {tampered, iss, now},
		"alg none":           {none, iss, now},
		"expired":            {good, iss, now.Add(2 * time.Hour)},
		"not yet valid":      {good, iss, now.Add(-time.Hour)},
		"another audience":   {good, "vault", now},
		"not a jwt":          {"abc", iss, now},
		"truncated":          {parts[0] + "." + parts[1], iss, now},
		"signature of other": {parts[0] + "." + parts[1] + "." + strings.Split(foreign, ".")[2], iss, now},
	}
	for name, c := range cases {
		if _, err := k.Verify(c.tok, []string{c.aud}, c.at); err != ErrInvalid {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	// A legacy token has no audience and no expiry.
	legacy, _ := k.Sign(Claims{Issuer: LegacyIssuer, Subject: Subject("a", "app"), LegacyNamespace: "a", LegacyName: "app", LegacySecret: "app-token", LegacyUID: "sa-uid"})
	if c, err := k.Verify(legacy, []string{iss}, now.Add(1000*time.Hour)); err != nil || c.LegacySecret != "app-token" {
		t.Errorf("legacy token: %+v %v", c, err)
	}
	if !LooksLikeJWT(good) || LooksLikeJWT("abcdef.0123456789abcdef") {
		t.Error("LooksLikeJWT")
	}
}

// TestJWKS: the published key verifies the tokens.
func TestJWKS(t *testing.T) {
	k := testKey(t, "https://issuer")
	var set struct {
		Keys []struct{ Kid, N, E, Alg string } `json:"keys"`
	}
	if err := json.Unmarshal(k.JWKS(), &set); err != nil || len(set.Keys) != 1 || set.Keys[0].Alg != "RS256" || set.Keys[0].Kid == "" {
		t.Fatalf("jwks: %s %v", k.JWKS(), err)
	}
	n, _ := base64.RawURLEncoding.DecodeString(set.Keys[0].N)
	if string(n) != string(k.priv.PublicKey.N.Bytes()) {
		t.Error("jwks modulus differs from the key's")
	}
	var disc map[string]any
	if err := json.Unmarshal(k.Discovery("https://10.0.0.1:6443"), &disc); err != nil || disc["issuer"] != "https://issuer" || disc["jwks_uri"] != "https://10.0.0.1:6443/openid/v1/jwks" {
		t.Errorf("discovery: %v %v", disc, err)
	}
}

type objects struct {
	uids    map[string]string
	secrets map[string][]byte
}

func (o objects) UID(kind, ns, name string) (string, bool) {
	u, ok := o.uids[kind+"/"+ns+"/"+name]
	return u, ok
}

func (o objects) SecretToken(ns, name string) ([]byte, bool) {
	b, ok := o.secrets[ns+"/"+name]
	return b, ok
}

// TestAuthenticator: a token lives as long as its ServiceAccount and what
// it is bound to.
func TestAuthenticator(t *testing.T) {
	const iss = "https://kubernetes.default.svc.cluster.local"
	k := testKey(t, iss)
	now := time.Unix(1_800_000_000, 0)
	objs := objects{uids: map[string]string{"ServiceAccount/a/app": "sa-uid", "Pod/a/p": "p-uid"}, secrets: map[string][]byte{}}
	a := &Authenticator{Key: k, Objects: objs, Now: func() time.Time { return now }}
	tok, _ := k.Sign(bound(now, iss, time.Hour))
	u, ok := a.AuthenticateToken(tok, []string{iss})
	if !ok || u.Name != "system:serviceaccount:a:app" || u.UID != "sa-uid" || u.Extra[ExtraPodName][0] != "p" || len(u.Groups) != 2 || u.Groups[1] != "system:serviceaccounts:a" {
		t.Fatalf("pod-bound token: %+v %v", u, ok)
	}
	// Verdicts are reused for ten seconds (as upstream's cache): the pod's
	// deletion ends its token at the next look after that.
	objs.uids["Pod/a/p"] = "another-pod"
	if _, ok := a.AuthenticateToken(tok, []string{iss}); !ok {
		t.Error("a verdict of a moment ago was not reused")
	}
	now = now.Add(11 * time.Second)
	if _, ok := a.AuthenticateToken(tok, []string{iss}); ok {
		t.Error("a token of a deleted (recreated) pod still works")
	}
	objs.uids["Pod/a/p"] = "p-uid"
	objs.uids["ServiceAccount/a/app"] = "new-sa"
	now = now.Add(11 * time.Second)
	if _, ok := a.AuthenticateToken(tok, []string{iss}); ok {
		t.Error("a token of a recreated ServiceAccount still works")
	}
	objs.uids["ServiceAccount/a/app"] = "sa-uid"
	now = now.Add(11 * time.Second)
	legacy, _ := k.Sign(Claims{Issuer: LegacyIssuer, Subject: Subject("a", "app"), LegacyNamespace: "a", LegacyName: "app", LegacySecret: "app-token", LegacyUID: "sa-uid"})
	if _, ok := a.AuthenticateToken(legacy, []string{iss}); ok {
		t.Error("a legacy token without its Secret works")
	}
	objs.secrets["a/app-token"] = []byte(legacy)
	now = now.Add(11 * time.Second)
	if u, ok := a.AuthenticateToken(legacy, []string{iss}); !ok || u.Name != "system:serviceaccount:a:app" {
		t.Errorf("legacy token: %+v %v", u, ok)
	}
	if _, ok := a.AuthenticateToken("static-token", []string{iss}); ok {
		t.Error("a non-JWT was accepted")
	}
}
