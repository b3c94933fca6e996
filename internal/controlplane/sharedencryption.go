package controlplane

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/skiff-sh/skiff/internal/join"
	"github.com/skiff-sh/skiff/internal/pki"
	"github.com/skiff-sh/skiff/internal/storage/encryption"
)

// The servers of a cluster share the data dir's encryption keys through
// etcd: encryptionRecordKey holds the configuration sealed with the server
// token (encryption.SealShared) and a generation; every server follows it
// (saving it into its data dir and sealing and opening with it) and says
// which generation it holds under encryptionAppliedPrefix + its address.
// A rotation publishes one step at a time and goes on only once every live
// server holds it, so no server ever meets a value sealed with a key it
// does not have.
const (
	encryptionRecordKey     = "/skiff/secrets-encryption/config"
	encryptionAppliedPrefix = "/skiff/secrets-encryption/applied/"
	// encryptionApplyWait bounds the wait for every live server to
	// hold a step of a rotation, unless the request says otherwise
	// (serverWait, within the bounds below).
	encryptionApplyWait    = 60 * time.Second
	encryptionApplyWaitMin = time.Second
	encryptionApplyWaitMax = 10 * time.Minute
	encryptionApplyPoll    = 200 * time.Millisecond
	encryptionFollowGap    = time.Second
)

// encryptionRecord is the value of encryptionRecordKey.
type encryptionRecord struct {
	Generation int64  `json:"generation"`
	Sealed     []byte `json:"sealed"`
}

// ServerKeys is what a server says it holds of the shared keys (its value
// under encryptionAppliedPrefix).
type ServerKeys struct {
	Generation int64  `json:"generation"`
	WriteKey   string `json:"writeKey"`
}

// shares tells whether this server takes part: only the data dir's own
// keys are shared (a --encryption-provider-config file is the operator's
// to give every server, as upstream).
func (e *secretsEncryption) shares() bool { return e.mode() == "default" }

// tokenSecret is the server token the record is sealed with (made here on
// a first start, as the API's start would).
func (e *secretsEncryption) tokenSecret() (string, error) {
	ca, err := pki.LoadOrCreateCA(filepath.Join(e.s.cfg.DataDir, "pki"), "skiff-ca")
	if err != nil {
		return "", err
	}
	tok, err := join.LoadOrCreate(filepath.Join(e.s.cfg.DataDir, serverTokenFile), ca.Cert.Raw)
	if err != nil {
		return "", err
	}
	return tok.Bearer(), nil
}

// join runs before the caches start: it adopts the cluster's record (a
// server that was down through a rotation catches up before it reads a
// single Secret) or, when there is none yet, publishes this server's
// configuration as the first generation. It answers the revision to
// follow the record from.
func (e *secretsEncryption) join(ctx context.Context) (int64, error) {
	secret, err := e.tokenSecret()
	if err != nil {
		return 0, err
	}
	e.secret = secret
	for {
		resp, err := e.s.client.Get(ctx, encryptionRecordKey)
		if err != nil {
			return 0, fmt.Errorf("read the shared encryption configuration: %w", err)
		}
		if len(resp.Kvs) > 0 {
			e.adopt(ctx, resp.Kvs[0].Value)
			return resp.Header.Revision, nil
		}
		sealed, err := encryption.SealShared(e.current(), secret)
		if err != nil {
			return 0, err
		}
		raw, _ := json.Marshal(encryptionRecord{Generation: 1, Sealed: sealed})
		put, err := e.s.client.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(encryptionRecordKey), "=", 0)).
			Then(clientv3.OpPut(encryptionRecordKey, string(raw))).Commit()
		if err != nil {
			return 0, fmt.Errorf("publish the encryption configuration: %w", err)
		}
		if put.Succeeded {
			e.ack(ctx, 1)
			return put.Header.Revision, nil
		}
		// Another server published first: adopt its record.
	}
}

// adopt makes the record's configuration this server's, unless it already
// is, and says so. A record this server cannot open leaves its own keys in
// use (logged, and rotation refuses).
func (e *secretsEncryption) adopt(ctx context.Context, raw []byte) {
	gen, c, err := e.open(raw)
	if err != nil {
		e.setSharingError(err)
		e.s.log.Error("the cluster's shared encryption keys cannot be used; this server goes on with its own (Secrets other servers sealed may not read here)", "err", err)
		return
	}
	e.setSharingError(nil)
	if !encryption.Equal(c, e.current()) {
		if err := e.apply(c); err != nil {
			e.s.log.Error("load the cluster's encryption keys", "generation", gen, "err", err)
			return
		}
		e.s.log.Info("loaded the cluster's encryption keys", "generation", gen, "writeKey", c.WriteKey())
	}
	e.ack(ctx, gen)
}

func (e *secretsEncryption) open(raw []byte) (int64, *encryption.Config, error) {
	var rec encryptionRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return 0, nil, fmt.Errorf("%s: %w", encryptionRecordKey, err)
	}
	c, err := encryption.OpenShared(rec.Sealed, e.secret)
	return rec.Generation, c, err
}

