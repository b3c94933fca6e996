package controlplane

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/skiff-sh/skiff/internal/join"
	"github.com/skiff-sh/skiff/internal/storage/encryption"
)

// With an external etcd (--etcd-endpoints) there is no server to join
// through: servers share the cluster's files (CAs, keys, the encryption
// configuration, tokens) through the etcd itself, as k3s shares its
// bootstrap data through its datastore. The first server publishes them
// under bootstrapRecordKey, sealed with its server token; a server started
// later with that token (--token) takes them before it makes anything of
// its own, so every server trusts the same certificates and tokens and
// reads every Secret.
const (
	bootstrapRecordKey       = "/skiff/bootstrap"
	externalBootstrapTimeout = 30 * time.Second
)

// bootstrapRecord is the value of bootstrapRecordKey.
type bootstrapRecord struct {
	// CAHash is the cluster CA's (in clear: a data dir of another
	// cluster is refused without the token).
	CAHash string `json:"caHash"`
	// Sealed is the shared files by name, as JSON, sealed with the
	// server token.
	Sealed []byte `json:"sealed"`
}

// prepareExternal readies the data dir of a server on an external etcd:
// a restart checks that its CA is the cluster's; a new server takes the
// cluster's files with --token, or, the first on that etcd, publishes its
// own once it has made them (publishBootstrapData).
func (s *server) prepareExternal() error {
	cfg := s.cfg
	ctx, cancel := context.WithTimeout(context.Background(), externalBootstrapTimeout)
	defer cancel()
	client, err := externalEtcdClient(cfg)
	if err != nil {
		return err
	}
	defer client.Close()
	resp, err := client.Get(ctx, bootstrapRecordKey)
	if err != nil {
		return fmt.Errorf("read the cluster's bootstrap data from etcd %v: %w", cfg.EtcdEndpoints, err)
	}
	localCA, caErr := os.ReadFile(filepath.Join(cfg.DataDir, "pki", "ca.crt"))
	if len(resp.Kvs) == 0 {
		if cfg.JoinToken != "" && caErr != nil {
			return fmt.Errorf("--token: etcd %v holds no cluster yet: start the first server without --token (or restart one that ran on this etcd before), then the others with its server token", cfg.EtcdEndpoints)
		}
		s.publishBootstrap = true
		return nil
	}
	var rec bootstrapRecord
	if err := json.Unmarshal(resp.Kvs[0].Value, &rec); err != nil {
		return fmt.Errorf("%s in etcd %v: %w", bootstrapRecordKey, cfg.EtcdEndpoints, err)
	}
	if caErr == nil {
		der, err := firstCertDER(localCA)
		if err != nil || join.CAHash(der) != rec.CAHash {
			return fmt.Errorf("the data dir %s belongs to another cluster than the one in etcd %v (its CA is not that cluster's): use a fresh data dir and that cluster's server token", cfg.DataDir, cfg.EtcdEndpoints)
		}
		return nil
	}
	if cfg.JoinToken == "" {
		return fmt.Errorf("etcd %v already holds a cluster (CA sha256:%s): start this server with --token and that cluster's server token (<data-dir>/%s of one of its servers)", cfg.EtcdEndpoints, rec.CAHash, serverTokenFile)
	}
	token, err := join.Parse(cfg.JoinToken)
	if err != nil {
		return fmt.Errorf("--token: %w (a server of the cluster has it in <data-dir>/%s)", err, serverTokenFile)
	}
	if token.CAHash != rec.CAHash {
		return fmt.Errorf("--token names another CA (sha256:%s) than the cluster in etcd %v (sha256:%s)", token.CAHash, cfg.EtcdEndpoints, rec.CAHash)
	}
	plain, err := encryption.OpenWithToken(rec.Sealed, token.Bearer())
	if err != nil {
		return fmt.Errorf("--token: the cluster's bootstrap data in etcd: %w; use the server token, not the node token", err)
	}
	var files map[string][]byte
	if err := json.Unmarshal(plain, &files); err != nil {
		return fmt.Errorf("the cluster's bootstrap data in etcd: %w", err)
	}
	if err := writeSharedFiles(cfg.DataDir, files); err != nil {
		return err
	}
	s.log.Info("took the cluster's CAs, keys and tokens from etcd", "endpoints", cfg.EtcdEndpoints)
	return nil
}

// publishBootstrapData puts this server's shared files into the external
// etcd for the servers after it, unless another server of the same cluster
// did meanwhile; a server of another cluster that did stops this one.
func (s *server) publishBootstrapData(ctx context.Context, token join.Token) error {
	files, err := readSharedFiles(s.cfg.DataDir)
	if err != nil {
		return err
	}
	plain, err := json.Marshal(files)
	if err != nil {
		return err
	}
	sealed, err := encryption.SealWithToken(plain, token.Bearer())
	if err != nil {
		return err
	}
	rec := bootstrapRecord{CAHash: join.CAHash(s.ca.Cert.Raw), Sealed: sealed}
	raw, _ := json.Marshal(rec)
	resp, err := s.client.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(bootstrapRecordKey), "=", 0)).
		Then(clientv3.OpPut(bootstrapRecordKey, string(raw))).Else(clientv3.OpGet(bootstrapRecordKey)).Commit()
	if err != nil {
		return fmt.Errorf("publish the cluster's bootstrap data: %w", err)
	}
	if resp.Succeeded {
		s.log.Info("published the cluster's CAs, keys and tokens in etcd for further servers (they start with --token and this server's server token)")
		return nil
	}
	var theirs bootstrapRecord
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		_ = json.Unmarshal(kvs[0].Value, &theirs)
	}
	if theirs.CAHash == rec.CAHash {
		return nil
	}
	return fmt.Errorf("another cluster's server published its bootstrap data in etcd %v first (CA sha256:%s): start this server with a fresh data dir and that cluster's --token", s.cfg.EtcdEndpoints, theirs.CAHash)
}
