package controlplane

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"

	"github.com/skiff-sh/skiff/internal/storage/encryption"
)

// Paths of the secrets-encryption operations (`skiff secrets-encrypt`).
const (
	SecretsEncryptionPath       = "/skiff/v1/secrets-encryption"
	SecretsEncryptionRotatePath = "/skiff/v1/secrets-encryption/rotate"
)

// EncryptionStatus is what `skiff secrets-encrypt status` shows.
type EncryptionStatus struct {
	// Mode is "default" (the data dir's key), "file"
	// (--encryption-provider-config) or "off".
	Mode string `json:"mode"`
	// WriteKey is the provider and key new Secrets are sealed with.
	WriteKey string `json:"writeKey"`
	// Secrets counts the stored Secrets by the key they are sealed with.
	Secrets map[string]int `json:"secrets"`
	// Rewritten is how many Secrets a rotation sealed again.
	Rewritten int `json:"rewritten,omitempty"`
	// Generation is the shared configuration's (servers share the data
	// dir's keys through etcd; 0: not shared).
	Generation int64 `json:"generation,omitempty"`
	// SharedError says why this server cannot use the shared keys.
	SharedError string `json:"sharedError,omitempty"`
	// Servers says which generation and write key each server holds,
	// by address.
	Servers map[string]ServerKeys `json:"servers,omitempty"`
}

// secretsEncryption runs the operations: status, and a rotation that adds
// a key (first only read, then written, the old ones still read), seals
// every Secret with it, then retires the old keys. Each step goes to every
// server through etcd (sharedencryption.go) and is saved before it takes
// effect, so a crash at any point leaves every Secret readable.
type secretsEncryption struct {
	s  *server
	mu sync.Mutex // one rotation at a time
	// cfgMu guards s.encryption, which a rotation replaces, and shareErr.
	cfgMu sync.Mutex
	// secret seals the shared record (the server token).
	secret string
	// shareErr says why the shared record cannot be used (nil: it can).
	shareErr error
}

func (e *secretsEncryption) current() *encryption.Config {
	e.cfgMu.Lock()
	defer e.cfgMu.Unlock()
	return e.s.encryption
}

func (e *secretsEncryption) sharingError() error {
	e.cfgMu.Lock()
	defer e.cfgMu.Unlock()
	return e.shareErr
}

func (e *secretsEncryption) setSharingError(err error) {
	e.cfgMu.Lock()
	e.shareErr = err
	e.cfgMu.Unlock()
}

func (e *secretsEncryption) path() string {
	return filepath.Join(e.s.cfg.DataDir, "pki", "encryption-config.yaml")
}

func (e *secretsEncryption) mode() string {
	switch {
	case e.s.cfg.EncryptionProviderConfig != "":
		return "file"
	case e.s.cfg.SecretsEncryption:
		return "default"
	}
	return "off"
}

func (e *secretsEncryption) handlers() map[string]http.Handler {
	return map[string]http.Handler{
		SecretsEncryptionPath: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet {
				http.Error(w, "GET only", http.StatusMethodNotAllowed)
				return
			}
			st, err := e.status(r.Context())
			reply(w, st, err)
		}),
		SecretsEncryptionRotatePath: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost {
				http.Error(w, "POST only", http.StatusMethodNotAllowed)
				return
			}
			wait, err := serverWait(r.URL.Query().Get("serverWait"))
			if err != nil {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
				return
			}
			st, err := e.rotate(r.Context(), wait)
			reply(w, st, err)
		}),
	}
}

func reply(w http.ResponseWriter, st EncryptionStatus, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		w.WriteHeader(http.StatusConflict)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
		return
	}
	_ = json.NewEncoder(w).Encode(st)
}

func (e *secretsEncryption) status(ctx context.Context) (EncryptionStatus, error) {
	st := EncryptionStatus{Mode: e.mode(), WriteKey: e.current().WriteKey(), Secrets: map[string]int{}}
	if e.shares() {
		// A record this server cannot use is news, not a failure of
		// the status: its own keys are still what it seals with.
		if _, gen, _, err := e.record(ctx); err != nil {
			st.SharedError = err.Error()
		} else {
			st.Generation = gen
		}
		var err error
		if st.Servers, err = e.appliedBy(ctx); err != nil {
			return st, err
		}
	}
	prefix := "/registry/secrets/"
	from := prefix
	for {
		resp, err := e.s.client.Get(ctx, from, clientv3.WithRange(clientv3.GetPrefixRangeEnd(prefix)), clientv3.WithLimit(500))
		if err != nil {
			return st, err
		}
		for _, kv := range resp.Kvs {
			st.Secrets[encryption.KeyOf(kv.Value)]++
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return st, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// rotate, in steps every live server takes before the next: (1) a new key
// that only reads; (2) the new key writes, the old ones still read; then
// every Secret is sealed with it here; (3) the old keys are retired.
// Killed or failed anywhere, every Secret still reads on every server, and
// rotating again finishes the job with another new key.
func (e *secretsEncryption) rotate(ctx context.Context, wait time.Duration) (EncryptionStatus, error) {
	if !e.shares() {
		return EncryptionStatus{}, fmt.Errorf("rotation manages the data dir's key (--secrets-encryption); this server uses %s: change its keys there", map[string]string{"file": "--encryption-provider-config", "off": "no encryption"}[e.mode()])
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	base, gen, rev, err := e.record(ctx)
	if err != nil {
		return EncryptionStatus{}, err
	}
	staged, name, err := encryption.WithStagedKey(base, time.Now())
	if err != nil {
		return EncryptionStatus{}, err
	}
	writing, err := encryption.Promote(staged, name)
	if err != nil {
		return EncryptionStatus{}, err
	}
	if gen, rev, err = e.step(ctx, staged, gen, rev, wait); err != nil {
		return EncryptionStatus{}, err
	}
	if gen, rev, err = e.step(ctx, writing, gen, rev, wait); err != nil {
		return EncryptionStatus{}, err
	}
	n, err := e.s.reg.Rewrite(ctx, corev1.Resource("secrets"))
	if err != nil {
		return EncryptionStatus{}, fmt.Errorf("seal the Secrets with the new key (the old ones still read; run rotate again): %w", err)
	}
	if _, _, err = e.step(ctx, encryption.WithoutOldKeys(writing), gen, rev, wait); err != nil {
		return EncryptionStatus{}, err
	}
	e.s.log.Info("secrets encryption key rotated", "key", writing.WriteKey(), "rewritten", n)
	st, err := e.status(ctx)
	st.Rewritten = n
	return st, err
}

// step publishes c as the generation after gen and waits up to wait until
// every live server (this one too, through its follower) holds it.
func (e *secretsEncryption) step(ctx context.Context, c *encryption.Config, gen, rev int64, wait time.Duration) (int64, int64, error) {
	rev, err := e.publish(ctx, c, gen+1, rev)
	if err != nil {
		return 0, 0, err
	}
	if err := e.waitApplied(ctx, gen+1, wait); err != nil {
		return 0, 0, err
	}
	return gen + 1, rev, nil
}

// apply saves c as the data dir's configuration, then makes it the one
// the stores seal and open with.
func (e *secretsEncryption) apply(c *encryption.Config) error {
	if err := encryption.Save(e.path(), c); err != nil {
		return fmt.Errorf("save %s: %w", e.path(), err)
	}
	if err := e.s.reg.SetEncryption(c); err != nil {
		return err
	}
	e.cfgMu.Lock()
	e.s.encryption = c
	e.cfgMu.Unlock()
	return nil
}
