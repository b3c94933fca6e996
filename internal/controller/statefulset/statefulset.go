// Package statefulset runs StatefulSets: pods with stable names and
// hostnames, created in order (or in parallel), PVCs from
// volumeClaimTemplates that outlive their pods as the retention policy says,
// ControllerRevisions, and RollingUpdate with partition or OnDelete.
package statefulset

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/skiff-sh/skiff/internal/work"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/history"
)

// Controller is the StatefulSet controller.
type Controller struct {
	client    kubernetes.Interface
	sets      appslisters.StatefulSetLister
	pods      corelisters.PodLister
	revisions appslisters.ControllerRevisionLister
	claims    corelisters.PersistentVolumeClaimLister
	synced    []cache.InformerSynced
	queue     workqueue.TypedRateLimitingInterface[string]
	recorder  record.EventRecorder
	log       *slog.Logger
}

// New registers the controller's informer handlers.
func New(cc *controller.Context) (controller.Controller, error) {
	ss, p := cc.Informers.Apps().V1().StatefulSets(), cc.Informers.Core().V1().Pods()
	cr, pvc := cc.Informers.Apps().V1().ControllerRevisions(), cc.Informers.Core().V1().PersistentVolumeClaims()
	c := &Controller{
		client: cc.Client, sets: ss.Lister(), pods: p.Lister(), revisions: cr.Lister(), claims: pvc.Lister(),
		synced:   []cache.InformerSynced{ss.Informer().HasSynced, p.Informer().HasSynced, cr.Informer().HasSynced, pvc.Informer().HasSynced},
		queue:    work.NewQueue[string]("statefulset"),
		recorder: cc.Recorder("statefulset-controller"),
		log:      cc.Log.With("controller", "statefulset"),
	}
	enqueue := work.Enqueue(c.queue)
	if _, err := ss.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) }}); err != nil {
		return nil, err
	}
	_, err := p.Informer().AddEventHandler(work.OnChange(func(o any) {
		if key, ok := work.OwnerKey(o, "StatefulSet"); ok {
			c.queue.Add(key)
			return
		}
		c.enqueueAdopters(o)
	}))
	return c, err
}

// enqueueAdopters queues the sets that could adopt an orphan pod: those of
// its namespace whose selector matches it.
func (c *Controller) enqueueAdopters(o any) {
	p, ok := o.(*corev1.Pod)
	if !ok || metav1.GetControllerOf(p) != nil {
		return
	}
	sets, err := c.sets.StatefulSets(p.Namespace).List(labels.Everything())
	if err != nil {
		return
	}
	for _, s := range sets {
		sel, err := metav1.LabelSelectorAsSelector(s.Spec.Selector)
		if err == nil && !sel.Empty() && sel.Matches(labels.Set(p.Labels)) {
			c.queue.Add(s.Namespace + "/" + s.Name)
		}
	}
}

// Run implements controller.Controller.
func (c *Controller) Run(ctx context.Context, workers int) {
	work.Serve(ctx, c.log, c.queue, workers, c.sync, c.synced...)
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, _ := cache.SplitMetaNamespaceKey(key)
	s, err := c.sets.StatefulSets(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil || s.DeletionTimestamp != nil {
		return err
	}
	updateRev, revs, err := c.ensureRevision(ctx, s)
	if err != nil {
		return err
	}
	currentRev := s.Status.CurrentRevision
	if currentRev == "" {
		currentRev = updateRev
	}
	all, err := c.pods.Pods(ns).List(labels.Everything())
	if err != nil {
		return err
	}
	// Claim as upstream: orphans named like the set's pods and matching
	// its selector are adopted, owned pods that left the selector released.
	var owned, orphans []*corev1.Pod
	for _, p := range all {
		switch ref := metav1.GetControllerOf(p); {
		case ref == nil && ordinalOf(s, p) >= 0:
			orphans = append(orphans, p)
		case ref != nil && ref.UID == s.UID:
			owned = append(owned, p)
		}
	}
	sel, err := metav1.LabelSelectorAsSelector(s.Spec.Selector)
	if err != nil {
		return nil // invalid selectors are refused at the API
	}
	claim := work.PodClaim{Client: c.client, Owner: s, OwnerGVK: appsv1.SchemeGroupVersion.WithKind("StatefulSet"), Selector: sel,
		Alive: func(ctx context.Context) bool {
			fresh, err := c.client.AppsV1().StatefulSets(s.Namespace).Get(ctx, s.Name, metav1.GetOptions{})
			return err == nil && fresh.UID == s.UID && fresh.DeletionTimestamp == nil
		}}
	claimed, err := claim.Claim(ctx, owned, orphans)
	if err != nil {
		return err
	}
	pods := map[int32]*corev1.Pod{}
	for _, p := range claimed {
		if o := ordinalOf(s, p); o >= 0 {
			pods[o] = p
		}
	}
	var current *corev1.PodTemplateSpec
	for _, r := range revs {
		if r.Name == currentRev && currentRev != updateRev {
			if current, err = history.Template(r); err != nil {
				return fmt.Errorf("statefulset %s: revision %s: %w", key, r.Name, err)
			}
		}
	}
	for _, st := range plan(s, pods, updateRev, currentRev, current) {
		if err := c.apply(ctx, s, st); err != nil {
			return err
		}
	}
	if err := c.dropScaledClaims(ctx, s, pods); err != nil {
		return err
	}
	if err := c.writeStatus(ctx, s, pods, updateRev, currentRev); err != nil {
		return err
	}
	return history.Prune(ctx, c.client, revs, int(ptr.Deref(s.Spec.RevisionHistoryLimit, 10)), updateRev, currentRev)
}

func (c *Controller) apply(ctx context.Context, s *appsv1.StatefulSet, st step) error {
	if p := st.create; p != nil {
		o := ordinalOf(s, p)
		for _, tmpl := range s.Spec.VolumeClaimTemplates {
			if _, err := c.claims.PersistentVolumeClaims(s.Namespace).Get(claimName(tmpl, s, o)); err == nil {
				continue
			}
			claim := newClaim(s, tmpl, o)
			if _, err := c.client.CoreV1().PersistentVolumeClaims(s.Namespace).Create(ctx, claim, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				c.recorder.Eventf(s, corev1.EventTypeWarning, "FailedCreate", "create Claim %s for Pod %s in StatefulSet %s failed error: %v", claim.Name, p.Name, s.Name, err)
				return err
			}
			c.recorder.Eventf(s, corev1.EventTypeNormal, "SuccessfulCreate", "create Claim %s Pod %s in StatefulSet %s success", claim.Name, p.Name, s.Name)
		}
		if _, err := c.client.CoreV1().Pods(s.Namespace).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			if apierrors.IsAlreadyExists(err) {
				return nil
			}
			c.recorder.Eventf(s, corev1.EventTypeWarning, "FailedCreate", "create Pod %s in StatefulSet %s failed error: %v", p.Name, s.Name, err)
			return err
		}
		c.recorder.Eventf(s, corev1.EventTypeNormal, "SuccessfulCreate", "create Pod %s in StatefulSet %s successful", p.Name, s.Name)
		return nil
	}
	p := st.delete
	err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	c.recorder.Eventf(s, corev1.EventTypeNormal, "SuccessfulDelete", "delete Pod %s in StatefulSet %s successful", p.Name, s.Name)
	return nil
}

