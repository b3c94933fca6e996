package encryption

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
	b, err := yaml.Marshal(c)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return nil, fmt.Errorf("write %s: %w", tmp, err)
	}
	return c, os.Rename(tmp, path)
}
