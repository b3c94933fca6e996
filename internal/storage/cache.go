package storage

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
)

const (
	// A cache keeps past events for watches that resume from a
	// resourceVersion; a watch from before the oldest gets 410 Gone. It
	// keeps those of the last eventFresh (upstream's watch cache keeps
	// 75 s too), at least eventWindowMin so a quiet resource can still be
	// resumed, and at most eventWindow so a storm is bounded. Dropping the
	// old ones is what gives memory back after a burst: each event holds a
	// decoded object and its encodings.
	eventWindow    = 20000
	eventWindowMin = 100
	eventFresh     = 75 * time.Second
	// trimInterval is how often an idle cache drops events gone stale.
	trimInterval = 15 * time.Second
	// watcherBuffer is how many events a slow watcher may lag before it is
	// closed (the client re-watches from its last resourceVersion).
	watcherBuffer = 4096
	// freshWait bounds how long a read waits for the cache to catch up with
	// a requested resourceVersion before answering 504 (Too large RV).
	freshWait = 3 * time.Second
)

// AttrFunc gives the labels and selectable fields of an object.
type AttrFunc func(obj runtime.Object) (labels.Set, fields.Set)

// Object is one version of a stored object as the cache holds it. It is
// immutable once published; its encodings are computed once and shared by
// every list and watch that sends it.
type Object struct {
	Key    string
	Obj    runtime.Object
	RV     int64
	Labels labels.Set
	Fields fields.Set

	encMu sync.Mutex
	enc   map[string][]byte
}

// HasEncoded reports whether the encoding in format is kept already.
func (o *Object) HasEncoded(format string) bool {
	o.encMu.Lock()
	defer o.encMu.Unlock()
	_, ok := o.enc[format]
	return ok
}

// Encoded returns the encoding of o named format, computing it once.
func (o *Object) Encoded(format string, encode func(runtime.Object) ([]byte, error)) ([]byte, error) {
	o.encMu.Lock()
	defer o.encMu.Unlock()
	if b, ok := o.enc[format]; ok {
		return b, nil
	}
	b, err := encode(o.Obj)
	if err != nil {
		return nil, err
	}
	if o.enc == nil {
		o.enc = map[string][]byte{}
	}
	o.enc[format] = b
	return b, nil
}

// Event is one change seen by the cache. Prev is the object before the change
// (nil for an addition).
type Event struct {
	Type watch.EventType
	Obj  *Object
	Prev *Object
	RV   int64
	at   time.Time // when the cache recorded it
}

// Filter selects the objects a list or watch wants.
type Filter struct {
	KeyPrefix string // "" for all namespaces, "<ns>/" for one
	Key       string // exact key for a single-object watch
	Labels    labels.Selector
	Fields    fields.Selector
	// FieldsOf, when set, gives the fields Fields is matched against
	// instead of those the cache computed (a custom resource's fields at a
	// version other than the stored one).
	FieldsOf func(o *Object) fields.Set
}

// Matches reports whether o passes the filter.
func (f Filter) Matches(o *Object) bool {
	if o == nil {
		return false
	}
	if f.Key != "" && o.Key != f.Key {
		return false
	}
	if f.KeyPrefix != "" && !strings.HasPrefix(o.Key, f.KeyPrefix) {
		return false
	}
	if f.Labels != nil && !f.Labels.Empty() && !f.Labels.Matches(o.Labels) {
		return false
	}
	if f.Fields != nil && !f.Fields.Empty() {
		set := o.Fields
		if f.FieldsOf != nil {
			set = f.FieldsOf(o)
		}
		if !f.Fields.Matches(set) {
			return false
		}
	}
	return true
}

// Cache mirrors one resource from one etcd watch.
type Cache struct {
	store *Store
	attrs AttrFunc
	log   *slog.Logger
	// ownStream: watch on a stream of its own (see streamContext).
	ownStream bool

	mu       sync.RWMutex
	cond     *sync.Cond
	rv       int64 // everything up to rv has been applied
	items    map[string]*Object
	sorted   []string // keys in order; nil when stale
	events   []*Event // past events, oldest first (see eventFresh)
	windowRV int64    // events with RV > windowRV are all in events
	watchers map[*Watcher]struct{}
	ready    bool
	now      func() time.Time
}

// NewCache returns a cache for store; Run fills and follows it.
func NewCache(store *Store, attrs AttrFunc, log *slog.Logger) *Cache {
	c := &Cache{store: store, attrs: attrs, log: log, items: map[string]*Object{}, watchers: map[*Watcher]struct{}{}, now: time.Now}
	c.cond = sync.NewCond(&c.mu)
	if store != nil {
		store.handoff = newHandoff()
	}
	return c
}

// Store is the etcd store behind the cache.
func (c *Cache) Store() *Store { return c.store }

