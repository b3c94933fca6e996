package storage

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A start slower than the interval is reported while it lasts, with the
// log's size, and its end too; a quick one says nothing.
func TestReportStart(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "wal"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "wal", "0.wal"), make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	var out lockedBuffer
	log := slog.New(slog.NewTextHandler(&out, nil))
	stop := reportStart(log, dir, 20*time.Millisecond)
	time.Sleep(70 * time.Millisecond)
	stop()
	got := out.String()
	if strings.Count(got, "etcd is still starting") < 2 || !strings.Contains(got, "wal_bytes=4096") || !strings.Contains(got, "etcd started") {
		t.Errorf("a slow start logged:\n%s", got)
	}
	var quiet lockedBuffer
	reportStart(slog.New(slog.NewTextHandler(&quiet, nil)), dir, time.Hour)()
	if s := quiet.String(); s != "" {
		t.Errorf("a quick start logged:\n%s", s)
	}
}
