package replicaset

import (
	"sync"
	"time"
)

// expectationsTTL bounds how long a sync waits for creates and deletes it
// made to show up in the informer, in case an event is lost.
const expectationsTTL = 5 * time.Minute

// expectations remembers, per ReplicaSet, the pod creates it has made and
// the pods it has deleted that the informer has not shown yet. Until they
// arrive the pod list is stale and a sync must not create or delete again.
type expectations struct {
	mu    sync.Mutex
	items map[string]*expected
	now   func() time.Time
}

type expected struct {
	adds int
	dels map[string]bool // pod keys
	at   time.Time
}

func newExpectations(now func() time.Time) *expectations {
	return &expectations{items: map[string]*expected{}, now: now}
}

// satisfied reports whether key's last actions have all been observed.
func (e *expectations) satisfied(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	x, ok := e.items[key]
	if !ok {
		return true
	}
	if (x.adds <= 0 && len(x.dels) == 0) || e.now().Sub(x.at) > expectationsTTL {
		delete(e.items, key)
		return true
	}
	return false
}

// expect records adds creates and the pods about to be deleted.
func (e *expectations) expect(key string, adds int, dels []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	x := &expected{adds: adds, dels: map[string]bool{}, at: e.now()}
	for _, d := range dels {
		x.dels[d] = true
	}
	e.items[key] = x
}

// added lowers key's expected creates by one (also when a create failed and
// will never be observed).
func (e *expectations) added(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.items[key]; ok {
		x.adds--
	}
}

// deleted marks pod as seen going (or its delete as failed).
func (e *expectations) deleted(key, pod string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.items[key]; ok {
		delete(x.dels, pod)
	}
}

// forget drops key (its ReplicaSet is gone).
func (e *expectations) forget(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.items, key)
}