// ack records the generation this server holds.
func (e *secretsEncryption) ack(ctx context.Context, gen int64) {
	raw, _ := json.Marshal(ServerKeys{Generation: gen, WriteKey: e.current().WriteKey()})
	if _, err := e.s.client.Put(ctx, encryptionAppliedPrefix+e.s.advertise.String(), string(raw)); err != nil && ctx.Err() == nil {
		e.s.log.Warn("record the encryption keys this server holds", "generation", gen, "err", err)
	}
}

// follow adopts every new record until ctx ends. When its watch ends (a
// compaction, a lost leader) it reads the record again and watches on.
func (e *secretsEncryption) follow(ctx context.Context, rev int64) {
	for ctx.Err() == nil {
		for wr := range e.s.client.Watch(ctx, encryptionRecordKey, clientv3.WithRev(rev+1)) {
			if wr.Err() != nil {
				break
			}
			for _, ev := range wr.Events {
				rev = ev.Kv.ModRevision
				if ev.Type == clientv3.EventTypePut {
					e.adopt(ctx, ev.Kv.Value)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(encryptionFollowGap):
		}
		resp, err := e.s.client.Get(ctx, encryptionRecordKey)
		if err != nil {
			continue
		}
		if len(resp.Kvs) > 0 {
			e.adopt(ctx, resp.Kvs[0].Value)
		}
		rev = resp.Header.Revision
	}
}

// publish replaces the record with c as the next generation, unless
// another server changed it since baseRev; it answers the record's new
// revision.
func (e *secretsEncryption) publish(ctx context.Context, c *encryption.Config, gen, baseRev int64) (int64, error) {
	sealed, err := encryption.SealShared(c, e.secret)
	if err != nil {
		return 0, err
	}
	raw, _ := json.Marshal(encryptionRecord{Generation: gen, Sealed: sealed})
	resp, err := e.s.client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(encryptionRecordKey), "=", baseRev)).
		Then(clientv3.OpPut(encryptionRecordKey, string(raw))).Commit()
	if err != nil {
		return 0, fmt.Errorf("publish the encryption keys: %w", err)
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("another server changed the encryption keys meanwhile (a rotation there?): run rotate again")
	}
	return resp.Header.Revision, nil
}

// record reads the shared configuration, its generation and revision.
func (e *secretsEncryption) record(ctx context.Context) (*encryption.Config, int64, int64, error) {
	if err := e.sharingError(); err != nil {
		return nil, 0, 0, err
	}
	resp, err := e.s.client.Get(ctx, encryptionRecordKey)
	if err != nil {
		return nil, 0, 0, err
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, 0, fmt.Errorf("no shared encryption configuration in etcd yet (%s)", encryptionRecordKey)
	}
	gen, c, err := e.open(resp.Kvs[0].Value)
	return c, gen, resp.Kvs[0].ModRevision, err
}

// appliedBy lists what every server says it holds, by address.
func (e *secretsEncryption) appliedBy(ctx context.Context) (map[string]ServerKeys, error) {
	resp, err := e.s.client.Get(ctx, encryptionAppliedPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := map[string]ServerKeys{}
	for _, kv := range resp.Kvs {
		var a ServerKeys
		if json.Unmarshal(kv.Value, &a) == nil {
			out[strings.TrimPrefix(string(kv.Key), encryptionAppliedPrefix)] = a
		}
	}
	return out, nil
}

// liveServers are the addresses with a master lease, and this server's.
func (e *secretsEncryption) liveServers(ctx context.Context) ([]string, error) {
	resp, err := e.s.client.Get(ctx, masterLeasePrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, err
	}
	live := []string{e.s.advertise.String()}
	for _, kv := range resp.Kvs {
		if a := strings.TrimPrefix(string(kv.Key), masterLeasePrefix); !slices.Contains(live, a) {
			live = append(live, a)
		}
	}
	return live, nil
}

// behind are the live servers that do not yet hold generation gen.
func behind(live []string, applied map[string]ServerKeys, gen int64) []string {
	var out []string
	for _, a := range live {
		if applied[a].Generation < gen {
			out = append(out, a)
		}
	}
	sort.Strings(out)
	return out
}

// serverWait is a rotation's wait for the servers: the query parameter's
// duration, or the default.
func serverWait(param string) (time.Duration, error) {
	if param == "" {
		return encryptionApplyWait, nil
	}
	d, err := time.ParseDuration(param)
	if err != nil || d < encryptionApplyWaitMin || d > encryptionApplyWaitMax {
		return 0, fmt.Errorf("serverWait %q: a duration from %s to %s", param, encryptionApplyWaitMin, encryptionApplyWaitMax)
	}
	return d, nil
}

// waitApplied waits up to wait until every live server holds generation
// gen.
func (e *secretsEncryption) waitApplied(ctx context.Context, gen int64, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		live, err := e.liveServers(ctx)
		if err != nil {
			return err
		}
		applied, err := e.appliedBy(ctx)
		if err != nil {
			return err
		}
		late := behind(live, applied, gen)
		if len(late) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("servers %s did not load the encryption keys of generation %d within %s (not running this skiff version? a stopped server loads them when it starts); every Secret still reads on every server: run rotate again once they do", strings.Join(late, ", "), gen, wait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(encryptionApplyPoll):
		}
	}
}
