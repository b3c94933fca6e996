package work

import (
	"sync"
	"time"
)

// ExpectationsTTL bounds how long a sync waits for creates and deletes it
// made to show up in the informer, in case an event is lost.
const ExpectationsTTL = 5 * time.Minute

// Expectations remembers, per controller object (a ReplicaSet, a Job), the
// pod creates it has made and the pods it has deleted that the informer has
// not shown yet. Until they arrive the pod list is stale and a sync must not
// create or delete again.
type Expectations struct {
	mu    sync.Mutex
	items map[string]*expected
	now   func() time.Time
}

type expected struct {
	adds int
	dels map[string]bool // pod keys
	at   time.Time
}

// NewExpectations uses now as its clock.
func NewExpectations(now func() time.Time) *Expectations {
	return &Expectations{items: map[string]*expected{}, now: now}
}

// Satisfied reports whether key's last actions have all been observed.
func (e *Expectations) Satisfied(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	x, ok := e.items[key]
	if !ok {
		return true
	}
	if (x.adds <= 0 && len(x.dels) == 0) || e.now().Sub(x.at) > ExpectationsTTL {
		delete(e.items, key)
		return true
	}
	return false
}

// Expiry is how long until key's unobserved actions stop counting. A sync
// that found key unsatisfied queues itself for then: should an event never
// arrive, nothing else would wake the object again.
func (e *Expectations) Expiry(key string) time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	x, ok := e.items[key]
	if !ok {
		return 0
	}
	return max(x.at.Add(ExpectationsTTL).Sub(e.now()), 0) + time.Second
}

// Expect records adds creates and the pods about to be deleted.
func (e *Expectations) Expect(key string, adds int, dels []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	x := &expected{adds: adds, dels: map[string]bool{}, at: e.now()}
	for _, d := range dels {
		x.dels[d] = true
	}
	e.items[key] = x
}

// Added lowers key's expected creates by one (also when a create failed and
// will never be observed).
func (e *Expectations) Added(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.items[key]; ok {
		x.adds--
	}
}

// Deleted marks pod as seen going (or its delete as failed).
func (e *Expectations) Deleted(key, pod string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.items[key]; ok {
		delete(x.dels, pod)
	}
}

// Forget drops key (its object is gone).
func (e *Expectations) Forget(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.items, key)
}
