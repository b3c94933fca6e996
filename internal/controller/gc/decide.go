package gc

import (
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// ownerState is what the collector found out about one owner reference.
type ownerState int

const (
	// ownerSolid exists with the referenced UID and is not being deleted
	// with foreground propagation.
	ownerSolid ownerState = iota
	// ownerDangling is gone, or exists under another UID.
	ownerDangling
	// ownerWaiting is being deleted in the foreground: it waits for its
	// dependents to go first.
	ownerWaiting
)

// action is what attemptToDelete does with a dependent.
type action struct {
	// keep: the object stays (it has a live owner, or is already going).
	keep bool
	// dropOwners lists owner UIDs to remove from ownerReferences.
	dropOwners []types.UID
	// delete with this propagation policy.
	delete *metav1.DeletionPropagation
}

// decide is the collector's rule for an object whose owners may be going:
// with any solid owner it stays (and forgets the others); with none, it is
// deleted, in the foreground if an owner waits on it and it has dependents
// of its own, else as its own finalizers ask (orphan, foreground) or in the
// background.
func decide(obj metav1.Object, states map[types.UID]ownerState, hasDependents bool) action {
	if obj.GetDeletionTimestamp() != nil || len(obj.GetOwnerReferences()) == 0 {
		return action{keep: true}
	}
	var solid, gone, waiting []types.UID
	for _, ref := range obj.GetOwnerReferences() {
		switch states[ref.UID] {
		case ownerSolid:
			solid = append(solid, ref.UID)
		case ownerDangling:
			gone = append(gone, ref.UID)
		case ownerWaiting:
			waiting = append(waiting, ref.UID)
		}
	}
	if len(solid) > 0 {
		return action{keep: true, dropOwners: append(gone, waiting...)}
	}
	policy := metav1.DeletePropagationBackground
	switch {
	case len(waiting) > 0 && hasDependents:
		policy = metav1.DeletePropagationForeground
	case slices.Contains(obj.GetFinalizers(), metav1.FinalizerOrphanDependents):
		policy = metav1.DeletePropagationOrphan
	case slices.Contains(obj.GetFinalizers(), metav1.FinalizerDeleteDependents):
		policy = metav1.DeletePropagationForeground
	}
	return action{delete: &policy}
}

// withoutOwners returns refs minus those with the given UIDs.
func withoutOwners(refs []metav1.OwnerReference, drop []types.UID) []metav1.OwnerReference {
	return slices.DeleteFunc(slices.Clone(refs), func(r metav1.OwnerReference) bool { return slices.Contains(drop, r.UID) })
}

// unblockOwners returns refs with blockOwnerDeletion cleared, and whether
// any was set.
func unblockOwners(refs []metav1.OwnerReference) ([]metav1.OwnerReference, bool) {
	out := slices.Clone(refs)
	changed := false
	for i := range out {
		if out[i].BlockOwnerDeletion != nil && *out[i].BlockOwnerDeletion {
			out[i].BlockOwnerDeletion = new(false)
			changed = true
		}
	}
	return out, changed
}
