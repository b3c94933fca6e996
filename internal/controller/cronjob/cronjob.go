// Package cronjob starts Jobs on a cron schedule: time zones,
// concurrencyPolicy Allow/Forbid/Replace, startingDeadlineSeconds, missed
// runs, suspend, history limits, and the active / lastScheduleTime /
// lastSuccessfulTime status.
package cronjob

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/skiff-sh/skiff/internal/work"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	"github.com/skiff-sh/skiff/internal/controller"
)

// scheduledTimestampAnnotation records on a Job the time it was started for.
const scheduledTimestampAnnotation = "batch.kubernetes.io/cronjob-scheduled-timestamp"

// Controller is the CronJob controller.
type Controller struct {
	client   kubernetes.Interface
	cronJobs batchlisters.CronJobLister
	jobs     batchlisters.JobLister
	synced   []cache.InformerSynced
	queue    workqueue.TypedRateLimitingInterface[string]
	recorder record.EventRecorder
	clock    clock.Clock
	log      *slog.Logger
}

// New registers the controller's informer handlers.
func New(cc *controller.Context) (controller.Controller, error) {
	cjInf := cc.Informers.Batch().V1().CronJobs()
	jInf := cc.Informers.Batch().V1().Jobs()
	c := &Controller{
		client: cc.Client, cronJobs: cjInf.Lister(), jobs: jInf.Lister(),
		synced:   []cache.InformerSynced{cjInf.Informer().HasSynced, jInf.Informer().HasSynced},
		queue:    work.NewQueue[string]("cronjob"),
		recorder: cc.Recorder("cronjob-controller"),
		clock:    cc.Clock, log: cc.Log.With("controller", "cronjob"),
	}
	enqueue := work.Enqueue(c.queue)
	if _, err := cjInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) }}); err != nil {
		return nil, err
	}
	_, err := jInf.Informer().AddEventHandler(work.OnChange(func(obj any) {
		if key, ok := work.OwnerKey(obj, "CronJob"); ok {
			c.queue.Add(key)
		}
	}))
	return c, err
}

// Run implements controller.Controller.
func (c *Controller) Run(ctx context.Context, workers int) {
	work.Serve(ctx, c.log, c.queue, workers, c.sync, c.synced...)
}

func jobFinished(j *batchv1.Job) (batchv1.JobConditionType, bool) {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return c.Type, true
		}
	}
	return "", false
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, _ := cache.SplitMetaNamespaceKey(key)
	cj, err := c.cronJobs.CronJobs(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if cj.DeletionTimestamp != nil {
		return nil
	}
	now := c.clock.Now()
	st := *cj.Status.DeepCopy()

	// Active jobs and history, from the Jobs this CronJob controls.
	all, err := c.jobs.Jobs(ns).List(labels.Everything())
	if err != nil {
		return err
	}
	var running, succeeded, failed []*batchv1.Job
	for _, j := range all {
		if !metav1.IsControlledBy(j, cj) {
			continue
		}
		cond, fin := jobFinished(j)
		switch {
		case !fin:
			running = append(running, j)
		case cond == batchv1.JobComplete:
			succeeded = append(succeeded, j)
			if j.Status.CompletionTime != nil && (st.LastSuccessfulTime == nil || st.LastSuccessfulTime.Before(j.Status.CompletionTime)) {
				st.LastSuccessfulTime = j.Status.CompletionTime.DeepCopy()
			}
		default:
			failed = append(failed, j)
		}
		if fin && slices.ContainsFunc(cj.Status.Active, func(r corev1.ObjectReference) bool { return r.UID == j.UID }) {
			c.recorder.Eventf(cj, corev1.EventTypeNormal, "SawCompletedJob", "Saw completed job: %s, condition: %s", j.Name, cond)
		}
	}
	st.Active = refs(running)

	sched, err := schedule(cj)
	if err != nil {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "UnparseableSchedule", "unparseable schedule: %q : %s", cj.Spec.Schedule, err)
		return c.writeStatus(ctx, cj, st)
	}
	since := cj.CreationTimestamp.Time
	if st.LastScheduleTime != nil {
		since = st.LastScheduleTime.Time
	}
	if !ptr.Deref(cj.Spec.Suspend, false) {
		if at, ok, missed := due(sched, since, now); ok {
			if missed > maxMissed {
				c.recorder.Eventf(cj, corev1.EventTypeWarning, "TooManyMissedTimes", "too many missed start times: %d. Set or decrease .spec.startingDeadlineSeconds or check clock skew", missed)
			}
			if err := c.start(ctx, cj, &st, running, at, now); err != nil {
				return err
			}
		}
	}
	if err := c.writeStatus(ctx, cj, st); err != nil {
		return err
	}
	if err := c.prune(ctx, cj, succeeded, ptr.Deref(cj.Spec.SuccessfulJobsHistoryLimit, 3)); err != nil {
		return err
	}
	if err := c.prune(ctx, cj, failed, ptr.Deref(cj.Spec.FailedJobsHistoryLimit, 1)); err != nil {
		return err
	}
	if next := sched.Next(now); !next.IsZero() {
		return work.RetryAfter(next.Sub(now) + 100*time.Millisecond)
	}
	return nil
}

