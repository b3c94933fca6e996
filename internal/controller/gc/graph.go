package gc

import (
	"slices"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// objectRef locates one object.
type objectRef struct {
	gvr       schema.GroupVersionResource
	namespace string
	name      string
	uid       types.UID
}

// node is one object in the owner graph.
type node struct {
	ref        objectRef
	owners     []metav1.OwnerReference
	dependents map[types.UID]*node
	// observed: seen through an informer (not only named as an owner).
	observed           bool
	beingDeleted       bool
	deletingDependents bool // deletionTimestamp with the foregroundDeletion finalizer
	orphaning          bool // deletionTimestamp with the orphan finalizer
}

// blocking reports whether n's reference to owner sets blockOwnerDeletion.
func (n *node) blocking(owner types.UID) bool {
	for _, r := range n.owners {
		if r.UID == owner && r.BlockOwnerDeletion != nil && *r.BlockOwnerDeletion {
			return true
		}
	}
	return false
}

// graph is the ownerReference graph over every object the collector sees.
// One goroutine writes it (from informer events); workers read it.
type graph struct {
	mu    sync.RWMutex
	nodes map[types.UID]*node
}

func newGraph() *graph { return &graph{nodes: map[types.UID]*node{}} }

// upsert records obj at ref and returns what the change asks the collector
// to look at: dependents whose owners may now be absent, and the node itself
// when it has started a foreground or orphan deletion.
func (g *graph) upsert(ref objectRef, obj metav1.Object) (self node, dependentsToCheck []objectRef) {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := g.nodes[ref.uid]
	if n == nil {
		n = &node{dependents: map[types.UID]*node{}}
		g.nodes[ref.uid] = n
	}
	n.ref, n.observed = ref, true
	old := n.owners
	n.owners = slices.Clone(obj.GetOwnerReferences())
	for _, r := range old {
		if !hasOwner(n.owners, r.UID) {
			if o := g.nodes[r.UID]; o != nil {
				delete(o.dependents, n.ref.uid)
				g.dropIfUnneeded(o)
			}
		}
	}
	for _, r := range n.owners {
		o := g.nodes[r.UID]
		if o == nil {
			o = &node{ref: objectRef{uid: r.UID, name: r.Name}, dependents: map[types.UID]*node{}}
			g.nodes[r.UID] = o
		}
		o.dependents[n.ref.uid] = n
	}
	fin := obj.GetFinalizers()
	n.beingDeleted = obj.GetDeletionTimestamp() != nil
	n.deletingDependents = n.beingDeleted && slices.Contains(fin, metav1.FinalizerDeleteDependents)
	n.orphaning = n.beingDeleted && slices.Contains(fin, metav1.FinalizerOrphanDependents)
	if n.deletingDependents {
		dependentsToCheck = refs(n.dependents)
	}
	return *n, dependentsToCheck
}

// remove forgets a deleted object and returns its dependents and owners,
// which the collector must look at again.
func (g *graph) remove(uid types.UID) (dependents, owners []objectRef) {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := g.nodes[uid]
	if n == nil {
		return nil, nil
	}
	n.observed = false
	dependents = refs(n.dependents)
	for _, r := range n.owners {
		if o := g.nodes[r.UID]; o != nil {
			delete(o.dependents, uid)
			if o.observed {
				owners = append(owners, o.ref)
			}
			g.dropIfUnneeded(o)
		}
	}
	n.owners = nil
	g.dropIfUnneeded(n)
	return dependents, owners
}

// dropIfUnneeded deletes a node that is neither observed nor an owner of
// anything observed. Callers hold the lock.
func (g *graph) dropIfUnneeded(n *node) {
	if !n.observed && len(n.dependents) == 0 {
		delete(g.nodes, n.ref.uid)
	}
}

// observed reports whether the object with uid is known to exist, and
// whether it is deleting its dependents first.
func (g *graph) observed(uid types.UID) (exists, deletingDependents bool) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	n, ok := g.nodes[uid]
	if !ok || !n.observed {
		return false, false
	}
	return true, n.deletingDependents
}

// dependentsOf lists uid's dependents, and whether any of them blocks its
// deletion (blockOwnerDeletion) and still exists.
func (g *graph) dependentsOf(uid types.UID) (all []objectRef, blocking []objectRef) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	n := g.nodes[uid]
	if n == nil {
		return nil, nil
	}
	for _, d := range n.dependents {
		if !d.observed {
			continue
		}
		all = append(all, d.ref)
		if d.blocking(uid) {
			blocking = append(blocking, d.ref)
		}
	}
	return all, blocking
}

func hasOwner(refs []metav1.OwnerReference, uid types.UID) bool {
	return slices.ContainsFunc(refs, func(r metav1.OwnerReference) bool { return r.UID == uid })
}

// refs lists the observed nodes' references.
func refs(m map[types.UID]*node) []objectRef {
	out := make([]objectRef, 0, len(m))
	for _, n := range m {
		if n.observed {
			out = append(out, n.ref)
		}
	}
	return out
}
