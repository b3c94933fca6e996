// Package deployment rolls Deployments out through ReplicaSets: one per pod
// template, scaled by the RollingUpdate or Recreate strategy, with revision
// history for `kubectl rollout history/undo`, pause, proportional scaling and
// the Available and Progressing conditions `kubectl rollout status` reads.
package deployment

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"strconv"
	"time"

	"github.com/skiff-sh/skiff/internal/work"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	"github.com/skiff-sh/skiff/internal/controller"
)

// Controller is the Deployment controller.
type Controller struct {
	client    kubernetes.Interface
	dLister   appslisters.DeploymentLister
	rsLister  appslisters.ReplicaSetLister
	podLister corelisters.PodLister
	synced    []cache.InformerSynced
	queue     workqueue.TypedRateLimitingInterface[string]
	recorder  record.EventRecorder
	clock     clock.Clock
	log       *slog.Logger
}

// New registers the controller's informer handlers.
func New(cc *controller.Context) (controller.Controller, error) {
	dInf := cc.Informers.Apps().V1().Deployments()
	rsInf := cc.Informers.Apps().V1().ReplicaSets()
	podInf := cc.Informers.Core().V1().Pods()
	c := &Controller{
		client:    cc.Client,
		dLister:   dInf.Lister(),
		rsLister:  rsInf.Lister(),
		podLister: podInf.Lister(),
		synced:    []cache.InformerSynced{dInf.Informer().HasSynced, rsInf.Informer().HasSynced, podInf.Informer().HasSynced},
		queue:     work.NewQueue[string]("deployment"),
		recorder:  cc.Recorder("deployment-controller"),
		clock:     cc.Clock,
		log:       cc.Log.With("controller", "deployment"),
	}
	enqueue := work.Enqueue(c.queue)
	if _, err := dInf.Informer().AddEventHandler(work.OnChange(enqueue)); err != nil {
		return nil, err
	}
	rsChanged := func(obj any) {
		if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = tomb.Obj
		}
		rs, ok := obj.(*appsv1.ReplicaSet)
		if !ok {
			return
		}
		if ref := metav1.GetControllerOf(rs); ref != nil {
			if ref.Kind == "Deployment" {
				c.queue.Add(rs.Namespace + "/" + ref.Name)
			}
			return
		}
		c.enqueueMatching(rs.Namespace, rs.Labels)
	}
	if _, err := rsInf.Informer().AddEventHandler(work.OnChange(rsChanged)); err != nil {
		return nil, err
	}
	// A Recreate rollout waits for the old pods to be gone.
	_, err := podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			p, ok := obj.(*corev1.Pod)
			if !ok {
				return
			}
			if ref := metav1.GetControllerOf(p); ref != nil && ref.Kind == "ReplicaSet" {
				if rs, err := c.rsLister.ReplicaSets(p.Namespace).Get(ref.Name); err == nil {
					if dref := metav1.GetControllerOf(rs); dref != nil && dref.Kind == "Deployment" {
						c.queue.Add(p.Namespace + "/" + dref.Name)
					}
				}
			}
		},
	})
	return c, err
}

func (c *Controller) enqueueMatching(ns string, l map[string]string) {
	ds, _ := c.dLister.Deployments(ns).List(labels.Everything())
	for _, d := range ds {
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err == nil && !sel.Empty() && sel.Matches(labels.Set(l)) {
			c.queue.Add(ns + "/" + d.Name)
		}
	}
}

// Run implements controller.Controller.
func (c *Controller) Run(ctx context.Context, workers int) {
	work.Serve(ctx, c.log, c.queue, workers, c.sync, c.synced...)
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	d, err := c.dLister.Deployments(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || sel.Empty() {
		return nil
	}
	all, err := c.claimReplicaSets(ctx, d, sel)
	if err != nil {
		return err
	}
	if d.DeletionTimestamp != nil {
		return c.syncStatus(ctx, d, all, findNew(d, all), false)
	}
	newRS := findNew(d, all)
	old := without(all, newRS)

	if d.Spec.Paused || scalingEvent(d, all) {
		if err := c.apply(ctx, d, scalePlan(d, newRS, old)); err != nil {
			return err
		}
		return c.syncStatus(ctx, d, all, newRS, false)
	}

	created := false
	if newRS == nil {
		if newRS, err = c.createNewRS(ctx, d, all); err != nil {
			return err
		}
		if newRS == nil {
			return nil // a hash collision was recorded; the update requeues
		}
		created = true
		all = append(all, newRS)
	} else if newRS, err = c.syncRevision(ctx, d, newRS, old); err != nil {
		return err
	}
	oldRunning := false
	if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		if oldRunning, err = c.oldPodsRunning(d, old); err != nil {
			return err
		}
	}
	if err := c.apply(ctx, d, rolloutPlan(d, all, newRS, old, oldRunning)); err != nil {
		return err
	}
	all = c.refresh(d.Namespace, all)
	newRS = findNew(d, all)
	return c.syncStatus(ctx, d, all, newRS, created)
}

