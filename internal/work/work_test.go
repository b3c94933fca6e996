package work

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
)

func TestWorkRetriesAfter(t *testing.T) {
	q := NewQueue[string]("test")
	var calls atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go Work(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), q, 2, func(context.Context, string) error {
		if calls.Add(1) < 3 {
			return RetryAfter(50 * time.Millisecond)
		}
		return nil
	})
	q.Add("k")
	deadline := time.Now().Add(5 * time.Second)
	for calls.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if calls.Load() != 3 {
		t.Fatalf("sync ran %d times, want 3", calls.Load())
	}
}
