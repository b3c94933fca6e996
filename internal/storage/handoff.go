package storage

import (
	"sync"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// handoff carries objects this server has just written to the watch cache
// that will see them come back from etcd, so the cache need not decode
// what it was handed a moment before (a sixth of a custom object's create).
// The object handed over is the one the writer returns: from then on both
// treat it as read-only, as every object in the cache is.
//
// An entry is taken by the event of its key and revision. One whose event
// passed before it was put (the watch can outrun the writer's reply) is
// swept once the cache is past its revision; past maxHandoff entries new
// ones are not kept, and the cache decodes as it did before.
type handoff struct {
	mu      sync.Mutex
	objects map[string]handedObject
	// seen is the revision of the last event the cache applied.
	seen atomic.Int64
	// takes counts events since the last sweep.
	takes int
}

type handedObject struct {
	obj runtime.Object
	rev int64
}

const (
	maxHandoff = 4096
	sweepEvery = 1024
	// maxJSONDepth is encoding/json's nesting limit.
	maxJSONDepth = 10000
)

func newHandoff() *handoff { return &handoff{objects: map[string]handedObject{}} }

// put offers obj, written at full with revision rev. Custom objects are
// offered only when they hold nothing but the types JSON decodes to, as
// the copy the cache would decode does (admission may have set others).
func (h *handoff) put(full string, obj runtime.Object, rev int64) {
	if h == nil || rev <= h.seen.Load() {
		return
	}
	if u, ok := obj.(*unstructured.Unstructured); ok && !jsonValue(u.Object, 0) {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.objects) < maxHandoff {
		h.objects[full] = handedObject{obj, rev}
	}
}

// take returns the object written at full with revision rev, if it was
// handed over, and records that the cache is at rev.
func (h *handoff) take(full string, rev int64) (runtime.Object, bool) {
	if h == nil {
		return nil, false
	}
	h.seen.Store(rev)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.takes++; h.takes >= sweepEvery {
		h.takes = 0
		for k, e := range h.objects {
			if e.rev < rev {
				delete(h.objects, k)
			}
		}
	}
	e, ok := h.objects[full]
	if !ok || e.rev != rev {
		return nil, false
	}
	delete(h.objects, full)
	return e.obj, true
}

// saw records that the cache is at rev (a delete's revision).
func (h *handoff) saw(rev int64) {
	if h != nil {
		h.seen.Store(rev)
	}
}

// jsonValue reports whether v holds only what a JSON decode of
// unstructured content yields; maxJSONDepth bounds the walk as the decoder's.
func jsonValue(v any, depth int) bool {
	if depth > maxJSONDepth {
		return false
	}
	switch v := v.(type) {
	case nil, string, int64, float64, bool:
		return true
	case map[string]any:
		for _, e := range v {
			if !jsonValue(e, depth+1) {
				return false
			}
		}
		return true
	case []any:
		for _, e := range v {
			if !jsonValue(e, depth+1) {
				return false
			}
		}
		return true
	}
	return false
}