// refresh re-reads ReplicaSets from the cache after scaling them.
func (c *Controller) refresh(ns string, sets []*appsv1.ReplicaSet) []*appsv1.ReplicaSet {
	out := make([]*appsv1.ReplicaSet, 0, len(sets))
	for _, rs := range sets {
		if fresh, err := c.rsLister.ReplicaSets(ns).Get(rs.Name); err == nil && fresh.UID == rs.UID {
			out = append(out, fresh)
		} else {
			out = append(out, rs)
		}
	}
	return out
}

func findNew(d *appsv1.Deployment, sets []*appsv1.ReplicaSet) *appsv1.ReplicaSet {
	var found *appsv1.ReplicaSet
	for _, rs := range byAge(sets) {
		if equalIgnoreHash(&rs.Spec.Template, &d.Spec.Template) {
			found = rs // the oldest match, as upstream
			break
		}
	}
	return found
}

func without(sets []*appsv1.ReplicaSet, rs *appsv1.ReplicaSet) []*appsv1.ReplicaSet {
	var out []*appsv1.ReplicaSet
	for _, s := range sets {
		if rs == nil || s.UID != rs.UID {
			out = append(out, s)
		}
	}
	return out
}

// apply resizes the planned ReplicaSets, then deletes the pruned ones.
func (c *Controller) apply(ctx context.Context, d *appsv1.Deployment, p plan) error {
	for _, r := range p.resize {
		if err := c.scaleRS(ctx, d, r.rs, r.size); err != nil {
			return err
		}
	}
	for _, rs := range p.prune {
		err := c.client.AppsV1().ReplicaSets(rs.Namespace).Delete(ctx, rs.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &rs.UID}})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// oldPodsRunning: a pod of an old ReplicaSet has not finished, or an old
// ReplicaSet still counts pods this cache may not show (Recreate waits for
// them all to be gone).
func (c *Controller) oldPodsRunning(d *appsv1.Deployment, old []*appsv1.ReplicaSet) (bool, error) {
	oldUIDs := map[types.UID]bool{}
	for _, rs := range old {
		if rs.Status.Replicas > 0 {
			return true, nil
		}
		oldUIDs[rs.UID] = true
	}
	pods, err := c.podLister.Pods(d.Namespace).List(labels.Everything())
	if err != nil {
		return false, err
	}
	for _, p := range pods {
		if ref := metav1.GetControllerOf(p); ref != nil && oldUIDs[ref.UID] && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			return true, nil
		}
	}
	return false, nil
}

// scaleRS sets a ReplicaSet's size and its desired/max annotations.
func (c *Controller) scaleRS(ctx context.Context, d *appsv1.Deployment, rs *appsv1.ReplicaSet, size int32) error {
	surge, _ := surgeAndUnavailable(d)
	want := replicas(d.Spec.Replicas)
	desired, maxR := strconv.Itoa(int(want)), strconv.Itoa(int(want+surge))
	if replicas(rs.Spec.Replicas) == size && rs.Annotations[desiredReplicasAnnotation] == desired && rs.Annotations[maxReplicasAnnotation] == maxR {
		return nil
	}
	from := replicas(rs.Spec.Replicas)
	upd := rs.DeepCopy()
	upd.Spec.Replicas = ptr.To(size)
	if upd.Annotations == nil {
		upd.Annotations = map[string]string{}
	}
	upd.Annotations[desiredReplicasAnnotation], upd.Annotations[maxReplicasAnnotation] = desired, maxR
	if _, err := c.client.AppsV1().ReplicaSets(rs.Namespace).Update(ctx, upd, metav1.UpdateOptions{}); err != nil {
		return err
	}
	switch {
	case size > from:
		c.recorder.Eventf(d, corev1.EventTypeNormal, "ScalingReplicaSet", "Scaled up replica set %s from %d to %d", rs.Name, from, size)
	case size < from:
		c.recorder.Eventf(d, corev1.EventTypeNormal, "ScalingReplicaSet", "Scaled down replica set %s from %d to %d", rs.Name, from, size)
	}
	return nil
}

