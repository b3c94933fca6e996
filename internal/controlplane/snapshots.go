package controlplane

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/skiff-sh/skiff/internal/storage"
)

// EtcdSnapshotsPath is where `skiff etcd-snapshot` asks the server: GET
// lists, POST saves (?name=), DELETE removes (?file=, repeated); prune
// is EtcdSnapshotsPrunePath (POST ?name=&retention=).
const (
	EtcdSnapshotsPath      = "/skiff/v1/etcd-snapshots"
	EtcdSnapshotsPrunePath = "/skiff/v1/etcd-snapshots/prune"
)

// Snapshot names: what `save` calls its snapshots unless told, and what
// the schedule calls its own (prune and retention count by name).
const (
	OnDemandSnapshot  = "on-demand"
	ScheduledSnapshot = "etcd-snapshot"
)

// SnapshotFile is one snapshot on the server's disk.
type SnapshotFile struct {
	File    string    `json:"file"` // <name>-<node>-<unix seconds>
	Path    string    `json:"path"`
	Size    int64     `json:"size"`
	Created time.Time `json:"created"`
}

// SnapshotReply is the answer of every snapshot operation.
type SnapshotReply struct {
	Snapshots []SnapshotFile `json:"snapshots"`
	Removed   []string       `json:"removed,omitempty"`
	Error     string         `json:"error,omitempty"`
}

// snapshots saves, lists and removes this server's etcd snapshots, in one
// directory on its disk, one operation at a time.
type snapshots struct {
	s   *server
	dir string
	mu  sync.Mutex
}

func (sn *snapshots) node() string {
	if sn.s.cfg.NodeName != "" {
		return sn.s.cfg.NodeName
	}
	h, _ := os.Hostname()
	return h
}

// validSnapshotName is a name a file may start with: letters, digits,
// dots and dashes (no path).
func validSnapshotName(name string) error {
	if name == "" || len(name) > 128 || strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.") != "" || strings.HasPrefix(name, ".") {
		return fmt.Errorf("snapshot name %q: want letters, digits, '-' and '.' only", name)
	}
	return nil
}

// save writes a snapshot named name-<node>-<now>.
func (sn *snapshots) save(ctx context.Context, name string) (SnapshotFile, error) {
	if err := validSnapshotName(name); err != nil {
		return SnapshotFile{}, err
	}
	sn.mu.Lock()
	defer sn.mu.Unlock()
	if err := os.MkdirAll(sn.dir, 0o700); err != nil {
		return SnapshotFile{}, err
	}
	now := time.Now()
	file := fmt.Sprintf("%s-%s-%d", name, sn.node(), now.Unix())
	path := filepath.Join(sn.dir, file)
	if _, err := os.Stat(path); err == nil {
		// Two in one second: the second waits for its own name.
		time.Sleep(time.Until(now.Truncate(time.Second).Add(time.Second)))
		now = time.Now()
		file = fmt.Sprintf("%s-%s-%d", name, sn.node(), now.Unix())
		path = filepath.Join(sn.dir, file)
	}
	size, err := storage.SaveSnapshot(ctx, sn.s.client, path)
	if err != nil {
		return SnapshotFile{}, err
	}
	sn.s.log.Info("etcd snapshot saved", "path", path, "bytes", size)
	return SnapshotFile{File: file, Path: path, Size: size, Created: now.UTC().Truncate(time.Second)}, nil
}

// list is every snapshot in the directory, oldest first.
func (sn *snapshots) list() ([]SnapshotFile, error) {
	entries, err := os.ReadDir(sn.dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []SnapshotFile
	for _, e := range entries {
		if !e.Type().IsRegular() || strings.HasSuffix(e.Name(), ".part") {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		f := SnapshotFile{File: e.Name(), Path: filepath.Join(sn.dir, e.Name()), Size: info.Size(), Created: info.ModTime().UTC().Truncate(time.Second)}
		if i := strings.LastIndexByte(e.Name(), '-'); i > 0 {
			if sec, err := strconv.ParseInt(e.Name()[i+1:], 10, 64); err == nil {
				f.Created = time.Unix(sec, 0).UTC()
			}
		}
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].File < out[j].File
	})
	return out, nil
}

// remove deletes the named snapshot files (names only, never paths).
func (sn *snapshots) remove(files []string) ([]string, error) {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	var removed []string
	for _, f := range files {
		if f == "" || f != filepath.Base(f) || strings.HasPrefix(f, ".") {
			return removed, fmt.Errorf("snapshot %q: give a file name as `skiff etcd-snapshot ls` shows it", f)
		}
		if err := os.Remove(filepath.Join(sn.dir, f)); err != nil {
			if os.IsNotExist(err) {
				return removed, fmt.Errorf("snapshot %q not found in %s", f, sn.dir)
			}
			return removed, err
		}
		removed = append(removed, f)
	}
	return removed, nil
}

