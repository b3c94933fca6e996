package encryption

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	key16 = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 16))
	key32 = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32))
	keyB  = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{3}, 32))
)

func config(t *testing.T, providers string) *Config {
	t.Helper()
	c, err := Parse([]byte("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets, '*.apps']\n  providers:\n" + providers))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var secrets = schema.GroupResource{Resource: "secrets"}

func TestParseErrors(t *testing.T) {
	head := "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n"
	for _, c := range []struct{ doc, want string }{
		{"apiVersion: v1\nkind: Config\n", `line 2: kind: kind "Config"`},
		{head + "- resources: [secrets]\n  providers: []\n", "line 5: resources[0].providers: Required value"},
		{head + "- resources: [Secrets]\n  providers: [{identity: {}}]\n", `line 4: resources[0].resources[0]: Invalid value "Secrets"`},
		{head + "- resources: [secrets]\n  providers: [{aescbc: {keys: [{name: k, secret: " + base64.StdEncoding.EncodeToString([]byte("short")) + "}]}}]\n", "line 5: resources[0].providers[0].aescbc.keys[0].secret: Invalid value: a 5-byte key"},
		{head + "- resources: [secrets]\n  providers: [{secretbox: {keys: [{name: k, secret: " + key16 + "}]}}]\n", "secretbox takes [32] bytes"},
		{head + "- resources: [secrets]\n  providers: [{aesgcm: {keys: [{name: a, secret: " + key16 + "}, {name: a, secret: " + key16 + "}]}}]\n", `line 5: resources[0].providers[0].aesgcm.keys[1].name: Duplicate value "a"`},
		{head + "- resources: [secrets]\n  providers: [{identity: {}, aescbc: {keys: [{name: a, secret: " + key16 + "}]}}]\n", "exactly one provider"},
		{head + "- resources: [secrets]\n  providers: [{kms: {name: x}}]\n", "line 5: resources[0].providers[0].kms: Unsupported value"},
		{head + "- resources: [secrets]\n  providers: [{identity: {}}]\n  extra: 1\n", "line 6: resources[0].extra: unknown field"},
	} {
		_, err := Parse([]byte(c.doc))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.doc, err, c.want)
		}
	}
}

// Each provider seals so that only it opens, marks the value with
// upstream's prefix, and never leaves the plain text in it.
func TestRoundTrips(t *testing.T) {
	plain := []byte("the password is hunter2")
	for _, p := range []string{"aescbc", "aesgcm", "secretbox"} {
		secret := key32
		c := config(t, "  - "+p+": {keys: [{name: k1, secret: "+secret+"}]}\n")
		tr, err := c.For(secrets)
		if err != nil || tr == nil {
			t.Fatalf("%s: %v", p, err)
		}
		sealed, err := tr.ToStorage("/registry/secrets/ns/a", plain)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(sealed, []byte("k8s:enc:"+p+":v1:k1:")) || bytes.Contains(sealed, []byte("hunter2")) {
			t.Errorf("%s sealed: %q", p, sealed)
		}
		got, stale, err := tr.FromStorage("/registry/secrets/ns/a", sealed)
		if err != nil || !bytes.Equal(got, plain) || stale {
			t.Errorf("%s opened: %q stale=%v %v", p, got, stale, err)
		}
		// The same value at another key: aesgcm binds it to its key.
		_, _, err = tr.FromStorage("/registry/secrets/ns/b", sealed)
		if (p == "aesgcm") != (err != nil) {
			t.Errorf("%s value moved to another key: %v", p, err)
		}
	}
}

// The aescbc format is upstream's: a 16-byte IV, then PKCS#7-padded CBC.
func TestAESCBCFormat(t *testing.T) {
	tr, _ := config(t, "  - aescbc: {keys: [{name: k, secret: "+key16+"}]}\n").For(secrets)
	sealed, _ := tr.ToStorage("/k", []byte("abc"))
	body := bytes.TrimPrefix(sealed, []byte("k8s:enc:aescbc:v1:k:"))
	block, _ := aes.NewCipher(bytes.Repeat([]byte{1}, 16))
	out := make([]byte, len(body)-16)
	cipher.NewCBCDecrypter(block, body[:16]).CryptBlocks(out, body[16:])
	if want := append([]byte("abc"), bytes.Repeat([]byte{13}, 13)...); !bytes.Equal(out, want) {
		t.Errorf("decrypted by hand: %q", out)
	}
}

// Reading follows the providers listed: an older key and plain values
// still read (and are stale), a value of an unknown key does not.
func TestReadsAndStaleness(t *testing.T) {
	old, _ := config(t, "  - secretbox: {keys: [{name: old, secret: "+key32+"}]}\n").For(secrets)
	oldSealed, _ := old.ToStorage("/k", []byte("v"))
	rotated, _ := config(t, "  - secretbox: {keys: [{name: new, secret: "+keyB+"}, {name: old, secret: "+key32+"}]}\n  - identity: {}\n").For(secrets)
	for _, c := range []struct {
		name      string
		data      []byte
		stale     bool
		wantError string
	}{
		{"old key", oldSealed, true, ""},
		{"plain", []byte("v"), true, ""},
	} {
		got, stale, err := rotated.FromStorage("/k", c.data)
		if err != nil || string(got) != "v" || stale != c.stale {
			t.Errorf("%s: %q stale=%v %v", c.name, got, stale, err)
		}
	}
	fresh, _ := rotated.ToStorage("/k", []byte("v"))
	if _, stale, _ := rotated.FromStorage("/k", fresh); stale || !bytes.HasPrefix(fresh, []byte("k8s:enc:secretbox:v1:new:")) {
		t.Errorf("written with the new key: %q stale=%v", fresh, stale)
	}
	noIdentity, _ := config(t, "  - secretbox: {keys: [{name: new, secret: "+keyB+"}]}\n").For(secrets)
	if _, _, err := noIdentity.FromStorage("/k", []byte("v")); err == nil {
		t.Error("a plain value read without identity listed")
	}
	if _, _, err := noIdentity.FromStorage("/k", oldSealed); err == nil || !strings.Contains(err.Error(), `secretbox key "old"`) {
		t.Errorf("a value of a lost key: %v", err)
	}
}

