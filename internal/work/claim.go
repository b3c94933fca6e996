package work

import (
	"context"
	"encoding/json"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// PodClaim is what a workload controller needs to claim pods the way
// upstream's ControllerRefManager does: it adopts orphans its selector
// matches and releases pods it controls that no longer match.
type PodClaim struct {
	Client   kubernetes.Interface
	Owner    metav1.Object
	OwnerGVK schema.GroupVersionKind
	Selector labels.Selector
	// Alive re-reads the owner before an adoption, so a stale cache never
	// adopts for an owner that is gone or going.
	Alive func(ctx context.Context) bool
}

// Claim returns the pods the owner controls after adopting the matching
// orphans and releasing the owned pods that left its selector. Orphans are
// never adopted while the owner is being deleted.
func (c PodClaim) Claim(ctx context.Context, owned, orphans []*corev1.Pod) ([]*corev1.Pod, error) {
	var out []*corev1.Pod
	for _, p := range owned {
		if c.Selector.Matches(labels.Set(p.Labels)) {
			out = append(out, p)
			continue
		}
		if err := c.release(ctx, p); err != nil {
			return nil, err
		}
	}
	if c.Owner.GetDeletionTimestamp() != nil {
		return out, nil
	}
	alive := true
	checked := false
	for _, p := range orphans {
		if p.DeletionTimestamp != nil || !c.Selector.Matches(labels.Set(p.Labels)) {
			continue
		}
		if !checked {
			alive, checked = c.Alive(ctx), true
		}
		if !alive {
			break
		}
		adopted, err := c.adopt(ctx, p)
		if err != nil {
			return nil, err
		}
		if adopted != nil {
			out = append(out, adopted)
		}
	}
	return out, nil
}

// adopt makes the owner the controller of an orphan, guarded by the pod's
// resourceVersion and uid so a racing change wins.
func (c PodClaim) adopt(ctx context.Context, p *corev1.Pod) (*corev1.Pod, error) {
	yes := true
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
		"uid": p.UID, "resourceVersion": p.ResourceVersion,
		"ownerReferences": append(p.OwnerReferences, metav1.OwnerReference{
			APIVersion: c.OwnerGVK.GroupVersion().String(), Kind: c.OwnerGVK.Kind, Name: c.Owner.GetName(), UID: c.Owner.GetUID(), Controller: &yes, BlockOwnerDeletion: &yes,
		}),
	}})
	out, err := c.Client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil, nil // the next event brings fresh state
	}
	return out, err
}

// release drops the owner's reference from a pod that left its selector.
func (c PodClaim) release(ctx context.Context, p *corev1.Pod) error {
	var refs []metav1.OwnerReference
	for _, r := range p.OwnerReferences {
		if r.UID != c.Owner.GetUID() {
			refs = append(refs, r)
		}
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"uid": p.UID, "resourceVersion": p.ResourceVersion, "ownerReferences": refs}})
	_, err := c.Client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}