// pruneSnapshots picks which snapshots of one name (and this node) to
// delete so that only the newest retention remain.
func pruneSnapshots(all []SnapshotFile, prefix string, retention int) []string {
	var mine []SnapshotFile
	for _, f := range all {
		if strings.HasPrefix(f.File, prefix) {
			if _, err := strconv.ParseInt(f.File[len(prefix):], 10, 64); err == nil {
				mine = append(mine, f)
			}
		}
	}
	if len(mine) <= retention {
		return nil
	}
	var out []string
	for _, f := range mine[:len(mine)-retention] {
		out = append(out, f.File)
	}
	return out
}

func (sn *snapshots) prune(name string, retention int) ([]string, error) {
	if err := validSnapshotName(name); err != nil {
		return nil, err
	}
	if retention < 1 {
		return nil, fmt.Errorf("retention %d: keep at least one snapshot", retention)
	}
	all, err := sn.list()
	if err != nil {
		return nil, err
	}
	return sn.remove(pruneSnapshots(all, name+"-"+sn.node()+"-", retention))
}

// checkSnapshotConfig refuses snapshot and reset settings that cannot work,
// before anything starts.
func checkSnapshotConfig(cfg Config) error {
	if cfg.EtcdSnapshotScheduleCron != "" {
		if _, err := cron.ParseStandard(cfg.EtcdSnapshotScheduleCron); err != nil {
			return fmt.Errorf("--etcd-snapshot-schedule-cron %q: %w", cfg.EtcdSnapshotScheduleCron, err)
		}
		if cfg.EtcdSnapshotRetention < 1 {
			return fmt.Errorf("--etcd-snapshot-retention %d: keep at least one snapshot", cfg.EtcdSnapshotRetention)
		}
	}
	if len(cfg.EtcdEndpoints) > 0 && (cfg.ClusterReset || cfg.ClusterResetRestorePath != "") {
		return fmt.Errorf("--cluster-reset resets the embedded etcd; restore an external etcd cluster with its own tools (etcdutl snapshot restore)")
	}
	if cfg.ClusterResetRestorePath != "" && !cfg.ClusterReset {
		return fmt.Errorf("--cluster-reset-restore-path needs --cluster-reset")
	}
	return nil
}

// schedule saves a snapshot at every time spec names and keeps the
// newest retention of them, until ctx ends.
func (sn *snapshots) schedule(ctx context.Context, spec string, retention int) {
	sched, err := cron.ParseStandard(spec)
	if err != nil {
		sn.s.log.Error("etcd snapshot schedule", "err", err)
		return
	}
	for {
		next := sched.Next(time.Now())
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(next)):
		}
		if _, err := sn.save(ctx, ScheduledSnapshot); err != nil {
			sn.s.log.Warn("scheduled etcd snapshot", "err", err)
			continue
		}
		if removed, err := sn.prune(ScheduledSnapshot, retention); err != nil {
			sn.s.log.Warn("prune etcd snapshots", "err", err)
		} else if len(removed) > 0 {
			sn.s.log.Info("pruned etcd snapshots", "removed", removed)
		}
	}
}

func (sn *snapshots) handlers() map[string]http.Handler {
	answer := func(w http.ResponseWriter, rep SnapshotReply, err error) {
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			rep.Error = err.Error()
			w.WriteHeader(http.StatusConflict)
		}
		_ = json.NewEncoder(w).Encode(rep)
	}
	return map[string]http.Handler{
		EtcdSnapshotsPath: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			q := r.URL.Query()
			switch r.Method {
			case http.MethodGet:
				all, err := sn.list()
				answer(w, SnapshotReply{Snapshots: all}, err)
			case http.MethodPost:
				name := q.Get("name")
				if name == "" {
					name = OnDemandSnapshot
				}
				f, err := sn.save(r.Context(), name)
				answer(w, SnapshotReply{Snapshots: []SnapshotFile{f}}, err)
			case http.MethodDelete:
				removed, err := sn.remove(q["file"])
				answer(w, SnapshotReply{Removed: removed}, err)
			default:
				http.Error(w, "GET, POST or DELETE", http.StatusMethodNotAllowed)
			}
		}),
		EtcdSnapshotsPrunePath: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost {
				http.Error(w, "POST only", http.StatusMethodNotAllowed)
				return
			}
			q := r.URL.Query()
			name := q.Get("name")
			if name == "" {
				name = OnDemandSnapshot
			}
			retention, err := strconv.Atoi(q.Get("retention"))
			if err != nil {
				answer(w, SnapshotReply{}, fmt.Errorf("retention %q: want a number", q.Get("retention")))
				return
			}
			removed, err := sn.prune(name, retention)
			answer(w, SnapshotReply{Removed: removed}, err)
		}),
	}
}

// restoreHint says how to recover an embedded etcd that cannot start: from
// the newest snapshot there is, or from one the operator names.
func (s *server) restoreHint(etcdDir string) string {
	from := "FILE"
	if all, err := s.snapshots.list(); err == nil && len(all) > 0 {
		from = all[len(all)-1].Path
	}
	return fmt.Sprintf("the etcd data in %s cannot be used as it is; to start from a snapshot (the data dir is kept as etcd.old-<time>): "+
		"skiff server --data-dir %s --cluster-reset --cluster-reset-restore-path %s", etcdDir, s.cfg.DataDir, from)
}
