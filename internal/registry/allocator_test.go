package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/skiff-sh/skiff/internal/storage"
)

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func etcdClient(t *testing.T) *clientv3.Client {
	t.Helper()
	e, err := storage.StartEmbedded(storage.EmbeddedConfig{DataDir: t.TempDir(), ClientPort: freePort(t), PeerPort: freePort(t), Name: "t"}, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestIPAllocatorConcurrent fills a small range from many goroutines, as
// two API servers would: every address goes to exactly one owner.
func TestIPAllocatorConcurrent(t *testing.T) {
	c := etcdClient(t)
	a, err := NewIPAllocator(c, "10.43.0.0/27") // 30 usable, 1 reserved
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var mu sync.Mutex
	got := map[string]string{}
	var wg sync.WaitGroup
	var full int
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprintf("ns/s%d", i)
			ip, err := a.AllocateNext(ctx, owner, false)
			mu.Lock()
			defer mu.Unlock()
			if errors.Is(err, ErrFull) {
				full++
				return
			}
			if err != nil {
				t.Error(err)
				return
			}
			if prev, dup := got[ip]; dup {
				t.Errorf("%s given to %s and %s", ip, prev, owner)
			}
			got[ip] = owner
		}()
	}
	wg.Wait()
	if len(got) != 29 || full != 11 {
		t.Errorf("allocated %d (want 29), full %d (want 11)", len(got), full)
	}
	if _, ok := got["10.43.0.1"]; ok {
		t.Error("the kubernetes Service address was handed out")
	}
	if err := a.Allocate(ctx, "10.43.0.1", "default/kubernetes", false); err != nil {
		t.Errorf("explicit first address: %v", err)
	}
	if err := a.Allocate(ctx, "10.44.0.1", "x/y", false); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("out of range: %v", err)
	}
	for ip, owner := range got {
		if err := a.Allocate(ctx, ip, "other/x", false); !errors.Is(err, ErrAllocated) {
			t.Errorf("taken %s: %v", ip, err)
		}
		if err := a.Release(ctx, ip, owner); err != nil {
			t.Fatal(err)
		}
		if err := a.Allocate(ctx, ip, "other/x", false); err != nil {
			t.Errorf("released %s not reusable: %v", ip, err)
		}
		break
	}
}

func TestPortAllocatorRange(t *testing.T) {
	a := NewPortAllocator(etcdClient(t), 30000, 30002)
	ctx := context.Background()
	if err := a.Allocate(ctx, "29999", "a", false); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("29999: %v", err)
	}
	if err := a.Allocate(ctx, "30001", "a", true); err != nil {
		t.Errorf("dry run: %v", err)
	}
	if err := a.Allocate(ctx, "30001", "b", false); err != nil {
		t.Errorf("dry run must not reserve: %v", err)
	}
}