// createNewRS makes the ReplicaSet for the current template, revision one
// past the highest so far.
func (c *Controller) createNewRS(ctx context.Context, d *appsv1.Deployment, all []*appsv1.ReplicaSet) (*appsv1.ReplicaSet, error) {
	hash := templateHash(&d.Spec.Template, d.Status.CollisionCount)
	tmpl := *d.Spec.Template.DeepCopy()
	tmpl.Labels = withLabel(tmpl.Labels, appsv1.DefaultDeploymentUniqueLabelKey, hash)
	sel := d.Spec.Selector.DeepCopy()
	sel.MatchLabels = withLabel(sel.MatchLabels, appsv1.DefaultDeploymentUniqueLabelKey, hash)
	surge, _ := surgeAndUnavailable(d)
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name:            d.Name + "-" + hash,
			Namespace:       d.Namespace,
			Labels:          tmpl.Labels,
			Annotations:     rsAnnotations(d, maxRevision(all)+1, replicas(d.Spec.Replicas), surge),
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(d, appsv1.SchemeGroupVersion.WithKind("Deployment"))},
		},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](0), MinReadySeconds: d.Spec.MinReadySeconds, Selector: sel, Template: tmpl},
	}
	rs.Spec.Replicas = ptr.To(newRSReplicas(d, all, rs))
	out, err := c.client.AppsV1().ReplicaSets(d.Namespace).Create(ctx, rs, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		existing, gerr := c.client.AppsV1().ReplicaSets(d.Namespace).Get(ctx, rs.Name, metav1.GetOptions{})
		if gerr == nil && metav1.IsControlledBy(existing, d) && equalIgnoreHash(&existing.Spec.Template, &d.Spec.Template) {
			return existing, nil
		}
		// Another object holds the name: bump collisionCount for a new hash.
		upd := d.DeepCopy()
		upd.Status.CollisionCount = ptr.To(ptr.Deref(d.Status.CollisionCount, 0) + 1)
		_, err = c.client.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, upd, metav1.UpdateOptions{})
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	if r := replicas(out.Spec.Replicas); r > 0 {
		c.recorder.Eventf(d, corev1.EventTypeNormal, "ScalingReplicaSet", "Scaled up replica set %s from 0 to %d", out.Name, r)
	}
	return out, nil
}

// syncRevision gives a template that became current again (a rollback) the
// next revision, recording the old ones in revision-history.
func (c *Controller) syncRevision(ctx context.Context, d *appsv1.Deployment, newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet) (*appsv1.ReplicaSet, error) {
	want := revision(newRS)
	if m := maxRevision(old); m >= want {
		want = m + 1
	}
	surge, _ := surgeAndUnavailable(d)
	ann := rsAnnotations(d, want, replicas(d.Spec.Replicas), surge)
	if prev := newRS.Annotations[revisionAnnotation]; prev != "" && prev != ann[revisionAnnotation] {
		if h := newRS.Annotations[revisionHistoryAnnotation]; h != "" {
			ann[revisionHistoryAnnotation] = h + "," + prev
		} else {
			ann[revisionHistoryAnnotation] = prev
		}
	} else if h := newRS.Annotations[revisionHistoryAnnotation]; h != "" {
		ann[revisionHistoryAnnotation] = h
	}
	merged := maps.Clone(newRS.Annotations)
	if merged == nil {
		merged = map[string]string{}
	}
	maps.Copy(merged, ann)
	if maps.Equal(merged, newRS.Annotations) && newRS.Spec.MinReadySeconds == d.Spec.MinReadySeconds {
		return newRS, nil
	}
	upd := newRS.DeepCopy()
	upd.Annotations, upd.Spec.MinReadySeconds = merged, d.Spec.MinReadySeconds
	return c.client.AppsV1().ReplicaSets(newRS.Namespace).Update(ctx, upd, metav1.UpdateOptions{})
}

