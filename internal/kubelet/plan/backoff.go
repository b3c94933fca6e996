package plan

import (
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// Container restart back-off, upstream's: the first restart is immediate,
// then 10 s doubling to 5 min; an entry untouched for 10 min (twice the
// maximum) starts over.
const (
	BackoffInitial = 10 * time.Second
	BackoffMax     = 5 * time.Minute
)

type backoffEntry struct {
	delay      time.Duration
	lastUpdate time.Time
}

// Backoff is the restart back-off of every container of the node, by
// pod UID and container name.
type Backoff struct {
	clock clock.Clock
	mu    sync.Mutex
	m     map[string]backoffEntry
}

func NewBackoff(c clock.Clock) *Backoff { return &Backoff{clock: c, m: map[string]backoffEntry{}} }

// Wait is how long a restart of key must still wait when its last run
// ended at since; zero means go.
func (b *Backoff) Wait(key string, since time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.m[key]
	if !ok || b.expired(e) {
		return 0
	}
	if left := e.delay - b.clock.Since(since); left > 0 {
		return left
	}
	return 0
}

// Next records a restart of key and returns the delay the following one
// will wait.
func (b *Backoff) Next(key string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.m[key]
	switch {
	case !ok || b.expired(e):
		e.delay = BackoffInitial
	default:
		e.delay = min(2*e.delay, BackoffMax)
	}
	e.lastUpdate = b.clock.Now()
	b.m[key] = e
	return e.delay
}

// Current is the delay recorded for key (for messages).
func (b *Backoff) Current(key string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.m[key].delay
}

func (b *Backoff) expired(e backoffEntry) bool {
	return b.clock.Since(e.lastUpdate) > 2*BackoffMax
}

// Forget drops every entry with the prefix (a pod's containers).
func (b *Backoff) Forget(prefix string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for k := range b.m {
		if len(k) >= len(prefix) && k[:len(prefix)] == prefix {
			delete(b.m, k)
		}
	}
}