func TestFor(t *testing.T) {
	c := config(t, "  - identity: {}\n")
	for _, c2 := range []struct {
		gr   schema.GroupResource
		want bool
	}{
		{secrets, true},
		{schema.GroupResource{Group: "apps", Resource: "deployments"}, true},
		{schema.GroupResource{Resource: "configmaps"}, false},
	} {
		if tr, _ := c.For(c2.gr); (tr != nil) != c2.want {
			t.Errorf("%s: %v", c2.gr, tr != nil)
		}
	}
}

func TestEnsureDefault(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pki", "encryption-config.yaml")
	first, err := EnsureDefault(path, time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config file: %v %v", fi, err)
	}
	again, err := EnsureDefault(path, time.Now())
	if err != nil || again.Resources[0].Providers[0].Secretbox.Keys[0] != first.Resources[0].Providers[0].Secretbox.Keys[0] {
		t.Errorf("a second start made another key: %v", err)
	}
	if first.Resources[0].Providers[0].Secretbox.Keys[0].Name != "key-20261205000000" || first.Resources[0].Providers[1].Identity == nil {
		t.Errorf("default config: %+v", first.Resources[0])
	}
}

// A rotation stages a new key (read only), promotes it to write, then
// retires the old ones; two within a second get distinct names.
func TestRotationConfigs(t *testing.T) {
	c := config(t, "  - secretbox: {keys: [{name: key-20261205000000, secret: "+key32+"}]}\n  - identity: {}\n")
	at := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	staged, name, err := WithStagedKey(c, at)
	if err != nil || name != "key-20261205000000-1" || staged.WriteKey() != "secretbox:key-20261205000000" {
		t.Fatalf("staged key: %s, writes with %s, %v", name, staged.WriteKey(), err)
	}
	if keys := staged.Resources[0].Providers[0].Secretbox.Keys; len(keys) != 2 || keys[1].Name != name {
		t.Errorf("keys after staging: %+v", keys)
	}
	next, err := Promote(staged, name)
	if err != nil || next.WriteKey() != "secretbox:"+name {
		t.Fatalf("promoted: %s %v", next.WriteKey(), err)
	}
	if keys := next.Resources[0].Providers[0].Secretbox.Keys; len(keys) != 2 || keys[1].Name != "key-20261205000000" {
		t.Errorf("keys after promoting: %+v", keys)
	}
	if _, err := Promote(staged, "key-missing"); err == nil || !strings.Contains(err.Error(), `no key "key-missing"`) {
		t.Errorf("promoting a missing key: %v", err)
	}
	if c.WriteKey() != "secretbox:key-20261205000000" || staged.WriteKey() != "secretbox:key-20261205000000" {
		t.Errorf("the original configs changed: %s, %s", c.WriteKey(), staged.WriteKey())
	}
	done := WithoutOldKeys(next)
	if keys := done.Resources[0].Providers[0].Secretbox.Keys; len(keys) != 1 || keys[0].Name != name || done.Resources[0].Providers[1].Identity == nil {
		t.Errorf("after retiring: %+v", done.Resources[0])
	}
	if _, _, err := WithStagedKey(config(t, "  - identity: {}\n"), at); err == nil {
		t.Error("staged a key for identity")
	}
	if KeyOf([]byte("k8s:enc:aesgcm:v1:two:xyz")) != "aesgcm:two" || KeyOf([]byte("k8s\x00plain")) != "identity" {
		t.Error("KeyOf")
	}
}

// The configuration servers share through etcd opens only with the token
// it was sealed with, and unchanged.
func TestSharedSealing(t *testing.T) {
	c := config(t, "  - aesgcm: {keys: [{name: a, secret: "+key16+"}, {name: b, secret: "+key32+"}]}\n  - identity: {}\n")
	sealed, err := SealShared(c, "tok.secret")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte(key16)) || bytes.Contains(sealed, []byte("aesgcm")) {
		t.Fatalf("the sealed record shows the keys: %q", sealed)
	}
	again, _ := SealShared(c, "tok.secret")
	if bytes.Equal(sealed, again) {
		t.Error("two seals of the same config are the same bytes (nonce reused)")
	}
	got, err := OpenShared(sealed, "tok.secret")
	if err != nil || !Equal(got, c) {
		t.Fatalf("opened: %+v %v", got, err)
	}
	if Equal(got, WithoutOldKeys(c)) {
		t.Error("Equal ignores a retired key")
	}
	if _, err := OpenShared(sealed, "other.secret"); err == nil || !strings.Contains(err.Error(), "does not open with this server's token") {
		t.Errorf("another token: %v", err)
	}
	bad := bytes.Clone(sealed)
	bad[len(bad)-1] ^= 1
	if _, err := OpenShared(bad, "tok.secret"); err == nil {
		t.Error("a changed byte opened")
	}
	if _, err := OpenShared([]byte("plain"), "tok.secret"); err == nil || !strings.Contains(err.Error(), "not sealed with a server token") {
		t.Errorf("plain bytes: %v", err)
	}
	if _, err := SealShared(c, ""); err == nil {
		t.Error("sealed without a token")
	}
}