// start runs the Job for scheduled time at, as the concurrency policy and
// starting deadline allow, and records it in st.
func (c *Controller) start(ctx context.Context, cj *batchv1.CronJob, st *batchv1.CronJobStatus, running []*batchv1.Job, at, now time.Time) error {
	if d := cj.Spec.StartingDeadlineSeconds; d != nil && at.Add(time.Duration(*d)*time.Second).Before(now) {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "MissSchedule", "Missed scheduled time to start a job: %s", at.UTC().Format(time.RFC1123Z))
		st.LastScheduleTime = ptr.To(metav1.NewTime(at))
		return nil
	}
	switch cj.Spec.ConcurrencyPolicy {
	case batchv1.ForbidConcurrent:
		if len(running) > 0 {
			c.recorder.Eventf(cj, corev1.EventTypeNormal, "JobAlreadyActive", "Not starting job because prior execution is running and concurrency policy is Forbid")
			return nil // lastScheduleTime stays: the run is attempted again
		}
	case batchv1.ReplaceConcurrent:
		for _, j := range running {
			err := c.client.BatchV1().Jobs(j.Namespace).Delete(ctx, j.Name, metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)})
			if err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("replace job %s: %w", j.Name, err)
			}
			c.recorder.Eventf(cj, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted job %s", j.Name)
		}
		st.Active = nil
	}
	j := newJob(cj, at)
	created, err := c.client.BatchV1().Jobs(cj.Namespace).Create(ctx, j, metav1.CreateOptions{})
	switch {
	case apierrors.IsAlreadyExists(err):
		existing, gerr := c.client.BatchV1().Jobs(cj.Namespace).Get(ctx, j.Name, metav1.GetOptions{})
		if gerr != nil {
			return gerr
		}
		if !metav1.IsControlledBy(existing, cj) {
			return fmt.Errorf("job %s exists and is not this CronJob's", j.Name)
		}
		created = existing
	case err != nil:
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "FailedCreate", "Error creating job: %v", err)
		return err
	default:
		c.recorder.Eventf(cj, corev1.EventTypeNormal, "SuccessfulCreate", "Created job %s", created.Name)
	}
	if _, fin := jobFinished(created); !fin && !slices.ContainsFunc(st.Active, func(r corev1.ObjectReference) bool { return r.UID == created.UID }) {
		st.Active = append(st.Active, ref(created))
	}
	st.LastScheduleTime = ptr.To(metav1.NewTime(at))
	return nil
}

// newJob builds the Job for scheduled time at, named as upstream does
// (<cronjob>-<minutes since the epoch>).
func newJob(cj *batchv1.CronJob, at time.Time) *batchv1.Job {
	t := cj.Spec.JobTemplate
	ann := map[string]string{scheduledTimestampAnnotation: at.UTC().Format(time.RFC3339)}
	for k, v := range t.Annotations {
		ann[k] = v
	}
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name:            fmt.Sprintf("%s-%d", cj.Name, at.Unix()/60),
			Namespace:       cj.Namespace,
			Labels:          t.Labels,
			Annotations:     ann,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(cj, batchv1.SchemeGroupVersion.WithKind("CronJob"))},
		},
		Spec: *t.Spec.DeepCopy(),
	}
}

func ref(j *batchv1.Job) corev1.ObjectReference {
	return corev1.ObjectReference{Kind: "Job", Namespace: j.Namespace, Name: j.Name, UID: j.UID, APIVersion: "batch/v1", ResourceVersion: j.ResourceVersion}
}

func refs(jobs []*batchv1.Job) []corev1.ObjectReference {
	var out []corev1.ObjectReference
	sorted := slices.Clone(jobs)
	slices.SortFunc(sorted, func(a, b *batchv1.Job) int { return a.CreationTimestamp.Compare(b.CreationTimestamp.Time) })
	for _, j := range sorted {
		out = append(out, ref(j))
	}
	return out
}

func (c *Controller) writeStatus(ctx context.Context, cj *batchv1.CronJob, st batchv1.CronJobStatus) error {
	// Active references are compared without their resourceVersion, which
	// changes with every Job status update.
	norm := func(s batchv1.CronJobStatus) batchv1.CronJobStatus {
		s = *s.DeepCopy()
		for i := range s.Active {
			s.Active[i].ResourceVersion = ""
		}
		if len(s.Active) == 0 {
			s.Active = nil
		}
		return s
	}
	if apiequality.Semantic.DeepEqual(norm(st), norm(cj.Status)) {
		return nil
	}
	upd := cj.DeepCopy()
	upd.Status = st
	_, err := c.client.BatchV1().CronJobs(cj.Namespace).UpdateStatus(ctx, upd, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// prune deletes the oldest finished Jobs beyond limit.
func (c *Controller) prune(ctx context.Context, cj *batchv1.CronJob, jobs []*batchv1.Job, limit int32) error {
	if len(jobs) <= int(limit) {
		return nil
	}
	sorted := slices.Clone(jobs)
	slices.SortFunc(sorted, func(a, b *batchv1.Job) int { return a.CreationTimestamp.Compare(b.CreationTimestamp.Time) })
	for _, j := range sorted[:len(sorted)-int(limit)] {
		err := c.client.BatchV1().Jobs(j.Namespace).Delete(ctx, j.Name, metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		c.recorder.Eventf(cj, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted job %s", j.Name)
	}
	return nil
}