// dropScaledClaims deletes the claims of ordinals scaled away when the
// retention policy says whenScaled: Delete, once their pod is gone.
func (c *Controller) dropScaledClaims(ctx context.Context, s *appsv1.StatefulSet, pods map[int32]*corev1.Pod) error {
	p := s.Spec.PersistentVolumeClaimRetentionPolicy
	if p == nil || p.WhenScaled != appsv1.DeletePersistentVolumeClaimRetentionPolicyType {
		return nil
	}
	claims, err := c.claims.PersistentVolumeClaims(s.Namespace).List(labels.Everything())
	if err != nil {
		return err
	}
	end := startOrdinal(s) + replicas(s)
	for _, tmpl := range s.Spec.VolumeClaimTemplates {
		prefix := tmpl.Name + "-" + s.Name + "-"
		for _, cl := range claims {
			if len(cl.Name) <= len(prefix) || cl.Name[:len(prefix)] != prefix || cl.DeletionTimestamp != nil {
				continue
			}
			var o int32
			if _, err := fmt.Sscanf(cl.Name[len(prefix):], "%d", &o); err != nil || o < end || pods[o] != nil {
				continue
			}
			if err := c.client.CoreV1().PersistentVolumeClaims(s.Namespace).Delete(ctx, cl.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return err
			}
		}
	}
	return nil
}

// ensureRevision makes sure the ControllerRevision of the current template
// exists and returns its name and the set's revisions; on a name collision
// it raises collisionCount and retries later, as upstream.
func (c *Controller) ensureRevision(ctx context.Context, s *appsv1.StatefulSet) (string, []*appsv1.ControllerRevision, error) {
	name, revs, err := history.Ensure(ctx, c.client, c.revisions, s, appsv1.SchemeGroupVersion.WithKind("StatefulSet"), s.Spec.Template, s.Status.CollisionCount)
	if errors.Is(err, history.ErrCollision) {
		upd := s.DeepCopy()
		upd.Status.CollisionCount = ptr.To(ptr.Deref(s.Status.CollisionCount, 0) + 1)
		if _, uerr := c.client.AppsV1().StatefulSets(s.Namespace).UpdateStatus(ctx, upd, metav1.UpdateOptions{}); uerr != nil {
			return "", nil, uerr
		}
	}
	return name, revs, err
}

func (c *Controller) writeStatus(ctx context.Context, s *appsv1.StatefulSet, pods map[int32]*corev1.Pod, updateRev, currentRev string) error {
	st := *s.Status.DeepCopy()
	st.ObservedGeneration = s.Generation
	st.Replicas, st.ReadyReplicas, st.AvailableReplicas, st.CurrentReplicas, st.UpdatedReplicas = 0, 0, 0, 0, 0
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		st.Replicas++
		if isReady(p) {
			st.ReadyReplicas++
			st.AvailableReplicas++
		}
		switch p.Labels[revisionLabel] {
		case updateRev:
			st.UpdatedReplicas++
		}
		if p.Labels[revisionLabel] == currentRev {
			st.CurrentReplicas++
		}
	}
	st.UpdateRevision, st.CurrentRevision = updateRev, currentRev
	if st.UpdatedReplicas == replicas(s) && st.ReadyReplicas == replicas(s) && st.Replicas == replicas(s) {
		st.CurrentRevision, st.CurrentReplicas = updateRev, st.UpdatedReplicas
	}
	if apiequality.Semantic.DeepEqual(st, s.Status) {
		return nil
	}
	upd := s.DeepCopy()
	upd.Status = st
	_, err := c.client.AppsV1().StatefulSets(s.Namespace).UpdateStatus(ctx, upd, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
