package integration

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestDurabilityAfterSIGKILL kills skiff server with SIGKILL in the middle
// of a stream of concurrent creates, restarts it on the same data dir and
// checks that every create answered 201 is there, intact.
func TestDurabilityAfterSIGKILL(t *testing.T) {
	s := startServer(t)
	cms := s.client().CoreV1().ConfigMaps("default")
	var (
		mu    sync.Mutex
		acked = map[string]string{}
		stop  atomic.Bool
		wg    sync.WaitGroup
	)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				name := fmt.Sprintf("w%d-%d", w, i)
				value := fmt.Sprintf("value-%d-%d", w, i)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := cms.Create(ctx, cm(name, map[string]string{"v": value}), metav1.CreateOptions{})
				cancel()
				if err != nil {
					return // the server is gone
				}
				mu.Lock()
				acked[name] = value
				mu.Unlock()
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	s.kill()
	stop.Store(true)
	wg.Wait()
	if len(acked) < 50 {
		t.Fatalf("only %d creates acknowledged before the kill; the test needs a stream", len(acked))
	}

	s.start()
	list, err := s.client().CoreV1().ConfigMaps("default").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list after restart: %v", err)
	}
	found := map[string]string{}
	for _, c := range list.Items {
		found[c.Name] = c.Data["v"]
		if c.UID == "" || c.ResourceVersion == "" || c.CreationTimestamp.IsZero() {
			t.Errorf("damaged object %s: %+v", c.Name, c.ObjectMeta)
		}
	}
	for name, value := range acked {
		if found[name] != value {
			t.Errorf("acknowledged create %s lost or changed: got %q want %q", name, found[name], value)
		}
	}
	t.Logf("%d creates acknowledged, %d objects after restart", len(acked), len(found))
}
