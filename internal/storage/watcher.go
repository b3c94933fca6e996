package storage

import (
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/watch"
)

var metaAccessor = meta.Accessor

// Watcher receives the cache's events that pass its filter, in revision order.
type Watcher struct {
	cache  *Cache
	filter Filter
	ch     chan *Event
	once   sync.Once
	closed bool
}

// Events delivers the watcher's events; it is closed when the watch ends
// (the client should resume from the last resourceVersion it saw).
func (w *Watcher) Events() <-chan *Event { return w.ch }

// Stop ends the watch.
func (w *Watcher) Stop() {
	w.cache.mu.Lock()
	defer w.cache.mu.Unlock()
	delete(w.cache.watchers, w)
	w.closeLocked()
}

func (w *Watcher) closeLocked() {
	w.once.Do(func() { w.closed = true; close(w.ch) })
}

// offerLocked hands ev to the watcher, translated for its filter: an object
// that stops matching is seen as deleted, one that starts matching as added.
func (w *Watcher) offerLocked(ev *Event) {
	if w.closed {
		return
	}
	out := translate(w.filter, ev)
	if out == nil {
		return
	}
	select {
	case w.ch <- out:
	default:
		// Too slow: drop the watcher rather than stall everyone else.
		delete(w.cache.watchers, w)
		w.closeLocked()
	}
}

func translate(f Filter, ev *Event) *Event {
	cur := ev.Type != watch.Deleted && f.Matches(ev.Obj)
	prev := ev.Prev != nil && f.Matches(ev.Prev)
	switch {
	case ev.Type == watch.Deleted:
		if prev {
			return ev
		}
	case cur && prev:
		return ev
	case cur:
		return &Event{Type: watch.Added, Obj: ev.Obj, RV: ev.RV}
	case prev:
		return &Event{Type: watch.Deleted, Obj: ev.Obj, Prev: ev.Prev, RV: ev.RV}
	}
	return nil
}

// Watch starts a watch of the objects passing f after revision rv. With
// initial set, the current matching objects are first sent as ADDED events.
// rv older than the cache's window is refused with 410 Gone.
func (c *Cache) Watch(f Filter, rv int64, initial bool) (*Watcher, []*Event, int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := &Watcher{cache: c, filter: f, ch: make(chan *Event, watcherBuffer)}
	var backlog []*Event
	if initial {
		keys := make([]string, 0, len(c.items))
		for k, o := range c.items {
			if f.Matches(o) {
				keys = append(keys, k)
			}
		}
		sortStrings(keys)
		for _, k := range keys {
			o := c.items[k]
			backlog = append(backlog, &Event{Type: watch.Added, Obj: o, RV: o.RV})
		}
		c.watchers[w] = struct{}{}
		return w, backlog, c.rv, nil
	}
	if rv < c.windowRV {
		return nil, nil, 0, apierrors.NewResourceExpired("too old resource version: " + itoa(rv) + " (" + itoa(c.windowRV+1) + ")")
	}
	for _, ev := range c.events {
		if ev.RV <= rv {
			continue
		}
		if out := translate(f, ev); out != nil {
			backlog = append(backlog, out)
		}
	}
	c.watchers[w] = struct{}{}
	return w, backlog, c.rv, nil
}
