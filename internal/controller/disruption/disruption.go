// Package disruption keeps PodDisruptionBudget status: how many pods are
// expected and healthy, and how many disruptions (evictions) are allowed.
package disruption

import (
	"context"
	"log/slog"
	"math"
	"time"

	"github.com/skiff-sh/skiff/internal/work"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	policylisters "k8s.io/client-go/listers/policy/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	"github.com/skiff-sh/skiff/internal/controller"
)

// Controller is the disruption (PodDisruptionBudget) controller.
type Controller struct {
	client kubernetes.Interface
	pdbs   policylisters.PodDisruptionBudgetLister
	pods   corelisters.PodLister
	rss    appslisters.ReplicaSetLister
	deps   appslisters.DeploymentLister
	stss   appslisters.StatefulSetLister
	rcs    corelisters.ReplicationControllerLister
	synced []cache.InformerSynced
	queue  workqueue.TypedRateLimitingInterface[string]
	clock  clock.Clock
	log    *slog.Logger
}

// New registers the controller's informer handlers.
func New(cc *controller.Context) (controller.Controller, error) {
	f := cc.Informers
	pdb, pod := f.Policy().V1().PodDisruptionBudgets(), f.Core().V1().Pods()
	rs, dep, sts, rc := f.Apps().V1().ReplicaSets(), f.Apps().V1().Deployments(), f.Apps().V1().StatefulSets(), f.Core().V1().ReplicationControllers()
	c := &Controller{
		client: cc.Client, pdbs: pdb.Lister(), pods: pod.Lister(), rss: rs.Lister(), deps: dep.Lister(), stss: sts.Lister(), rcs: rc.Lister(),
		synced: []cache.InformerSynced{pdb.Informer().HasSynced, pod.Informer().HasSynced, rs.Informer().HasSynced, dep.Informer().HasSynced, sts.Informer().HasSynced, rc.Informer().HasSynced},
		queue:  work.NewQueue[string]("disruption"),
		clock:  cc.Clock, log: cc.Log.With("controller", "disruption"),
	}
	enqueue := work.Enqueue(c.queue)
	if _, err := pdb.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) }}); err != nil {
		return nil, err
	}
	podChanged := func(o any) {
		if tomb, ok := o.(cache.DeletedFinalStateUnknown); ok {
			o = tomb.Obj
		}
		p, ok := o.(*corev1.Pod)
		if !ok {
			return
		}
		list, _ := c.pdbs.PodDisruptionBudgets(p.Namespace).List(labels.Everything())
		for _, b := range list {
			if sel, err := metav1.LabelSelectorAsSelector(b.Spec.Selector); err == nil && sel.Matches(labels.Set(p.Labels)) {
				enqueue(b)
			}
		}
	}
	_, err := pod.Informer().AddEventHandler(work.OnChange(podChanged))
	return c, err
}

