// Package history keeps the ControllerRevisions of StatefulSets and
// DaemonSets: one per distinct pod template, named by its hash, for
// `kubectl rollout history` and rolling updates.
package history

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
)

// Revision builds the ControllerRevision of owner's pod template: the data
// is the patch that restores the template, the name owner-name + hash.
func Revision(owner metav1.Object, gvk schema.GroupVersionKind, tmpl corev1.PodTemplateSpec, collisionCount *int32, number int64) (*appsv1.ControllerRevision, error) {
	data, err := json.Marshal(map[string]any{"spec": map[string]any{"template": tmpl, "$patch": "replace"}})
	if err != nil {
		return nil, err
	}
	h := fnv.New32a()
	h.Write(data)
	if collisionCount != nil {
		fmt.Fprintf(h, "%d", *collisionCount)
	}
	hash := rand.SafeEncodeString(fmt.Sprint(h.Sum32()))
	l := map[string]string{appsv1.ControllerRevisionHashLabelKey: hash}
	for k, v := range tmpl.Labels {
		l[k] = v
	}
	return &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{Name: owner.GetName() + "-" + hash, Namespace: owner.GetNamespace(), Labels: l,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(owner, gvk)}},
		Data:     runtime.RawExtension{Raw: data},
		Revision: number,
	}, nil
}

// ErrCollision means another revision holds the wanted name: the owner's
// collisionCount must go up.
var ErrCollision = errors.New("controller revision name collision")

// Ensure returns the name of the revision for tmpl, creating it (numbered
// one past the highest) when missing, and the owner's revisions.
func Ensure(ctx context.Context, client kubernetes.Interface, lister appslisters.ControllerRevisionLister, owner metav1.Object, gvk schema.GroupVersionKind, tmpl corev1.PodTemplateSpec, collisionCount *int32) (string, []*appsv1.ControllerRevision, error) {
	all, err := lister.ControllerRevisions(owner.GetNamespace()).List(labels.Everything())
	if err != nil {
		return "", nil, err
	}
	var revs []*appsv1.ControllerRevision
	var top int64
	for _, r := range all {
		if metav1.IsControlledBy(r, owner) {
			revs = append(revs, r)
			top = max(top, r.Revision)
		}
	}
	want, err := Revision(owner, gvk, tmpl, collisionCount, top+1)
	if err != nil {
		return "", nil, err
	}
	for _, r := range revs {
		if r.Name == want.Name && apiequality.Semantic.DeepEqual(r.Data.Raw, want.Data.Raw) {
			return r.Name, revs, nil
		}
	}
	created, err := client.AppsV1().ControllerRevisions(owner.GetNamespace()).Create(ctx, want, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return "", nil, ErrCollision
	}
	if err != nil {
		return "", nil, err
	}
	return created.Name, append(revs, created), nil
}

// Prune deletes the oldest revisions beyond limit, never those in keep.
func Prune(ctx context.Context, client kubernetes.Interface, revs []*appsv1.ControllerRevision, limit int, keep ...string) error {
	var old []*appsv1.ControllerRevision
	for _, r := range revs {
		kept := false
		for _, k := range keep {
			kept = kept || r.Name == k
		}
		if !kept {
			old = append(old, r)
		}
	}
	if len(old) <= limit {
		return nil
	}
	sort.Slice(old, func(i, j int) bool { return old[i].Revision < old[j].Revision })
	for _, r := range old[:len(old)-limit] {
		if err := client.AppsV1().ControllerRevisions(r.Namespace).Delete(ctx, r.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}
