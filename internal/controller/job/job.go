// Package job runs Jobs to completion: pods up to parallelism until
// completions succeed (NonIndexed or Indexed), retries within backoffLimit
// with exponential back-off, activeDeadlineSeconds, suspend, and the
// Complete/Failed/SuccessCriteriaMet/FailureTarget conditions. Pods carry a
// tracking finalizer so that no result is lost before it is counted.
package job

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/skiff-sh/skiff/internal/work"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	"github.com/skiff-sh/skiff/internal/controller"
)

// DefaultBackoff is the first delay before a failed pod is replaced, as
// upstream (it doubles per failure up to six minutes).
const DefaultBackoff = 10 * time.Second

// Controller is the Job controller.
type Controller struct {
	client   kubernetes.Interface
	jobs     batchlisters.JobLister
	pods     corelisters.PodLister
	synced   []cache.InformerSynced
	queue    workqueue.TypedRateLimitingInterface[string]
	expect   *work.Expectations
	recorder record.EventRecorder
	clock    clock.Clock
	log      *slog.Logger
	backoff  time.Duration
	mu       sync.Mutex
	lastFail map[string]time.Time // job key → when a failure was last counted
	// released are pods counted and let go of (tracking finalizer removed)
	// that the pod informer still shows holding the finalizer. Until it
	// catches up they must not be recorded again: a sync on that stale view
	// counted a success twice, finished the Job early and deleted a pod
	// still due to run (upstream keeps the same finalizer expectations).
	released map[types.UID]bool
}

// New builds the controller; Settings.JobBackoff (default DefaultBackoff)
// is the first retry delay.
func New(cc *controller.Context) (controller.Controller, error) {
	base := cc.Settings.JobBackoff
	if base <= 0 {
		base = DefaultBackoff
	}
	jInf := cc.Informers.Batch().V1().Jobs()
	pInf := cc.Informers.Core().V1().Pods()
	c := &Controller{
		client: cc.Client, jobs: jInf.Lister(), pods: pInf.Lister(),
		synced:   []cache.InformerSynced{jInf.Informer().HasSynced, pInf.Informer().HasSynced},
		queue:    work.NewQueue[string]("job"),
		expect:   work.NewExpectations(cc.Clock.Now),
		recorder: cc.Recorder("job-controller"),
		clock:    cc.Clock, log: cc.Log.With("controller", "job"),
		backoff: base, lastFail: map[string]time.Time{}, released: map[types.UID]bool{},
	}
	enqueue := work.Enqueue(c.queue)
	if _, err := jInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) },
		DeleteFunc: func(o any) {
			if key, ok := work.KeyOf(o); ok {
				c.expect.Forget(key)
				c.queue.Add(key)
			}
		},
	}); err != nil {
		return nil, err
	}
	_, err := pInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) {
			if key, ok := ownerKey(o); ok {
				c.expect.Added(key)
				c.queue.Add(key)
				return
			}
			c.enqueueAdopters(o)
		},
		UpdateFunc: func(old, o any) {
			if p := o.(*corev1.Pod); !slices.Contains(p.Finalizers, trackingFinalizer) {
				c.observeReleased(p.UID)
			}
			key, ok := ownerKey(o)
			if ok {
				p, prev := o.(*corev1.Pod), old.(*corev1.Pod)
				if p.DeletionTimestamp != nil && prev.DeletionTimestamp == nil {
					c.expect.Deleted(key, p.Namespace+"/"+p.Name)
				}
				c.queue.Add(key)
			}
			// A pod its Job let go: that Job recounts, and any Job whose
			// selector matches may adopt it.
			if prevKey, had := ownerKey(old); had && prevKey != key {
				c.queue.Add(prevKey)
			}
			if !ok {
				c.enqueueAdopters(o)
			}
		},
		DeleteFunc: func(o any) {
			if tomb, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = tomb.Obj
			}
			p, isPod := o.(*corev1.Pod)
			if !isPod {
				return
			}
			c.observeReleased(p.UID)
			if key, ok := ownerKey(o); ok {
				c.expect.Deleted(key, p.Namespace+"/"+p.Name)
				c.queue.Add(key)
			}
		},
	})
	return c, err
}

