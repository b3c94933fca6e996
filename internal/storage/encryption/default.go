package encryption

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// EnsureDefault is the configuration of a server that encrypts Secrets by
// default (as k3s's --secrets-encryption): the file at path, or, on first
// start, a new one (mode 0600) with a random secretbox key for Secrets and
// identity after it, so Secrets written before encryption still read.
func EnsureDefault(path string, now time.Time) (*Config, error) {
	c, err := Load(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return c, err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	c = &Config{Kind: "EncryptionConfiguration", APIVersion: "apiserver.config.k8s.io/v1", Resources: []ResourceConfig{{
		Resources: []string{"secrets"},
		Providers: []ProviderConfig{
			{Secretbox: &KeysConfig{Keys: []Key{{Name: "key-" + now.UTC().Format("20060102150405"), Secret: base64.StdEncoding.EncodeToString(key)}}}},
			{Identity: &struct{}{}},
		},
	}}}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	return c, Save(path, c)
}

// Save writes c to path atomically (mode 0600): a crash leaves the old
// file or the new one, never half of one.
func Save(path string, c *Config) error {
	b, err := yaml.Marshal(c)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// WithStagedKey is c with a fresh key added last to its first provider:
// every server can then read what the key seals before any writes with it
// (the first step of a rotation across several servers; Promote is the
// second). The first provider must have keys. It answers the key's name.
func WithStagedKey(c *Config, now time.Time) (*Config, string, error) {
	next := c.clone()
	if len(next.Resources) == 0 {
		return nil, "", errors.New("the encryption configuration names no resources")
	}
	kc := next.Resources[0].Providers[0].keysConfig()
	if kc == nil {
		return nil, "", errors.New("the first provider is identity: nothing to rotate")
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, "", err
	}
	base := "key-" + now.UTC().Format("20060102150405")
	key := Key{Name: base, Secret: base64.StdEncoding.EncodeToString(secret)}
	// Two rotations within a second get distinct names.
	for i := 1; slices.ContainsFunc(kc.Keys, func(k Key) bool { return k.Name == key.Name }); i++ {
		key.Name = fmt.Sprintf("%s-%d", base, i)
	}
	kc.Keys = append(kc.Keys, key)
	return next, key.Name, nil
}

// Promote is c with the first provider's key named name put first, so it
// writes with that key and still reads with the others.
func Promote(c *Config, name string) (*Config, error) {
	next := c.clone()
	if len(next.Resources) == 0 {
		return nil, errors.New("the encryption configuration names no resources")
	}
	kc := next.Resources[0].Providers[0].keysConfig()
	if kc == nil {
		return nil, errors.New("the first provider is identity: it has no keys")
	}
	i := slices.IndexFunc(kc.Keys, func(k Key) bool { return k.Name == name })
	if i < 0 {
		return nil, fmt.Errorf("the first provider has no key %q", name)
	}
	key := kc.Keys[i]
	kc.Keys = append([]Key{key}, slices.Delete(kc.Keys, i, i+1)...)
	return next, nil
}

// WithoutOldKeys is c with only the writing key left in its first provider
// (the last step of a rotation, once every value is sealed with it).
func WithoutOldKeys(c *Config) *Config {
	next := c.clone()
	if len(next.Resources) > 0 {
		if kc := next.Resources[0].Providers[0].keysConfig(); kc != nil && len(kc.Keys) > 1 {
			kc.Keys = kc.Keys[:1]
		}
	}
	return next
}

// WriteKey names the provider and key the first resource entry writes
// with ("identity" when it does not encrypt).
func (c *Config) WriteKey() string {
	if c == nil || len(c.Resources) == 0 {
		return "identity"
	}
	name, keys := c.Resources[0].Providers[0].keys()
	if len(keys) == 0 {
		return name
	}
	return name + ":" + keys[0].Name
}

func (p *ProviderConfig) keysConfig() *KeysConfig {
	switch {
	case p.AESCBC != nil:
		return p.AESCBC
	case p.AESGCM != nil:
		return p.AESGCM
	case p.Secretbox != nil:
		return p.Secretbox
	}
	return nil
}

// clone is a deep copy, through the file format.
func (c *Config) clone() *Config {
	b, _ := yaml.Marshal(c)
	var out Config
	_ = yaml.Unmarshal(b, &out)
	return &out
}

// KeyOf names the provider and key a stored value was sealed with
// ("identity" for a plain one).
func KeyOf(value []byte) string {
	s := string(value)
	if !strings.HasPrefix(s, encryptedPrefix) {
		return "identity"
	}
	rest := strings.TrimPrefix(s, encryptedPrefix)
	provider, rest, _ := strings.Cut(rest, ":v1:")
	key, _, _ := strings.Cut(rest, ":")
	return provider + ":" + key
}
