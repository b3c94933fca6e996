package storage

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
)

// TestCacheEventWindow: the cache keeps the events of the last eventFresh
// (at least eventWindowMin, at most eventWindow) and drops older ones, so a
// burst's objects are freed once it is over; a watch from before the
// window gets 410, one from inside it gets the events after its revision.
func TestCacheEventWindow(t *testing.T) {
	now := time.Unix(1000, 0)
	c := NewCache(nil, func(runtime.Object) (labels.Set, fields.Set) { return nil, nil }, slog.Default())
	c.now = func() time.Time { return now }
	for i := range 300 {
		c.apply(fmt.Sprintf("ns/cm%d", i), cmObj(fmt.Sprint(i), "v"), int64(i+1))
	}
	if len(c.events) != 300 {
		t.Fatalf("%d events within the fresh window, want 300", len(c.events))
	}
	now = now.Add(eventFresh + time.Second)
	c.apply("ns/late", cmObj("late", "v"), 301)
	c.mu.Lock()
	c.trimLocked()
	c.mu.Unlock()
	if len(c.events) != eventWindowMin || c.windowRV != 301-eventWindowMin {
		t.Fatalf("after the window: %d events, windowRV %d; want %d and %d", len(c.events), c.windowRV, eventWindowMin, 301-eventWindowMin)
	}
	if _, _, _, err := c.Watch(Filter{}, 10, false); err == nil || !strings.Contains(err.Error(), "too old resource version") {
		t.Errorf("watch from before the window: %v", err)
	}
	w, backlog, _, err := c.Watch(Filter{}, 299, false)
	if err != nil || len(backlog) != 2 || backlog[1].RV != 301 {
		t.Errorf("watch inside the window: %d events, %v", len(backlog), err)
	}
	if w != nil {
		c.mu.Lock()
		w.closeLocked()
		c.mu.Unlock()
	}
	for i := range eventWindow + 10 {
		c.apply("ns/busy", cmObj("busy", fmt.Sprint(i)), int64(400+i))
	}
	if len(c.events) != eventWindow {
		t.Errorf("a storm keeps %d events, want the bound %d", len(c.events), eventWindow)
	}
}
