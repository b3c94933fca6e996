package storage

import (
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// startProgressEvery is how often a slow etcd start is reported.
const startProgressEvery = 5 * time.Second

// reportStart logs, every interval until the returned stop is called, that
// the embedded etcd is still starting, with how long it has taken and how
// much write-ahead log and database it is reading: etcd replays its whole
// log before it answers, and a large one otherwise made a silent minute.
func reportStart(log *slog.Logger, dataDir string, interval time.Duration) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(finished)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				log.Info("etcd is still starting: replaying its write-ahead log onto its database",
					"elapsed", time.Since(start).Round(time.Second).String(),
					"wal_bytes", dirBytes(filepath.Join(dataDir, "wal")),
					"db_bytes", dirBytes(filepath.Join(dataDir, "member", "snap")))
			}
		}
	}()
	return func() {
		close(done)
		<-finished
		if d := time.Since(start); d >= interval {
			log.Info("etcd started", "took", d.Round(100*time.Millisecond).String())
		}
	}
}

// dirBytes is the size of the regular files directly in dir.
func dirBytes(dir string) int64 {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() {
			n += info.Size()
		}
	}
	return n
}
