package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/test/poll"
)

func (s *server) etcdSnapshot(args ...string) (string, error) {
	out, err := exec.Command(skiffBin, append([]string{"etcd-snapshot", args[0], "--data-dir", s.dataDir}, args[1:]...)...).CombinedOutput()
	return string(out), err
}

var savedSnapshot = regexp.MustCompile(`Snapshot (\S+) saved \((\d+) bytes\): (\S+)`)

// TestEtcdSnapshots: `skiff etcd-snapshot save` writes a snapshot of the
// whole keyspace into the data dir, ls lists it, delete and prune remove
// by name and retention; a namespace deleted after the snapshot is back
// once the server starts with --cluster-reset --cluster-reset-restore-path
// (its Secrets too, though the key that sealed them was rotated away),
// with resourceVersions that moved forward, never back; a corrupt
// snapshot is refused before the data dir is touched; a bad schedule
// refuses to start.
func TestEtcdSnapshots(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	cs := s.client()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "keep"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cm, err := cs.CoreV1().ConfigMaps("keep").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings"}, Data: map[string]string{"color": "blue"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Secrets("keep").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "token"}, StringData: map[string]string{"v": "sealed-before"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	out, err := s.etcdSnapshot("save")
	if err != nil {
		t.Fatalf("save: %v\n%s", err, out)
	}
	m := savedSnapshot.FindStringSubmatch(out)
	if m == nil || !strings.HasPrefix(m[1], "on-demand-") || filepath.Dir(m[3]) != filepath.Join(s.dataDir, "snapshots") {
		t.Fatalf("save said %q", out)
	}
	snap := m[3]
	if st, err := os.Stat(snap); err != nil || strconv.FormatInt(st.Size(), 10) != m[2] || st.Mode().Perm() != 0o600 {
		t.Fatalf("snapshot file: %v %v", st, err)
	}
	for range 3 {
		if out, err := s.etcdSnapshot("save", "--name", "extra"); err != nil {
			t.Fatalf("save --name extra: %v %s", err, out)
		}
	}
	out, err = s.etcdSnapshot("ls")
	if err != nil || strings.Count(out, "\nextra-") != 3 || !strings.Contains(out, m[1]) || !strings.Contains(out, "file://"+snap) {
		t.Fatalf("ls: %v\n%s", err, out)
	}
	out, err = s.etcdSnapshot("prune", "--name", "extra", "--snapshot-retention", "1")
	if err != nil || strings.Count(out, "deleted") != 2 {
		t.Fatalf("prune: %v\n%s", err, out)
	}
	out, _ = s.etcdSnapshot("ls")
	if strings.Count(out, "\nextra-") != 1 || !strings.Contains(out, m[1]) {
		t.Fatalf("after prune, ls: %s", out)
	}
	extra := regexp.MustCompile(`extra-\S+`).FindString(out)
	if out, err := s.etcdSnapshot("delete", extra); err != nil || !strings.Contains(out, "Snapshot "+extra+" deleted") {
		t.Fatalf("delete: %v %s", err, out)
	}
	if out, err := s.etcdSnapshot("delete", "../admin.kubeconfig"); err == nil || !strings.Contains(out, "give a file name") {
		t.Errorf("delete of a path: %v %s", err, out)
	}
	if _, err := os.Stat(s.kubeconfig); err != nil {
		t.Fatal("a snapshot delete reached outside the snapshot directory")
	}

	// What happens after the snapshot is lost by the restore.
	if err := cs.CoreV1().Namespaces().Delete(ctx, "keep", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// The Secrets' key rotated after the snapshot: its old key is retired
	// from the data dir, and the restore must bring it back.
	if out, err := s.secretsEncrypt("rotate"); err != nil {
		t.Fatalf("rotate: %v\n%s", err, out)
	}
	poll.Eventually(t, settle, func() error {
		_, err := cs.CoreV1().Namespaces().Get(ctx, "keep", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	})
	s.stop()

	// A corrupt snapshot: refused, the data dir as it was.
	bad := filepath.Join(t.TempDir(), "corrupt")
	raw, _ := os.ReadFile(snap)
	raw[len(raw)/2] ^= 0xff
	if err := os.WriteFile(bad, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	before := dirListing(t, filepath.Join(s.dataDir, "etcd"))
	cmd := exec.Command(skiffBin, "server", "--data-dir", s.dataDir, "--bind-address", "127.0.0.1", "--secure-port", "0", "--etcd-client-port", "0",
		"--etcd-peer-port", "0", "--disable-agent", "--cluster-reset", "--cluster-reset-restore-path", bad)
	done := make(chan struct{})
	var refusal []byte
	go func() { refusal, _ = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("a corrupt snapshot did not stop the server:\n%s", refusal)
	}
	if cmd.ProcessState.ExitCode() == 0 || !strings.Contains(string(refusal), "restore snapshot "+bad) || !strings.Contains(string(refusal), "the data dir is unchanged") {
		t.Errorf("corrupt snapshot: exit %d\n%s", cmd.ProcessState.ExitCode(), refusal)
	}
	if after := dirListing(t, filepath.Join(s.dataDir, "etcd")); after != before {
		t.Errorf("a refused restore changed the etcd dir:\n%s\n---\n%s", before, after)
	}
	if out, err := exec.Command(skiffBin, "server", "--data-dir", t.TempDir(), "--etcd-snapshot-schedule-cron", "every day").CombinedOutput(); err == nil || !strings.Contains(string(out), "--etcd-snapshot-schedule-cron") {
		t.Errorf("a bad schedule: %v %s", err, out)
	}

	// The restore.
	s.extraArgs = []string{"--cluster-reset", "--cluster-reset-restore-path", snap}
	s.start()
	cs = s.client()
	got, err := cs.CoreV1().ConfigMaps("keep").Get(ctx, "settings", metav1.GetOptions{})
	if err != nil || got.Data["color"] != "blue" || got.UID != cm.UID {
		t.Fatalf("restored configmap: %+v %v", got, err)
	}
	if sec, err := cs.CoreV1().Secrets("keep").Get(ctx, "token", metav1.GetOptions{}); err != nil || string(sec.Data["v"]) != "sealed-before" {
		t.Errorf("a Secret sealed before the rotation, restored: %v %v", sec, err)
	}
	fresh, err := cs.CoreV1().ConfigMaps("keep").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "after"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	oldRV, _ := strconv.ParseInt(cm.ResourceVersion, 10, 64)
	newRV, _ := strconv.ParseInt(fresh.ResourceVersion, 10, 64)
	if newRV < oldRV+1_000_000_000 {
		t.Errorf("resourceVersion after the restore %d, before %d: it must move forward past anything a client saw", newRV, oldRV)
	}
	if kept, _ := filepath.Glob(filepath.Join(s.dataDir, "etcd.old-*")); len(kept) != 1 {
		t.Errorf("the replaced etcd dir is not kept: %v", kept)
	}
	// And it starts again as usual.
	s.stop()
	s.extraArgs = nil
	s.start()
	if _, err := s.client().CoreV1().ConfigMaps("keep").Get(ctx, "after", metav1.GetOptions{}); err != nil {
		t.Errorf("after a plain restart: %v", err)
	}
}

// dirListing names every file under dir with its size and time.
func dirListing(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		b.WriteString(p + " " + strconv.FormatInt(info.Size(), 10) + " " + info.ModTime().String() + "\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestDamagedEtcdWAL: a server whose etcd WAL is damaged refuses to start,
// saying so and naming the command that restores its newest snapshot.
func TestDamagedEtcdWAL(t *testing.T) {
	s := startServer(t)
	out, err := s.etcdSnapshot("save")
	if err != nil {
		t.Fatalf("save: %v %s", err, out)
	}
	snap := savedSnapshot.FindStringSubmatch(out)[3]
	for i := range 50 {
		if _, err := s.client().CoreV1().ConfigMaps("default").Create(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c" + strconv.Itoa(i)}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	s.stop()
	wals, _ := filepath.Glob(filepath.Join(s.dataDir, "etcd", "wal", "*.wal"))
	if len(wals) == 0 {
		t.Fatal("no WAL file")
	}
	raw, err := os.ReadFile(wals[0])
	if err != nil {
		t.Fatal(err)
	}
	used := len(raw)
	for used > 0 && raw[used-1] == 0 {
		used--
	}
	for i := used / 2; i < used/2+64 && i < used; i++ {
		raw[i] ^= 0x5a
	}
	if err := os.WriteFile(wals[0], raw, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(skiffBin, "server", "--data-dir", s.dataDir, "--bind-address", "127.0.0.1", "--secure-port", "0", "--etcd-client-port", "0",
		"--etcd-peer-port", "0", "--disable-agent")
	done := make(chan struct{})
	var got []byte
	go func() { got, _ = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("a server with a damaged WAL did not stop:\n%s", got)
	}
	t.Logf("refusal: %s", tail(string(got), 600))
	if cmd.ProcessState.ExitCode() == 0 || !strings.Contains(string(got), "--cluster-reset-restore-path "+snap) ||
		!strings.Contains(string(got), filepath.Base(wals[0])) || !strings.Contains(string(got), "crc mismatch") {
		t.Errorf("damaged WAL: exit %d\n%s", cmd.ProcessState.ExitCode(), got)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
