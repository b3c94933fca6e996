package storage

import (
	"context"
	"fmt"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestHandoff: an object is taken once by the event of its key and
// revision; one whose event went by first is swept; custom objects holding
// a type JSON does not decode to are not offered; the bound holds.
func TestHandoff(t *testing.T) {
	h := newHandoff()
	a := cmObj("a", "1")
	h.put("/k/a", a, 10)
	if got, ok := h.take("/k/a", 9); ok || got != nil {
		t.Fatalf("taken by another revision: %v", got)
	}
	if got, ok := h.take("/k/a", 10); !ok || got != a {
		t.Fatalf("take(10) = %v, %v; want the object put", got, ok)
	}
	if _, ok := h.take("/k/a", 10); ok {
		t.Fatal("taken twice")
	}
	h.put("/k/old", cmObj("old", "1"), 10)
	if len(h.objects) != 0 {
		t.Fatalf("an object at a revision the cache is past was kept: %v", h.objects)
	}
	h.put("/k/late", cmObj("late", "1"), 11)
	h.saw(12)
	for i := range sweepEvery {
		h.take(fmt.Sprintf("/k/x%d", i), int64(13+i))
	}
	if _, ok := h.objects["/k/late"]; ok {
		t.Fatal("an object whose event went by was not swept")
	}
	seen := h.seen.Load()
	odd := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{"n": 3}}}
	h.put("/k/odd", odd, seen+1)
	plain := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{"n": int64(3), "l": []any{"x", 1.5, true, nil}}}}
	h.put("/k/plain", plain, seen+2)
	if _, ok := h.objects["/k/odd"]; ok {
		t.Error("a custom object holding an int was offered")
	}
	if _, ok := h.objects["/k/plain"]; !ok {
		t.Error("a custom object of JSON types was not offered")
	}
	for i := range maxHandoff + 10 {
		h.put(fmt.Sprintf("/k/b%d", i), a, seen+3+int64(i))
	}
	if len(h.objects) != maxHandoff {
		t.Errorf("%d objects kept, want the bound %d", len(h.objects), maxHandoff)
	}
}

// TestCacheTakesWrittenObject: the cache serves the object the store wrote
// without decoding it again, and objects written elsewhere still arrive.
func TestCacheTakesWrittenObject(t *testing.T) { forEachClient(t, testCacheTakesWrittenObject) }

func testCacheTakesWrittenObject(t *testing.T, st *Store, c *Cache) {
	ctx := context.Background()
	if err := c.WaitFresh(ctx, 1); err != nil {
		t.Fatal(err)
	}
	out, err := st.Create(ctx, "ns/mine", cmObj("mine", "a"))
	if err != nil {
		t.Fatal(err)
	}
	// A second store over the same keys writes as another server would.
	other := NewStore(st.client, st.codec, st.prefix, st.resource)
	if _, err := other.Create(ctx, "ns/theirs", cmObj("theirs", "b")); err != nil {
		t.Fatal(err)
	}
	rev, _ := st.CurrentRevision(ctx)
	if err := c.WaitFresh(ctx, rev); err != nil {
		t.Fatal(err)
	}
	items, _ := c.Snapshot(Filter{KeyPrefix: "ns/"})
	if len(items) != 2 {
		t.Fatalf("%d items, want 2", len(items))
	}
	taken := 0
	for _, it := range items {
		if it.Obj == out {
			taken++
		}
	}
	// The watch can outrun the writer's reply, when the cache decodes as
	// before; over a few writes at least one must be handed over.
	for i := 0; taken == 0 && i < 20; i++ {
		o, err := st.Create(ctx, fmt.Sprintf("ns/more%d", i), cmObj(fmt.Sprintf("more%d", i), "c"))
		if err != nil {
			t.Fatal(err)
		}
		r, _ := st.CurrentRevision(ctx)
		if err := c.WaitFresh(ctx, r); err != nil {
			t.Fatal(err)
		}
		all, _ := c.Snapshot(Filter{KeyPrefix: "ns/"})
		for _, it := range all {
			if it.Obj == o {
				taken++
			}
		}
	}
	if taken == 0 {
		t.Error("the cache decoded every object this store wrote")
	}
	if rv := items[0].RV; rv == 0 {
		t.Errorf("item without a revision")
	}
}