func ownerKey(o any) (string, bool) { return work.OwnerKey(o, "Job") }

// observeReleased: the informer shows pod uid without its tracking
// finalizer (or gone); it no longer needs guarding.
func (c *Controller) observeReleased(uid types.UID) {
	c.mu.Lock()
	delete(c.released, uid)
	c.mu.Unlock()
}

func (c *Controller) isReleased(uid types.UID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.released[uid]
}

// enqueueAdopters queues the Jobs that could adopt an orphan pod: those of
// its namespace whose selector matches it.
func (c *Controller) enqueueAdopters(o any) {
	p, ok := o.(*corev1.Pod)
	if !ok || metav1.GetControllerOf(p) != nil {
		return
	}
	jobs, err := c.jobs.Jobs(p.Namespace).List(labels.Everything())
	if err != nil {
		return
	}
	for _, j := range jobs {
		sel, err := metav1.LabelSelectorAsSelector(j.Spec.Selector)
		if err == nil && !sel.Empty() && sel.Matches(labels.Set(p.Labels)) {
			c.queue.Add(c.keyOf(j))
		}
	}
}

// Run implements controller.Controller.
func (c *Controller) Run(ctx context.Context, workers int) {
	work.Serve(ctx, c.log, c.queue, workers, c.sync, c.synced...)
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, _ := cache.SplitMetaNamespaceKey(key)
	j, err := c.jobs.Jobs(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.expect.Forget(key)
		c.mu.Lock()
		delete(c.lastFail, key)
		c.mu.Unlock()
		return c.releaseOrphans(ctx, ns, name)
	}
	if err != nil {
		return err
	}
	pods, err := c.claimPods(ctx, j)
	if err != nil {
		return err
	}
	now := c.clock.Now()
	st := *j.Status.DeepCopy()

	// 1. Record settled pods as uncounted before releasing them, so a crash
	// or a deletion cannot lose a result.
	uncounted := st.UncountedTerminatedPods
	if uncounted == nil {
		uncounted = &batchv1.UncountedTerminatedPods{}
	}
	recorded := false
	for _, p := range pods {
		if !done(p) || !slices.Contains(p.Finalizers, trackingFinalizer) || c.isReleased(p.UID) || slices.Contains(uncounted.Succeeded, p.UID) || slices.Contains(uncounted.Failed, p.UID) {
			continue
		}
		if p.Status.Phase == corev1.PodSucceeded {
			uncounted.Succeeded = append(uncounted.Succeeded, p.UID)
		} else {
			uncounted.Failed = append(uncounted.Failed, p.UID)
		}
		recorded = true
	}
	if recorded {
		st.UncountedTerminatedPods = uncounted
		upd := j.DeepCopy()
		upd.Status = st
		if j, err = c.client.BatchV1().Jobs(ns).UpdateStatus(ctx, upd, metav1.UpdateOptions{}); err != nil {
			return err
		}
		st = *j.Status.DeepCopy()
	}
	// 2. Release the recorded pods, then fold them into the counters.
	completed := parseIndexes(st.CompletedIndexes)
	byUID := map[types.UID]*corev1.Pod{}
	for _, p := range pods {
		byUID[p.UID] = p
	}
	newFailures := false
	policyFailure := "" // why a FailJob rule of the podFailurePolicy fails the Job
	failedIdx := parseIndexes(ptr.Deref(st.FailedIndexes, ""))
	if u := st.UncountedTerminatedPods; u != nil && len(u.Succeeded)+len(u.Failed) > 0 {
		for _, uid := range slices.Concat(u.Succeeded, u.Failed) {
			if p := byUID[uid]; p != nil && slices.Contains(p.Finalizers, trackingFinalizer) {
				if err := c.removeFinalizer(ctx, p); err != nil {
					return err
				}
			}
		}
		for _, uid := range u.Succeeded {
			if p := byUID[uid]; p != nil && indexed(j) {
				if i := podIndex(p); i >= 0 && !completed[i] {
					completed[i] = true
					st.Succeeded++
				}
				continue
			}
			st.Succeeded++
		}
		for _, uid := range u.Failed {
			verdict := failureVerdict{action: batchv1.PodFailurePolicyActionCount}
			if p := byUID[uid]; p != nil {
				verdict = podFailureAction(j, p)
			}
			switch verdict.action {
			case batchv1.PodFailurePolicyActionIgnore:
				continue // replaced, and not counted toward backoffLimit
			case batchv1.PodFailurePolicyActionFailJob:
				if policyFailure == "" {
					policyFailure = verdict.message
				}
			}
			if p := byUID[uid]; p != nil && indexFailed(j, p, verdict.action) {
				failedIdx[podIndex(p)] = true
			}
			st.Failed++
			newFailures = true
		}
		st.UncountedTerminatedPods = &batchv1.UncountedTerminatedPods{}
	}
	if newFailures {
		c.mu.Lock()
		c.lastFail[key] = now
		c.mu.Unlock()
	}
	if indexed(j) {
		st.CompletedIndexes = formatIndexes(completed)
	}
	if perIndex(j) {
		st.FailedIndexes = ptr.To(formatIndexes(failedIdx))
	}

	var running []*corev1.Pod
	st.Terminating = ptr.To[int32](0)
	st.Ready = ptr.To[int32](0)
	for _, p := range pods {
		switch {
		case active(p):
			running = append(running, p)
			if isReady(p) {
				*st.Ready++
			}
		case p.DeletionTimestamp != nil && !finished(p):
			*st.Terminating++
		}
	}

	if j.DeletionTimestamp != nil {
		for _, p := range pods {
			if err := c.removeFinalizer(ctx, p); err != nil {
				return err
			}
		}
	}
	requeue := time.Duration(0)
	if !finishedJob(&st) && j.DeletionTimestamp == nil {
		var pending time.Duration
		if !c.expect.Satisfied(key) {
			pending = c.expect.Expiry(key)
		}
		c.mu.Lock()
		lastFail := c.lastFail[key]
		c.mu.Unlock()
		p := decide(observed{job: j, status: st, running: running, completed: completed, policyFailure: policyFailure,
			indexFailures: failureCounts(j, pods), lastFailure: lastFail, backoff: c.backoff, pending: pending, now: now})
		if err := c.apply(ctx, key, j, p); err != nil {
			return err
		}
		st, requeue = p.status, p.requeue
	}
	st.Active = int32(len(running))
	if finishedJob(&st) {
		st.Active = 0
		st.Ready = ptr.To[int32](0)
	}
	if !apiequality.Semantic.DeepEqual(st, j.Status) {
		upd := j.DeepCopy()
		upd.Status = st
		if _, err := c.client.BatchV1().Jobs(ns).UpdateStatus(ctx, upd, metav1.UpdateOptions{}); err != nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			return err
		}
	}
	if requeue > 0 {
		return work.RetryAfter(requeue)
	}
	return nil
}

