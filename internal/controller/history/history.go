// Package history keeps the ControllerRevisions of StatefulSets and
// DaemonSets: one per distinct pod template, named by its hash, for
// `kubectl rollout history` and rolling updates.
package history

import (
	"bytes"
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
	data, err := patchData(tmpl)
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

// patchData is the revision's data byte for byte as upstream's controllers
// write it — {"spec":{"template":{...,"$patch":"replace"}}} with every
// object's keys sorted — since clients (kubectl rollout history, the
// conformance suite) find a workload's current revision by comparing bytes.
func patchData(tmpl corev1.PodTemplateSpec) ([]byte, error) {
	raw, err := json.Marshal(tmpl)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	m["$patch"] = "replace"
	return json.Marshal(map[string]any{"spec": map[string]any{"template": m}})
}

// Template decodes the pod template a revision records.
func Template(r *appsv1.ControllerRevision) (*corev1.PodTemplateSpec, error) {
	var data struct {
		Spec struct {
			Template corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(r.Data.Raw, &data); err != nil {
		return nil, fmt.Errorf("decode revision %s: %w", r.Name, err)
	}
	return &data.Spec.Template, nil
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
		same := r.Name == want.Name && bytes.Equal(r.Data.Raw, want.Data.Raw)
		if !same && r.Name != want.Name {
			// Written by an older agent in another layout: the same
			// template is the same revision (no needless rollout).
			t, err := Template(r)
			same = err == nil && apiequality.Semantic.DeepEqual(*t, tmpl)
		}
		if !same {
			continue
		}
		if r.Revision < top {
			// Back to an earlier template (a rollback): it becomes the
			// newest revision again, as upstream numbers them.
			upd := r.DeepCopy()
			upd.Revision = top + 1
			if _, err := client.AppsV1().ControllerRevisions(r.Namespace).Update(ctx, upd, metav1.UpdateOptions{}); err != nil {
				return "", nil, fmt.Errorf("renumber revision %s: %w", r.Name, err)
			}
		}
		return r.Name, revs, nil
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
