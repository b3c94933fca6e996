package gc

import (
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func obj(finalizers []string, deleting bool, owners ...types.UID) *metav1.ObjectMeta {
	m := &metav1.ObjectMeta{Name: "o", Finalizers: finalizers}
	for _, u := range owners {
		m.OwnerReferences = append(m.OwnerReferences, metav1.OwnerReference{UID: u, Name: string(u)})
	}
	if deleting {
		now := metav1.Now()
		m.DeletionTimestamp = &now
	}
	return m
}

func TestDecide(t *testing.T) {
	bg, fg, orphan := metav1.DeletePropagationBackground, metav1.DeletePropagationForeground, metav1.DeletePropagationOrphan
	cases := []struct {
		name          string
		obj           *metav1.ObjectMeta
		states        map[types.UID]ownerState
		hasDependents bool
		keep          bool
		drop          []types.UID
		policy        *metav1.DeletionPropagation
	}{
		{"no owners: not the collector's", obj(nil, false), nil, false, true, nil, nil},
		{"already being deleted", obj(nil, true, "a"), map[types.UID]ownerState{"a": ownerDangling}, false, true, nil, nil},
		{"live owner keeps it", obj(nil, false, "a"), map[types.UID]ownerState{"a": ownerSolid}, false, true, nil, nil},
		{"live owner, the gone one is dropped", obj(nil, false, "a", "b"), map[types.UID]ownerState{"a": ownerSolid, "b": ownerDangling}, false, true, []types.UID{"b"}, nil},
		{"live owner, a waiting one is dropped", obj(nil, false, "a", "b"), map[types.UID]ownerState{"a": ownerSolid, "b": ownerWaiting}, true, true, []types.UID{"b"}, nil},
		{"owner gone: background", obj(nil, false, "a"), map[types.UID]ownerState{"a": ownerDangling}, true, false, nil, &bg},
		{"waiting owner, own dependents: foreground", obj(nil, false, "a"), map[types.UID]ownerState{"a": ownerWaiting}, true, false, nil, &fg},
		{"waiting owner, no dependents: background", obj(nil, false, "a"), map[types.UID]ownerState{"a": ownerWaiting}, false, false, nil, &bg},
		{"own orphan finalizer is honoured", obj([]string{metav1.FinalizerOrphanDependents}, false, "a"), map[types.UID]ownerState{"a": ownerDangling}, true, false, nil, &orphan},
		{"own foreground finalizer is honoured", obj([]string{metav1.FinalizerDeleteDependents}, false, "a"), map[types.UID]ownerState{"a": ownerDangling}, true, false, nil, &fg},
	}
	for _, c := range cases {
		got := decide(c.obj, c.states, c.hasDependents)
		if got.keep != c.keep || !slices.Equal(got.dropOwners, c.drop) || (got.delete == nil) != (c.policy == nil) || (got.delete != nil && *got.delete != *c.policy) {
			t.Errorf("%s: got %+v (policy %v), want keep=%v drop=%v policy=%v", c.name, got, deref(got.delete), c.keep, c.drop, deref(c.policy))
		}
	}
}

func deref(p *metav1.DeletionPropagation) string {
	if p == nil {
		return "none"
	}
	return string(*p)
}

func TestGraphTracksOwnersAndDependents(t *testing.T) {
	g := newGraph()
	ref := func(uid types.UID) objectRef { return objectRef{name: string(uid), uid: uid} }
	block := true
	dep := &metav1.ObjectMeta{Name: "d", UID: "d", OwnerReferences: []metav1.OwnerReference{{UID: "o", BlockOwnerDeletion: &block}}}
	g.upsert(ref("d"), dep)
	if exists, _ := g.observed("o"); exists {
		t.Fatal("an owner only named by a dependent counts as observed")
	}
	now := metav1.Now()
	owner := &metav1.ObjectMeta{Name: "o", UID: "o", DeletionTimestamp: &now, Finalizers: []string{metav1.FinalizerDeleteDependents}}
	self, check := g.upsert(ref("o"), owner)
	if !self.deletingDependents || len(check) != 1 || check[0].uid != "d" {
		t.Fatalf("foreground owner: deleting=%v, dependents to check %v", self.deletingDependents, check)
	}
	all, blocking := g.dependentsOf("o")
	if len(all) != 1 || len(blocking) != 1 {
		t.Fatalf("dependents %v, blocking %v", all, blocking)
	}
	deps, owners := g.remove("d")
	if len(deps) != 0 || len(owners) != 1 || owners[0].uid != "o" {
		t.Fatalf("removing the dependent: dependents %v, owners to recheck %v", deps, owners)
	}
	if _, blocking := g.dependentsOf("o"); len(blocking) != 0 {
		t.Fatalf("blocking dependents after removal: %v", blocking)
	}
	g.remove("o")
	if len(g.nodes) != 0 {
		t.Fatalf("graph keeps %d nodes after everything is gone", len(g.nodes))
	}
}

// An object that may close an ownership cycle stops blocking its owners;
// refs that never blocked are left as they were.
func TestUnblockOwners(t *testing.T) {
	yes, no := true, false
	refs := []metav1.OwnerReference{{UID: "a", BlockOwnerDeletion: &yes}, {UID: "b", BlockOwnerDeletion: &no}, {UID: "c"}}
	out, changed := unblockOwners(refs)
	if !changed {
		t.Fatal("a blocking ref was not reported")
	}
	for _, r := range out {
		if r.BlockOwnerDeletion != nil && *r.BlockOwnerDeletion {
			t.Errorf("%s still blocks", r.UID)
		}
	}
	if out[2].BlockOwnerDeletion != nil || !*refs[0].BlockOwnerDeletion {
		t.Error("unset ref changed, or the input was modified")
	}
	if _, changed := unblockOwners(out); changed {
		t.Error("nothing left to unblock, yet changed")
	}
}