// Ready reports whether the initial list has been loaded.
func (c *Cache) Ready() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.ready
}

// Run lists the resource and follows it until ctx ends, re-listing if the
// etcd watch breaks.
func (c *Cache) Run(ctx context.Context) {
	go wait.UntilWithContext(ctx, func(context.Context) {
		c.mu.Lock()
		c.trimLocked()
		c.mu.Unlock()
	}, trimInterval)
	for ctx.Err() == nil {
		if err := c.follow(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("watch cache restarting", "resource", c.store.resource.String(), "err", err)
			time.Sleep(200 * time.Millisecond)
		}
	}
	c.mu.Lock()
	for w := range c.watchers {
		w.closeLocked()
	}
	c.watchers = map[*Watcher]struct{}{}
	c.mu.Unlock()
}

func (c *Cache) follow(ctx context.Context) error {
	start := time.Now()
	page, err := c.store.ListPage(ctx, "", "", 0, 0)
	listed := time.Since(start)
	if err != nil {
		return err
	}
	kvs, rev := page.KVs, page.Rev
	for _, key := range page.Undecryptable {
		c.log.Error("cannot decrypt an object: it is left out until the encryption configuration has its key", "key", key)
	}
	c.replace(kvs, rev)
	c.log.Debug("watch cache primed", "resource", c.store.resource.String(), "objects", len(kvs), "listed", listed.String(), "took", time.Since(start).String())
	wctx, cancel := context.WithCancel(c.streamContext(ctx))
	defer cancel()
	ch := c.store.client.Watch(wctx, c.store.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithProgressNotify())
	for resp := range ch {
		if err := resp.Err(); err != nil {
			return fmt.Errorf("etcd watch %s: %w", c.store.prefix, err)
		}
		for _, ev := range resp.Events {
			key := string(ev.Kv.Key[len(c.store.prefix):])
			if ev.Type == clientv3.EventTypeDelete {
				c.store.handoff.saw(ev.Kv.ModRevision)
				c.apply(key, nil, ev.Kv.ModRevision)
				continue
			}
			obj, ok := c.store.handoff.take(string(ev.Kv.Key), ev.Kv.ModRevision)
			if !ok {
				var err error
				if obj, err = c.store.decode(ev.Kv.Key, ev.Kv.Value, ev.Kv.ModRevision); err != nil {
					c.log.Error("undecodable object in etcd", "key", string(ev.Kv.Key), "err", err)
					continue
				}
			}
			c.apply(key, obj, ev.Kv.ModRevision)
		}
		if resp.IsProgressNotify() || len(resp.Events) == 0 {
			c.progress(resp.Header.Revision)
		}
	}
	return fmt.Errorf("etcd watch %s closed", c.store.prefix)
}

func (c *Cache) newObject(key string, obj runtime.Object, rv int64) *Object {
	l, f := c.attrs(obj)
	return &Object{Key: key, Obj: obj, RV: rv, Labels: l, Fields: f}
}

// replace loads a full list; watchers are closed because they may have
// missed events (they resume from their last resourceVersion).
func (c *Cache) replace(kvs []KV, rev int64) {
	items := make(map[string]*Object, len(kvs))
	for _, kv := range kvs {
		items[kv.Key] = c.newObject(kv.Key, kv.Obj, objRV(kv.Obj))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.items, c.sorted = items, nil
	c.events, c.windowRV = nil, rev
	c.rv = rev
	c.ready = true
	for w := range c.watchers {
		w.closeLocked()
	}
	c.watchers = map[*Watcher]struct{}{}
	c.cond.Broadcast()
}

func (c *Cache) apply(key string, obj runtime.Object, rev int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	prev := c.items[key]
	ev := &Event{Prev: prev, RV: rev}
	switch {
	case obj == nil:
		if prev == nil {
			c.rv = rev
			return
		}
		deleted := prev.Obj.DeepCopyObject()
		_ = setRV(deleted, rev)
		ev.Type, ev.Obj = watch.Deleted, c.newObject(key, deleted, rev)
		delete(c.items, key)
		c.sorted = nil
	case prev == nil:
		ev.Type, ev.Obj = watch.Added, c.newObject(key, obj, rev)
		c.items[key] = ev.Obj
		c.sorted = nil
	default:
		ev.Type, ev.Obj = watch.Modified, c.newObject(key, obj, rev)
		c.items[key] = ev.Obj
	}
	c.rv = rev
	c.record(ev)
	for w := range c.watchers {
		w.offerLocked(ev)
	}
	c.cond.Broadcast()
}

func (c *Cache) record(ev *Event) {
	ev.at = c.now()
	c.events = append(c.events, ev)
	c.trimLocked()
}

// trimLocked drops the events past the window (see eventFresh).
func (c *Cache) trimLocked() {
	now, n, drop := c.now(), len(c.events), 0
	for n-drop > eventWindow || (n-drop > eventWindowMin && now.Sub(c.events[drop].at) > eventFresh) {
		drop++
	}
	if drop == 0 {
		return
	}
	c.windowRV = c.events[drop-1].RV
	clear(c.events[:drop])
	c.events = c.events[drop:]
	// Reslicing keeps the old array; once it is mostly unused, copy the
	// live part so the array itself is freed too.
	if cap(c.events) > 4*eventWindowMin && len(c.events) < cap(c.events)/4 {
		c.events = append(make([]*Event, 0, 2*len(c.events)), c.events...)
	}
}

func (c *Cache) progress(rev int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if rev > c.rv {
		c.rv = rev
		c.cond.Broadcast()
	}
}

// RV is the revision up to which the cache is current.
func (c *Cache) RV() int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.rv
}

