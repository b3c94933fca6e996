// Package encryption keeps chosen resources encrypted in etcd: upstream's
// EncryptionConfiguration (apiserver.config.k8s.io/v1) with the aescbc,
// aesgcm, secretbox and identity providers, in upstream's storage format
// ("k8s:enc:<provider>:v1:<key name>:" then the sealed bytes), so a data
// dir moves between skiff and upstream tools. The first provider of a
// resource writes; every provider listed reads.
package encryption

import (
	"encoding/base64"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/skiff-sh/skiff/internal/configfile"
)

// Config is an EncryptionConfiguration file.
type Config struct {
	Kind       string           `json:"kind"`
	APIVersion string           `json:"apiVersion"`
	Resources  []ResourceConfig `json:"resources"`
}

// ResourceConfig lists resources ("secrets", "configmaps.", "*.apps",
// "*.*") and their providers, the writing one first.
type ResourceConfig struct {
	Resources []string         `json:"resources"`
	Providers []ProviderConfig `json:"providers"`
}

// ProviderConfig is one provider; exactly one field is set.
type ProviderConfig struct {
	AESCBC    *KeysConfig `json:"aescbc,omitempty"`
	AESGCM    *KeysConfig `json:"aesgcm,omitempty"`
	Secretbox *KeysConfig `json:"secretbox,omitempty"`
	Identity  *struct{}   `json:"identity,omitempty"`
	// KMS is upstream's; skiff refuses it by name rather than ignore it.
	KMS any `json:"kms,omitempty"`
}

// KeysConfig is a provider's keys, the writing one first.
type KeysConfig struct {
	Keys []Key `json:"keys"`
}

// Key is a named, base64-encoded secret.
type Key struct {
	Name   string `json:"name"`
	Secret string `json:"secret"`
}

// Load reads and checks an EncryptionConfiguration file; every error names
// the file and the field at fault.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("encryption provider config: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("encryption provider config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes and checks an EncryptionConfiguration (unknown fields are
// refused, as a typo must not leave Secrets in plain text).
func Parse(b []byte) (*Config, error) {
	v, err := parse(b)
	if err != nil {
		return nil, configfile.Locate(b, "", err)
	}
	return v, nil
}

func parse(b []byte) (*Config, error) {
	var c Config
	if err := configfile.Decode(b, &c); err != nil {
		return nil, err
	}
	if c.Kind != "EncryptionConfiguration" || c.APIVersion != "apiserver.config.k8s.io/v1" {
		return nil, configfile.Errorf("kind", "kind %q, apiVersion %q: want EncryptionConfiguration, apiserver.config.k8s.io/v1", c.Kind, c.APIVersion)
	}
	seen := map[string]bool{}
	for i, rc := range c.Resources {
		at := fmt.Sprintf("resources[%d]", i)
		if len(rc.Resources) == 0 {
			return nil, configfile.Errorf(at+".resources", "Required value")
		}
		for j, r := range rc.Resources {
			if r == "" || strings.ToLower(r) != r {
				return nil, configfile.Errorf(fmt.Sprintf("%s.resources[%d]", at, j), "Invalid value %q: a lowercase resource name, resource.group, *.group or *.*", r)
			}
			if seen[r] {
				return nil, configfile.Errorf(fmt.Sprintf("%s.resources[%d]", at, j), "Duplicate value %q", r)
			}
			seen[r] = true
		}
		if len(rc.Providers) == 0 {
			return nil, configfile.Errorf(at+".providers", "Required value")
		}
		for j, p := range rc.Providers {
			if err := p.check(fmt.Sprintf("%s.providers[%d]", at, j)); err != nil {
				return nil, err
			}
		}
	}
	return &c, nil
}

// sizes are each provider's valid key lengths, in bytes.
var sizes = map[string][]int{"aescbc": {16, 24, 32}, "aesgcm": {16, 24, 32}, "secretbox": {32}}

// check is p, at path, valid.
func (p ProviderConfig) check(at string) error {
	set := 0
	for _, ok := range []bool{p.AESCBC != nil, p.AESGCM != nil, p.Secretbox != nil, p.Identity != nil, p.KMS != nil} {
		if ok {
			set++
		}
	}
	if set != 1 {
		return configfile.Errorf(at, "Invalid value: exactly one provider must be set (aescbc, aesgcm, secretbox or identity)")
	}
	if p.KMS != nil {
		return configfile.Errorf(at+".kms", "Unsupported value: skiff has aescbc, aesgcm, secretbox and identity")
	}
	name, keys := p.keys()
	if name == "identity" {
		return nil
	}
	if len(keys) == 0 {
		return configfile.Errorf(at+"."+name+".keys", "Required value")
	}
	names := map[string]bool{}
	for k, key := range keys {
		kat := fmt.Sprintf("%s.%s.keys[%d]", at, name, k)
		if key.Name == "" || strings.Contains(key.Name, ":") {
			return configfile.Errorf(kat+".name", "Invalid value %q: a name without ':'", key.Name)
		}
		if names[key.Name] {
			return configfile.Errorf(kat+".name", "Duplicate value %q", key.Name)
		}
		names[key.Name] = true
		secret, err := base64.StdEncoding.DecodeString(key.Secret)
		if err != nil {
			return configfile.Errorf(kat+".secret", "Invalid value: not base64: %v", err)
		}
		if !slices.Contains(sizes[name], len(secret)) {
			return configfile.Errorf(kat+".secret", "Invalid value: a %d-byte key; %s takes %v bytes", len(secret), name, sizes[name])
		}
	}
	return nil
}

// keys names the provider and gives its keys.
func (p ProviderConfig) keys() (string, []Key) {
	switch {
	case p.AESCBC != nil:
		return "aescbc", p.AESCBC.Keys
	case p.AESGCM != nil:
		return "aesgcm", p.AESGCM.Keys
	case p.Secretbox != nil:
		return "secretbox", p.Secretbox.Keys
	}
	return "identity", nil
}
