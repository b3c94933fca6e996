package encryption

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/nacl/secretbox"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// encryptedPrefix starts every value a provider other than identity wrote.
const encryptedPrefix = "k8s:enc:"

// Transformer seals the values of one resource for etcd and opens them.
type Transformer struct {
	// write seals (nil: identity, values are written as they are).
	write *sealer
	// read are the providers values are opened with, by prefix.
	read []*sealer
	// identity: a value without the encrypted prefix is read as it is.
	identity bool
}

// sealer is one key of one provider.
type sealer struct {
	prefix []byte
	seal   func(plain, aad []byte) ([]byte, error)
	open   func(sealed, aad []byte) ([]byte, error)
}

// For returns the transformer of gr: that of the first resources entry
// naming it (as "secrets", "secrets.", "deployments.apps", "*.apps" or
// "*.*"), or nil when none does and its values are kept as they are.
func (c *Config) For(gr schema.GroupResource) (*Transformer, error) {
	if c == nil {
		return nil, nil
	}
	names := []string{gr.Resource + "." + gr.Group, "*." + gr.Group, "*.*"}
	if gr.Group == "" {
		names = append(names, gr.Resource)
	}
	for _, rc := range c.Resources {
		for _, r := range rc.Resources {
			for _, n := range names {
				if r == n {
					return newTransformer(rc.Providers)
				}
			}
		}
	}
	return nil, nil
}

func newTransformer(providers []ProviderConfig) (*Transformer, error) {
	t := &Transformer{}
	for i, p := range providers {
		name, keys := p.keys()
		if name == "identity" {
			t.identity = true
			continue
		}
		for j, k := range keys {
			secret, _ := base64.StdEncoding.DecodeString(k.Secret)
			s, err := newSealer(name, k.Name, secret)
			if err != nil {
				return nil, err
			}
			if i == 0 && j == 0 {
				t.write = s
			}
			t.read = append(t.read, s)
		}
	}
	return t, nil
}

func newSealer(provider, keyName string, secret []byte) (*sealer, error) {
	s := &sealer{prefix: []byte(encryptedPrefix + provider + ":v1:" + keyName + ":")}
	switch provider {
	case "aescbc":
		block, err := aes.NewCipher(secret)
		if err != nil {
			return nil, err
		}
		s.seal = func(plain, _ []byte) ([]byte, error) { return cbcSeal(block, plain) }
		s.open = func(sealed, _ []byte) ([]byte, error) { return cbcOpen(block, sealed) }
	case "aesgcm":
		block, err := aes.NewCipher(secret)
		if err != nil {
			return nil, err
		}
		gcm, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		// The etcd key is the additional data, as upstream's: a value
		// copied to another key does not open there.
		s.seal = func(plain, aad []byte) ([]byte, error) {
			nonce := make([]byte, gcm.NonceSize())
			if _, err := rand.Read(nonce); err != nil {
				return nil, err
			}
			return gcm.Seal(nonce, nonce, plain, aad), nil
		}
		s.open = func(sealed, aad []byte) ([]byte, error) {
			if len(sealed) < gcm.NonceSize() {
				return nil, errors.New("the stored value is too short")
			}
			return gcm.Open(nil, sealed[:gcm.NonceSize()], sealed[gcm.NonceSize():], aad)
		}
	case "secretbox":
		var key [32]byte
		copy(key[:], secret)
		s.seal = func(plain, _ []byte) ([]byte, error) {
			var nonce [24]byte
			if _, err := rand.Read(nonce[:]); err != nil {
				return nil, err
			}
			return secretbox.Seal(nonce[:], plain, &nonce, &key), nil
		}
		s.open = func(sealed, _ []byte) ([]byte, error) {
			if len(sealed) < 24 {
				return nil, errors.New("the stored value is too short")
			}
			var nonce [24]byte
			copy(nonce[:], sealed)
			out, ok := secretbox.Open(nil, sealed[24:], &nonce, &key)
			if !ok {
				return nil, errors.New("secretbox: the value does not open with this key")
			}
			return out, nil
		}
	default:
		return nil, fmt.Errorf("unknown provider %q", provider)
	}
	return s, nil
}

// ToStorage seals plain, kept at the etcd key key.
func (t *Transformer) ToStorage(key string, plain []byte) ([]byte, error) {
	if t.write == nil {
		return plain, nil
	}
	sealed, err := t.write.seal(plain, []byte(key))
	if err != nil {
		return nil, err
	}
	return append(append([]byte{}, t.write.prefix...), sealed...), nil
}

// FromStorage opens a value read at key. Stale says it was not written by
// the current writing provider and key, so a rewrite would change it.
func (t *Transformer) FromStorage(key string, data []byte) (plain []byte, stale bool, err error) {
	if !bytes.HasPrefix(data, []byte(encryptedPrefix)) {
		if !t.identity {
			return nil, false, errors.New("the value is not encrypted, and identity is not among the resource's providers")
		}
		return data, t.write != nil, nil
	}
	for _, s := range t.read {
		if bytes.HasPrefix(data, s.prefix) {
			plain, err := s.open(data[len(s.prefix):], []byte(key))
			if err != nil {
				return nil, false, fmt.Errorf("decrypt with %s: %w", strings.TrimSuffix(string(s.prefix), ":"), err)
			}
			return plain, s != t.write, nil
		}
	}
	name, _, _ := strings.Cut(strings.TrimPrefix(string(data), encryptedPrefix), ":v1:")
	keyName, _, _ := strings.Cut(strings.TrimPrefix(string(data), encryptedPrefix+name+":v1:"), ":")
	return nil, false, fmt.Errorf("no provider of the encryption configuration has the key it was written with (%s key %q)", name, keyName)
}

// cbcSeal is upstream's aescbc: a random IV, then the PKCS#7-padded data
// encrypted in CBC mode.
func cbcSeal(block cipher.Block, plain []byte) ([]byte, error) {
	bs := block.BlockSize()
	pad := bs - len(plain)%bs
	out := make([]byte, bs+len(plain)+pad)
	iv := out[:bs]
	if _, err := rand.Read(iv); err != nil {
		return nil, err
	}
	body := out[bs:]
	copy(body, plain)
	for i := len(plain); i < len(body); i++ {
		body[i] = byte(pad)
	}
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(body, body)
	return out, nil
}

func cbcOpen(block cipher.Block, sealed []byte) ([]byte, error) {
	bs := block.BlockSize()
	if len(sealed) < 2*bs || len(sealed)%bs != 0 {
		return nil, errors.New("the stored value is not whole blocks")
	}
	body := make([]byte, len(sealed)-bs)
	cipher.NewCBCDecrypter(block, sealed[:bs]).CryptBlocks(body, sealed[bs:])
	pad := int(body[len(body)-1])
	if pad == 0 || pad > bs || pad > len(body) {
		return nil, errors.New("invalid padding")
	}
	for _, b := range body[len(body)-pad:] {
		if int(b) != pad {
			return nil, errors.New("invalid padding")
		}
	}
	return body[:len(body)-pad], nil
}