// rsAnnotations are the Deployment's annotations a ReplicaSet carries
// (change-cause for rollout history) plus the controller's own.
func rsAnnotations(d *appsv1.Deployment, rev int64, want, surge int32) map[string]string {
	out := map[string]string{}
	for k, v := range d.Annotations {
		switch k {
		case lastAppliedAnnotation, revisionAnnotation, revisionHistoryAnnotation, desiredReplicasAnnotation, maxReplicasAnnotation:
			continue
		}
		out[k] = v
	}
	out[revisionAnnotation] = strconv.FormatInt(rev, 10)
	out[desiredReplicasAnnotation] = strconv.Itoa(int(want))
	out[maxReplicasAnnotation] = strconv.Itoa(int(want + surge))
	return out
}

func withLabel(m map[string]string, k, v string) map[string]string {
	out := maps.Clone(m)
	if out == nil {
		out = map[string]string{}
	}
	out[k] = v
	return out
}

// syncStatus writes status with the Available and Progressing conditions,
// and requeues for the progress deadline.
func (c *Controller) syncStatus(ctx context.Context, d *appsv1.Deployment, all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet, created bool) error {
	now := c.clock.Now()
	st := status(d, all, newRS)
	_, unavailable := surgeAndUnavailable(d)
	if st.AvailableReplicas >= replicas(d.Spec.Replicas)-unavailable {
		setCondition(&st, newCondition(appsv1.DeploymentAvailable, corev1.ConditionTrue, "MinimumReplicasAvailable", "Deployment has minimum availability.", now))
	} else {
		setCondition(&st, newCondition(appsv1.DeploymentAvailable, corev1.ConditionFalse, "MinimumReplicasUnavailable", "Deployment does not have minimum availability.", now))
	}
	var requeue time.Duration
	if d.Spec.ProgressDeadlineSeconds != nil {
		requeue = progress(d, &st, newRS, created, now)
	}
	if !apiequality.Semantic.DeepEqual(st, d.Status) {
		upd := d.DeepCopy()
		upd.Status = st
		if _, err := c.client.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, upd, metav1.UpdateOptions{}); err != nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			return err
		}
	}
	if rev := newRS; rev != nil && d.Annotations[revisionAnnotation] != rev.Annotations[revisionAnnotation] && d.DeletionTimestamp == nil {
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{revisionAnnotation: rev.Annotations[revisionAnnotation]}}})
		if _, err := c.client.AppsV1().Deployments(d.Namespace).Patch(ctx, d.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	if requeue > 0 {
		return work.RetryAfter(requeue)
	}
	return nil
}

// claimReplicaSets returns the ReplicaSets d controls, adopting matching
// orphans and releasing ones that no longer match.
func (c *Controller) claimReplicaSets(ctx context.Context, d *appsv1.Deployment, sel labels.Selector) ([]*appsv1.ReplicaSet, error) {
	sets, err := c.rsLister.ReplicaSets(d.Namespace).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	var out []*appsv1.ReplicaSet
	for _, rs := range sets {
		ref := metav1.GetControllerOf(rs)
		switch {
		case ref != nil && ref.UID == d.UID:
			if sel.Matches(labels.Set(rs.Labels)) {
				out = append(out, rs)
			} else if err := c.patchOwners(ctx, rs, dropUID(rs.OwnerReferences, d.UID)); err != nil {
				return nil, err
			}
		case ref == nil && d.DeletionTimestamp == nil && rs.DeletionTimestamp == nil && sel.Matches(labels.Set(rs.Labels)):
			refs := append(rs.OwnerReferences, *metav1.NewControllerRef(d, appsv1.SchemeGroupVersion.WithKind("Deployment")))
			if err := c.patchOwners(ctx, rs, refs); err != nil {
				return nil, err
			}
			out = append(out, rs)
		}
	}
	return out, nil
}

func dropUID(refs []metav1.OwnerReference, uid types.UID) []metav1.OwnerReference {
	var out []metav1.OwnerReference
	for _, r := range refs {
		if r.UID != uid {
			out = append(out, r)
		}
	}
	return out
}

func (c *Controller) patchOwners(ctx context.Context, rs *appsv1.ReplicaSet, refs []metav1.OwnerReference) error {
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"uid": rs.UID, "resourceVersion": rs.ResourceVersion, "ownerReferences": refs}})
	_, err := c.client.AppsV1().ReplicaSets(rs.Namespace).Patch(ctx, rs.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}
