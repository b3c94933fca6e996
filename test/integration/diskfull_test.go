package integration

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestDiskFull fills the data dir's file system (a small tmpfs the test
// mounts): the server refuses writes with 507 and says so in its log,
// keeps serving reads, does not exit, and takes writes again once the
// space is freed.
func TestDiskFull(t *testing.T) {
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=192m,mode=0700"); err != nil {
		t.Fatalf("mount a tmpfs for the data dir (the test needs root): %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	s := startServerIn(t, dir, "--etcd-disk-reserve", "48Mi")
	ctx := context.Background()
	cms := s.client().CoreV1().ConfigMaps("default")
	cm := func(name string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"k": "v"}}
	}
	if _, err := cms.Create(ctx, cm("before"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Leave 32 MiB: under the reserve, well above what etcd needs for the
	// writes in flight.
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Fallocate(int(f.Fd()), 0, 0, int64(st.Bavail*uint64(st.Bsize))-32<<20); err != nil {
		t.Fatalf("fill the disk: %v", err)
	}
	f.Close()

	var full error
	for i, deadline := 0, time.Now().Add(15*time.Second); time.Now().Before(deadline); i++ {
		_, err := cms.Create(ctx, cm(fmt.Sprintf("probe-%d", i)), metav1.CreateOptions{})
		var se *apierrors.StatusError
		if errors.As(err, &se) && se.ErrStatus.Code == http.StatusInsufficientStorage {
			full = err
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if full == nil || !strings.Contains(full.Error(), "storage is full") {
		t.Fatalf("writes on a full disk: want 507 with a clear message, got %v; logs:\n%s", full, s.logs.String())
	}
	if got, err := cms.Get(ctx, "before", metav1.GetOptions{}); err != nil || got.Data["k"] != "v" {
		t.Errorf("read on a full disk: %v %v", got, err)
	}
	if l, err := cms.List(ctx, metav1.ListOptions{}); err != nil || len(l.Items) == 0 {
		t.Errorf("list on a full disk: %v", err)
	}
	if !strings.Contains(s.logs.String(), "almost full") {
		t.Errorf("the log does not say the disk is full:\n%s", s.logs.String())
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	var werr error
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if _, werr = cms.Create(ctx, cm("after"), metav1.CreateOptions{}); werr == nil {
			break
		}
	}
	if werr != nil {
		t.Fatalf("writes after space was freed: %v; logs:\n%s", werr, s.logs.String())
	}
	if !strings.Contains(s.logs.String(), "writes accepted again") {
		t.Errorf("the log does not say writes resumed:\n%s", s.logs.String())
	}
	if s.cmd.ProcessState != nil || s.cmd.Process.Signal(syscall.Signal(0)) != nil {
		t.Errorf("server exited")
	}
}
