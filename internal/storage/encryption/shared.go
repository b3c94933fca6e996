package encryption

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"

	"sigs.k8s.io/yaml"
)

// sharedPrefix marks what is sealed for the servers of a cluster.
const sharedPrefix = "skiff:shared-encryption:v1:"

// sharedSalt and sharedRounds derive the sealing key from the cluster's
// server token, as k3s seals its bootstrap data with its token: a copy of
// etcd (a snapshot) then holds the keys only in a form the token opens.
var sharedSalt = []byte("skiff secrets-encryption configuration")

const sharedRounds = 4096

func sharedAEAD(secret string) (cipher.AEAD, error) {
	if secret == "" {
		return nil, errors.New("no server token to seal the shared encryption configuration with")
	}
	key, err := pbkdf2.Key(sha256.New, secret, sharedSalt, sharedRounds, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// SealShared is c encrypted (AES-GCM) under a key derived from secret, the
// form in which servers share their configuration through etcd.
func SealShared(c *Config, secret string) ([]byte, error) {
	plain, err := yaml.Marshal(c)
	if err != nil {
		return nil, err
	}
	return SealWithToken(plain, secret)
}

// OpenShared is the configuration SealShared sealed with the same secret,
// checked as a configuration file is.
func OpenShared(sealed []byte, secret string) (*Config, error) {
	plain, err := OpenWithToken(sealed, secret)
	if err != nil {
		return nil, fmt.Errorf("the shared encryption configuration: %w", err)
	}
	c, err := parse(plain)
	if err != nil {
		return nil, fmt.Errorf("the shared encryption configuration: %w", err)
	}
	return c, nil
}

// SealWithToken encrypts plain (AES-GCM) under a key derived from secret
// (a cluster's server token): what servers share through etcd.
func SealWithToken(plain []byte, secret string) ([]byte, error) {
	aead, err := sharedAEAD(secret)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out := append([]byte(sharedPrefix), nonce...)
	return aead.Seal(out, nonce, plain, []byte(sharedPrefix)), nil
}

// OpenWithToken is what SealWithToken sealed with the same secret.
func OpenWithToken(sealed []byte, secret string) ([]byte, error) {
	aead, err := sharedAEAD(secret)
	if err != nil {
		return nil, err
	}
	rest, ok := bytes.CutPrefix(sealed, []byte(sharedPrefix))
	if !ok || len(rest) < aead.NonceSize() {
		return nil, errors.New("not sealed with a server token")
	}
	plain, err := aead.Open(nil, rest[:aead.NonceSize()], rest[aead.NonceSize():], []byte(sharedPrefix))
	if err != nil {
		return nil, errors.New("it does not open with this server's token (sealed by another cluster's servers?)")
	}
	return plain, nil
}

// Equal tells whether two configurations hold the same resources,
// providers and keys in the same order.
func Equal(a, b *Config) bool {
	x, errA := yaml.Marshal(a)
	y, errB := yaml.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(x, y)
}