// Run implements controller.Controller.
func (c *Controller) Run(ctx context.Context, workers int) {
	work.Serve(ctx, c.log, c.queue, workers, c.sync, c.synced...)
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, _ := cache.SplitMetaNamespaceKey(key)
	pdb, err := c.pdbs.PodDisruptionBudgets(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil {
		return nil
	}
	pods, err := c.pods.Pods(ns).List(sel)
	if err != nil {
		return err
	}
	var live []*corev1.Pod
	for _, p := range pods {
		if p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			live = append(live, p)
		}
	}
	expected := c.expected(live)
	st := Status(pdb, live, expected, c.clock.Now())
	if apiequality.Semantic.DeepEqual(st, pdb.Status) {
		return nil
	}
	upd := pdb.DeepCopy()
	upd.Status = st
	_, err = c.client.PolicyV1().PodDisruptionBudgets(ns).UpdateStatus(ctx, upd, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// expected counts the pods the PDB's pods' controllers want (each
// controller once); pods without a known controller count as themselves.
func (c *Controller) expected(pods []*corev1.Pod) int32 {
	seen := map[types.UID]bool{}
	var n int32
	for _, p := range pods {
		ref := metav1.GetControllerOf(p)
		if ref == nil {
			n++
			continue
		}
		uid, scale, ok := c.scaleOf(p.Namespace, ref)
		if !ok {
			n++
			continue
		}
		if !seen[uid] {
			seen[uid] = true
			n += scale
		}
	}
	return n
}

// scaleOf is the replica count of a pod's controller (a Deployment for a
// ReplicaSet it controls).
func (c *Controller) scaleOf(ns string, ref *metav1.OwnerReference) (types.UID, int32, bool) {
	switch ref.Kind {
	case "ReplicaSet":
		rs, err := c.rss.ReplicaSets(ns).Get(ref.Name)
		if err != nil || rs.UID != ref.UID {
			return "", 0, false
		}
		if d := metav1.GetControllerOf(rs); d != nil && d.Kind == "Deployment" {
			if dep, err := c.deps.Deployments(ns).Get(d.Name); err == nil && dep.UID == d.UID {
				return dep.UID, ptr.Deref(dep.Spec.Replicas, 1), true
			}
		}
		return rs.UID, ptr.Deref(rs.Spec.Replicas, 1), true
	case "StatefulSet":
		s, err := c.stss.StatefulSets(ns).Get(ref.Name)
		if err != nil || s.UID != ref.UID {
			return "", 0, false
		}
		return s.UID, ptr.Deref(s.Spec.Replicas, 1), true
	case "ReplicationController":
		rc, err := c.rcs.ReplicationControllers(ns).Get(ref.Name)
		if err != nil || rc.UID != ref.UID {
			return "", 0, false
		}
		return rc.UID, ptr.Deref(rc.Spec.Replicas, 1), true
	}
	return "", 0, false
}

// disruptedPodTimeout is how long an evicted pod that is not yet deleted
// stays in status.disruptedPods.
const disruptedPodTimeout = 2 * time.Minute

// Status computes a PDB's status for its live pods and expected count.
func Status(pdb *policyv1.PodDisruptionBudget, pods []*corev1.Pod, expected int32, now time.Time) policyv1.PodDisruptionBudgetStatus {
	st := policyv1.PodDisruptionBudgetStatus{ObservedGeneration: pdb.Generation, ExpectedPods: expected, Conditions: append([]metav1.Condition(nil), pdb.Status.Conditions...)}
	for _, p := range pods {
		// A pod the eviction API let go but that is not deleted yet counts
		// as disrupted, not healthy, for a while (upstream: 2 minutes).
		if t, ok := pdb.Status.DisruptedPods[p.Name]; ok && now.Sub(t.Time) < disruptedPodTimeout {
			if st.DisruptedPods == nil {
				st.DisruptedPods = map[string]metav1.Time{}
			}
			st.DisruptedPods[p.Name] = t
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				st.CurrentHealthy++
			}
		}
	}
	switch {
	case pdb.Spec.MinAvailable != nil:
		st.DesiredHealthy = scaled(*pdb.Spec.MinAvailable, expected, true)
	case pdb.Spec.MaxUnavailable != nil:
		st.DesiredHealthy = max(expected-scaled(*pdb.Spec.MaxUnavailable, expected, true), 0)
	}
	st.DisruptionsAllowed = max(st.CurrentHealthy-st.DesiredHealthy, 0)
	cond := metav1.Condition{Type: policyv1.DisruptionAllowedCondition, Status: metav1.ConditionTrue, Reason: policyv1.SufficientPodsReason, ObservedGeneration: pdb.Generation, LastTransitionTime: metav1.NewTime(now)}
	if st.DisruptionsAllowed == 0 {
		cond.Status, cond.Reason = metav1.ConditionFalse, policyv1.InsufficientPodsReason
	}
	meta.SetStatusCondition(&st.Conditions, cond)
	return st
}

func scaled(v intstr.IntOrString, total int32, roundUp bool) int32 {
	if v.Type == intstr.Int {
		return v.IntVal
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(&v, int(total), roundUp)
	if err != nil {
		return int32(math.MaxInt32)
	}
	return int32(n)
}