// streamContext is ctx as this cache's etcd watch stream is keyed: etcd's
// client multiplexes the watches of one key (its outgoing metadata) over
// one stream. On the embedded server's in-process adapter a stream stalls
// for good when many of its watches are cancelled at once while events
// flow (the server side stops reading requests once 16 cancellations wait
// to be answered, while the client's one goroutine waits to send the
// next): deleting 200 definitions at once froze every cache. The caches of
// custom resources, which come and go, therefore watch on streams of their
// own (OwnStream; about 0.1 MiB each); the built-in caches, stopped only
// with the server, share one. Progress requests go to the stream whose
// watch they report for.
func (c *Cache) streamContext(ctx context.Context) context.Context {
	ctx = clientv3.WithRequireLeader(ctx)
	if c.ownStream {
		ctx = metadata.AppendToOutgoingContext(ctx, "skiff-cache", c.store.prefix)
	}
	return ctx
}

// OwnStream makes the cache watch etcd on a stream of its own (see
// streamContext); call it before Run.
func (c *Cache) OwnStream() { c.ownStream = true }

// WaitFresh blocks until the cache has applied revision rev, asking etcd for
// a progress notification so that quiet resources catch up too.
func (c *Cache) WaitFresh(ctx context.Context, rev int64) error {
	deadline := time.Now().Add(freshWait)
	c.mu.RLock()
	fresh := c.rv >= rev && c.ready
	c.mu.RUnlock()
	if fresh {
		return nil
	}
	_ = c.store.client.RequestProgress(c.streamContext(ctx))
	timer := time.AfterFunc(freshWait, func() { c.mu.Lock(); c.cond.Broadcast(); c.mu.Unlock() })
	defer timer.Stop()
	stop := context.AfterFunc(ctx, func() { c.mu.Lock(); c.cond.Broadcast(); c.mu.Unlock() })
	defer stop()
	asked := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.rv < rev || !c.ready {
		if ctx.Err() != nil {
			return apierrors.NewTimeoutError("request canceled while waiting for the cache", 1)
		}
		if time.Now().After(deadline) {
			return apierrors.NewTooManyRequests(fmt.Sprintf("Too large resource version: %d, current: %d", rev, c.rv), 1)
		}
		if time.Since(asked) > 100*time.Millisecond {
			asked = time.Now()
			go func() { _ = c.store.client.RequestProgress(c.streamContext(ctx)) }()
		}
		c.cond.Wait()
	}
	return nil
}

// Snapshot returns the objects matching f in key order and the revision they
// reflect.
func (c *Cache) Snapshot(f Filter) ([]*Object, int64) {
	c.mu.Lock()
	if c.sorted == nil {
		c.sorted = make([]string, 0, len(c.items))
		for k := range c.items {
			c.sorted = append(c.sorted, k)
		}
		slices.Sort(c.sorted)
	}
	keys, items, rv := c.sorted, c.items, c.rv
	out := make([]*Object, 0, len(keys))
	if f.Key != "" {
		if o := items[f.Key]; f.Matches(o) {
			out = append(out, o)
		}
		c.mu.Unlock()
		return out, rv
	}
	lo := 0
	if f.KeyPrefix != "" {
		lo, _ = slices.BinarySearch(keys, f.KeyPrefix)
	}
	for _, k := range keys[lo:] {
		if f.KeyPrefix != "" && !strings.HasPrefix(k, f.KeyPrefix) {
			break
		}
		if o := items[k]; f.Matches(o) {
			out = append(out, o)
		}
	}
	c.mu.Unlock()
	return out, rv
}

// Len is how many objects the cache holds.
func (c *Cache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.items)
}

// Get returns the cached object at key, or nil.
func (c *Cache) Get(key string) *Object {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.items[key]
}

func objRV(obj runtime.Object) int64 {
	var rv int64
	if acc, err := metaAccessor(obj); err == nil {
		fmt.Sscan(acc.GetResourceVersion(), &rv)
	}
	return rv
}
