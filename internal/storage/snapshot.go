package storage

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap"
)

// SaveSnapshot writes etcd's snapshot (its whole keyspace, with the hash
// etcd appends so a restore can check it) to path, through a temporary
// file renamed into place once synced: a snapshot that exists is whole.
func SaveSnapshot(ctx context.Context, client *clientv3.Client, path string) (int64, error) {
	rc, err := client.Snapshot(ctx)
	if err != nil {
		return 0, fmt.Errorf("etcd snapshot: %w", err)
	}
	defer rc.Close()
	tmp := path + ".part"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, rc)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return 0, fmt.Errorf("write snapshot %s: %w", path, err)
	}
	return n, nil
}

// RestoreBump is how far a restore moves the revision forward and marks
// it compacted (as upstream's restore guide asks): resourceVersions never
// go back, and every client's watch and cache start anew rather than
// trusting what they held from after the snapshot.
const RestoreBump = 1_000_000_000

// RestoreSnapshot makes etcdDir (an embedded member's directory) hold the
// snapshot at path: it is restored into a new directory beside etcdDir
// first, its hash checked, and only then swapped in; the directory it
// replaces is kept as etcdDir.old-<time>. A corrupt snapshot leaves
// etcdDir untouched.
func RestoreSnapshot(path, etcdDir, name, peerURL string, log *slog.Logger) (kept string, err error) {
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("snapshot %s: %w", path, err)
	}
	stamp := strconv.FormatInt(time.Now().Unix(), 10)
	fresh := etcdDir + ".restore-" + stamp
	defer func() {
		if err != nil {
			os.RemoveAll(fresh)
		}
	}()
	mgr := snapshot.NewV3(zap.NewNop())
	if err := mgr.Restore(snapshot.RestoreConfig{SnapshotPath: path, Name: name, OutputDataDir: fresh, OutputWALDir: filepath.Join(fresh, "wal"),
		PeerURLs: []string{peerURL}, InitialCluster: name + "=" + peerURL, InitialClusterToken: "etcd-cluster",
		RevisionBump: RestoreBump, MarkCompacted: true}); err != nil {
		return "", fmt.Errorf("restore snapshot %s: %w (the data dir is unchanged)", path, err)
	}
	if _, err := os.Stat(etcdDir); err == nil {
		kept = etcdDir + ".old-" + stamp
		if err := os.Rename(etcdDir, kept); err != nil {
			return "", err
		}
	}
	if err := os.Rename(fresh, etcdDir); err != nil {
		return kept, err
	}
	log.Info("restored etcd from a snapshot", "snapshot", path, "previous", kept)
	return kept, nil
}