// apply carries out a plan: deletes first (a finishing or suspended Job
// stops its pods before it says so), then creates, then the events.
func (c *Controller) apply(ctx context.Context, key string, j *batchv1.Job, p jobPlan) error {
	if err := c.deletePods(ctx, key, j, p.delete); err != nil {
		return err
	}
	if len(p.create) > 0 {
		c.expect.Expect(key, len(p.create), nil)
		errs := make(chan error, len(p.create))
		var wg sync.WaitGroup
		for _, pod := range p.create {
			wg.Add(1)
			go func() {
				defer wg.Done()
				made, err := c.client.CoreV1().Pods(j.Namespace).Create(ctx, pod, metav1.CreateOptions{})
				if err != nil {
					c.expect.Added(key)
					c.recorder.Eventf(j, corev1.EventTypeWarning, "FailedCreate", "Error creating: %v", err)
					errs <- err
					return
				}
				c.recorder.Eventf(j, corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: %s", made.Name)
			}()
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return fmt.Errorf("create pods for job %s: %w", c.keyOf(j), err)
		}
	}
	for _, e := range p.events {
		c.recorder.Event(j, e.kind, e.reason, e.message)
	}
	return nil
}

func (c *Controller) keyOf(j *batchv1.Job) string { return j.Namespace + "/" + j.Name }

func isReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// claimPods returns the pods j controls, as upstream's ControllerRefManager
// does: matching orphans are adopted, owned pods that left the selector are
// released (and lose the tracking finalizer: the Job no longer counts them).
func (c *Controller) claimPods(ctx context.Context, j *batchv1.Job) ([]*corev1.Pod, error) {
	sel, err := metav1.LabelSelectorAsSelector(j.Spec.Selector)
	if err != nil {
		return nil, nil
	}
	all, err := c.pods.Pods(j.Namespace).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	var owned, orphans []*corev1.Pod
	for _, p := range all {
		switch {
		case metav1.IsControlledBy(p, j):
			owned = append(owned, p)
			if !sel.Matches(labels.Set(p.Labels)) {
				if err := c.removeFinalizer(ctx, p); err != nil {
					return nil, err
				}
			}
		case metav1.GetControllerOf(p) == nil:
			orphans = append(orphans, p)
		}
	}
	claim := work.PodClaim{Client: c.client, Owner: j, OwnerGVK: batchv1.SchemeGroupVersion.WithKind("Job"), Selector: sel,
		Alive: func(ctx context.Context) bool {
			fresh, err := c.client.BatchV1().Jobs(j.Namespace).Get(ctx, j.Name, metav1.GetOptions{})
			return err == nil && fresh.UID == j.UID && fresh.DeletionTimestamp == nil
		}}
	if finishedJob(&j.Status) {
		orphans = nil // a finished Job adopts nothing more
	}
	return claim.Claim(ctx, owned, orphans)
}

// deletePods deletes pods the controller no longer wants. Their tracking
// finalizer goes first: a pod the controller removes is not a failure.
func (c *Controller) deletePods(ctx context.Context, key string, j *batchv1.Job, pods []*corev1.Pod) error {
	if len(pods) == 0 {
		return nil
	}
	for _, p := range pods {
		if err := c.removeFinalizer(ctx, p); err != nil {
			return err
		}
	}
	keys := make([]string, len(pods))
	for i, p := range pods {
		keys[i] = p.Namespace + "/" + p.Name
	}
	c.expect.Expect(key, 0, keys)
	for _, p := range pods {
		err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
		if err != nil && !apierrors.IsNotFound(err) {
			c.expect.Deleted(key, p.Namespace+"/"+p.Name)
			return err
		}
		c.recorder.Eventf(j, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: %s", p.Name)
	}
	return nil
}

// releaseOrphans removes the tracking finalizer from pods of a Job that is
// gone, so nothing waits on a result no one will count.
func (c *Controller) releaseOrphans(ctx context.Context, ns, name string) error {
	pods, err := c.pods.Pods(ns).List(labels.Everything())
	if err != nil {
		return err
	}
	for _, p := range pods {
		if ref := metav1.GetControllerOf(p); ref != nil && ref.Kind == "Job" && ref.Name == name {
			if err := c.removeFinalizer(ctx, p); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *Controller) removeFinalizer(ctx context.Context, p *corev1.Pod) error {
	if !slices.Contains(p.Finalizers, trackingFinalizer) {
		return nil
	}
	fin := slices.DeleteFunc(slices.Clone(p.Finalizers), func(f string) bool { return f == trackingFinalizer })
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"uid": p.UID, "resourceVersion": p.ResourceVersion, "finalizers": fin}})
	// Marked before the patch: its watch event may arrive before the
	// patch returns, and must find the mark to clear.
	c.mu.Lock()
	c.released[p.UID] = true
	c.mu.Unlock()
	_, err := c.client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		c.observeReleased(p.UID)
	}
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
