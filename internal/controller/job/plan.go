package job

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// trackingFinalizer keeps a finished pod until its result is counted.
const trackingFinalizer = batchv1.JobTrackingFinalizer

// maxBackoff caps the delay before replacing failed pods.
const maxBackoff = 6 * time.Minute

func finished(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

// done: the pod's outcome is settled: it finished, or it is being deleted
// (a deleted pod that did not succeed counts as failed, as upstream).
func done(p *corev1.Pod) bool { return finished(p) || p.DeletionTimestamp != nil }

func active(p *corev1.Pod) bool { return !done(p) }

func indexed(j *batchv1.Job) bool {
	return j.Spec.CompletionMode != nil && *j.Spec.CompletionMode == batchv1.IndexedCompletion
}

// podIndex reads a pod's completion index (-1 if none).
func podIndex(p *corev1.Pod) int {
	v, ok := p.Annotations[batchv1.JobCompletionIndexAnnotation]
	if !ok {
		return -1
	}
	i, err := strconv.Atoi(v)
	if err != nil {
		return -1
	}
	return i
}

// parseIndexes reads a completedIndexes string ("1,3-5,7").
func parseIndexes(s string) map[int]bool {
	out := map[int]bool{}
	for _, part := range strings.Split(s, ",") {
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err1 := strconv.Atoi(lo)
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil {
			continue
		}
		for i := a; i <= b; i++ {
			out[i] = true
		}
	}
	return out
}

// formatIndexes writes indexes as upstream's compressed interval list.
func formatIndexes(set map[int]bool) string {
	var idx []int
	for i := range set {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	var parts []string
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && idx[j+1] == idx[j]+1 {
			j++
		}
		if j == i {
			parts = append(parts, strconv.Itoa(idx[i]))
		} else {
			parts = append(parts, strconv.Itoa(idx[i])+"-"+strconv.Itoa(idx[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

// wantActive is how many pods should run now, and for an Indexed Job which
// indexes still need a pod.
func wantActive(j *batchv1.Job, succeeded int32, completed map[int]bool, running []*corev1.Pod) (int32, []int) {
	par := ptr.Deref(j.Spec.Parallelism, 1)
	if !indexed(j) {
		if j.Spec.Completions == nil {
			if succeeded > 0 {
				return 0, nil
			}
			return par, nil
		}
		return max(min(par, *j.Spec.Completions-succeeded), 0), nil
	}
	n := int(ptr.Deref(j.Spec.Completions, 0))
	busy := map[int]bool{}
	for _, p := range running {
		busy[podIndex(p)] = true
	}
	var pending []int
	for i := 0; i < n; i++ {
		if !completed[i] && !busy[i] {
			pending = append(pending, i)
		}
	}
	return max(min(par, int32(n-len(completed))), 0), pending
}

// succeededAll: the Job's success criterion holds.
func succeededAll(j *batchv1.Job, succeeded int32, completed map[int]bool, running int) bool {
	switch {
	case indexed(j):
		return len(completed) >= int(ptr.Deref(j.Spec.Completions, 0))
	case j.Spec.Completions == nil:
		return succeeded > 0 && running == 0
	}
	return succeeded >= *j.Spec.Completions
}

// backoff is the delay before replacing pods after failed failures, doubling
// from base and capped.
func backoff(base time.Duration, failed int32) time.Duration {
	if failed <= 0 {
		return 0
	}
	d := base
	for i := int32(1); i < failed && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}

// newPod builds a pod for j (for index i when Indexed, else i < 0).
func newPod(j *batchv1.Job, i int) *corev1.Pod {
	t := j.Spec.Template.DeepCopy()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName:    j.Name + "-",
			Namespace:       j.Namespace,
			Labels:          t.Labels,
			Annotations:     t.Annotations,
			Finalizers:      append(t.Finalizers, trackingFinalizer),
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(j, batchv1.SchemeGroupVersion.WithKind("Job"))},
		},
		Spec: t.Spec,
	}
	if i >= 0 {
		idx := strconv.Itoa(i)
		p.GenerateName = j.Name + "-" + idx + "-"
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		if p.Labels == nil {
			p.Labels = map[string]string{}
		}
		p.Annotations[batchv1.JobCompletionIndexAnnotation] = idx
		p.Labels[batchv1.JobCompletionIndexAnnotation] = idx
		if p.Spec.Hostname == "" {
			p.Spec.Hostname = j.Name + "-" + idx
		}
		env := corev1.EnvVar{Name: "JOB_COMPLETION_INDEX", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations['" + batchv1.JobCompletionIndexAnnotation + "']"}}}
		for k := range p.Spec.Containers {
			p.Spec.Containers[k].Env = append(p.Spec.Containers[k].Env, env)
		}
		for k := range p.Spec.InitContainers {
			p.Spec.InitContainers[k].Env = append(p.Spec.InitContainers[k].Env, env)
		}
	}
	return p
}

// setCondition sets a Job condition, keeping times when nothing changes.
func setCondition(st *batchv1.JobStatus, t batchv1.JobConditionType, s corev1.ConditionStatus, reason, msg string, now time.Time) {
	ts := metav1.NewTime(now)
	for i := range st.Conditions {
		c := &st.Conditions[i]
		if c.Type != t {
			continue
		}
		if c.Status == s && c.Reason == reason && c.Message == msg {
			return
		}
		if c.Status != s {
			c.LastTransitionTime = ts
		}
		c.Status, c.Reason, c.Message, c.LastProbeTime = s, reason, msg, ts
		return
	}
	st.Conditions = append(st.Conditions, batchv1.JobCondition{Type: t, Status: s, Reason: reason, Message: msg, LastProbeTime: ts, LastTransitionTime: ts})
}

func hasCondition(st *batchv1.JobStatus, t batchv1.JobConditionType) bool {
	return slices.ContainsFunc(st.Conditions, func(c batchv1.JobCondition) bool { return c.Type == t && c.Status == corev1.ConditionTrue })
}

// finishedJob: Complete or Failed.
func finishedJob(st *batchv1.JobStatus) bool {
	return hasCondition(st, batchv1.JobComplete) || hasCondition(st, batchv1.JobFailed)
}

// failureVerdict is what the Job's podFailurePolicy says of one failed pod.
type failureVerdict struct {
	action batchv1.PodFailurePolicyAction
	// message explains a FailJob verdict, in upstream's words.
	message string
}

// podFailureAction applies the Job's podFailurePolicy to a failed pod: the
// first rule that matches decides (FailJob, Ignore, Count, FailIndex); no
// policy or no match counts the failure, as upstream.
func podFailureAction(j *batchv1.Job, p *corev1.Pod) failureVerdict {
	pol := j.Spec.PodFailurePolicy
	if pol == nil {
		return failureVerdict{action: batchv1.PodFailurePolicyActionCount}
	}
	for i, rule := range pol.Rules {
		if req := rule.OnExitCodes; req != nil {
			if name, code, ok := matchExitCodes(p, req); ok {
				return failureVerdict{action: rule.Action, message: fmt.Sprintf("Container %s for pod %s/%s failed with exit code %d matching %s rule at index %d", name, p.Namespace, p.Name, code, rule.Action, i)}
			}
			continue
		}
		for _, pat := range rule.OnPodConditions {
			want := pat.Status
			if want == "" {
				want = corev1.ConditionTrue
			}
			for _, c := range p.Status.Conditions {
				if c.Type == pat.Type && c.Status == want {
					return failureVerdict{action: rule.Action, message: fmt.Sprintf("Pod %s/%s has condition %s matching %s rule at index %d", p.Namespace, p.Name, c.Type, rule.Action, i)}
				}
			}
		}
	}
	return failureVerdict{action: batchv1.PodFailurePolicyActionCount}
}

// matchExitCodes finds a terminated container (init or app, optionally the
// named one) whose non-zero exit code the requirement matches.
func matchExitCodes(p *corev1.Pod, req *batchv1.PodFailurePolicyOnExitCodesRequirement) (string, int32, bool) {
	for _, cs := range slices.Concat(p.Status.InitContainerStatuses, p.Status.ContainerStatuses) {
		t := cs.State.Terminated
		if t == nil || t.ExitCode == 0 || (req.ContainerName != nil && *req.ContainerName != cs.Name) {
			continue
		}
		in := slices.Contains(req.Values, t.ExitCode)
		if (req.Operator == batchv1.PodFailurePolicyOnExitCodesOpIn) == in {
			return cs.Name, t.ExitCode, true
		}
	}
	return "", 0, false
}

// successPolicyMet says which rule of an Indexed Job's successPolicy its
// completed indexes satisfy, if any: a rule holds when all its
// succeededIndexes completed, or succeededCount of them (of all indexes
// without a set).
func successPolicyMet(j *batchv1.Job, completed map[int]bool) (int, bool) {
	if j.Spec.SuccessPolicy == nil || !indexed(j) {
		return 0, false
	}
	for r, rule := range j.Spec.SuccessPolicy.Rules {
		var done, of int
		if rule.SucceededIndexes != nil {
			set := parseIndexes(*rule.SucceededIndexes)
			of = len(set)
			for i := range set {
				if completed[i] {
					done++
				}
			}
		} else {
			done = len(completed)
		}
		switch {
		case rule.SucceededCount != nil && int32(done) >= *rule.SucceededCount:
			return r, true
		case rule.SucceededCount == nil && rule.SucceededIndexes != nil && of > 0 && done == of:
			return r, true
		}
	}
	return 0, false
}

// annIndexFailureCount on an Indexed Job's pod counts the earlier failures
// of its index (upstream's name).
const annIndexFailureCount = "batch.kubernetes.io/job-index-failure-count"

func perIndex(j *batchv1.Job) bool { return indexed(j) && j.Spec.BackoffLimitPerIndex != nil }

// indexFailures is how many failures of its index a pod's creation had
// seen.
func indexFailures(p *corev1.Pod) int32 {
	n, err := strconv.ParseInt(p.Annotations[annIndexFailureCount], 10, 32)
	if err != nil || n < 0 {
		return 0
	}
	return int32(n)
}

// failureCounts is, per index, how many counted failures its pods have had:
// one more than the count the newest failed pod was created with. Failures
// the podFailurePolicy ignores do not count.
func failureCounts(j *batchv1.Job, pods []*corev1.Pod) map[int]int32 {
	out := map[int]int32{}
	for _, p := range pods {
		i := podIndex(p)
		if i < 0 || p.Status.Phase != corev1.PodFailed || podFailureAction(j, p).action == batchv1.PodFailurePolicyActionIgnore {
			continue
		}
		out[i] = max(out[i], indexFailures(p)+1)
	}
	return out
}

// indexFailed says whether a counted failure of pod p fails its index: the
// podFailurePolicy said FailIndex, or the index used up backoffLimitPerIndex.
func indexFailed(j *batchv1.Job, p *corev1.Pod, action batchv1.PodFailurePolicyAction) bool {
	if !perIndex(j) || podIndex(p) < 0 {
		return false
	}
	return action == batchv1.PodFailurePolicyActionFailIndex || indexFailures(p)+1 > *j.Spec.BackoffLimitPerIndex
}

// observed is what one sync of a Job that is neither finished nor being
// deleted decides from.
type observed struct {
	job *batchv1.Job
	// status is the Job's status with the settled pods already counted.
	status batchv1.JobStatus
	// running are the Job's pods that are neither finished nor deleted.
	running []*corev1.Pod
	// completed are the succeeded indexes (Indexed Jobs).
	completed map[int]bool
	// policyFailure is why a FailJob rule of the podFailurePolicy matched
	// a newly failed pod ("": none did).
	policyFailure string
	// indexFailures counts failures per index (backoffLimitPerIndex).
	indexFailures map[int]int32
	// lastFailure is when a pod last failed; backoff is the first delay
	// before a failed pod is replaced.
	lastFailure time.Time
	backoff     time.Duration
	// pending is how long until the controller gives up waiting to see
	// its own earlier creates and deletes (0: all seen).
	pending time.Duration
	now     time.Time
}

// event is an event to record on the Job.
type event struct{ kind, reason, message string }

// jobPlan is what one sync decides, as data.
type jobPlan struct {
	// status is the Job's next status: conditions, start and completion.
	status batchv1.JobStatus
	// delete are pods to stop: all of them when the Job finishes or is
	// suspended, the newest when more run than wanted.
	delete []*corev1.Pod
	// create are new pods toward the wanted parallelism.
	create []*corev1.Pod
	events []event
	// requeue is when to look again (the deadline, a back-off, or the
	// expiry of unseen writes); 0: on the next change.
	requeue time.Duration
}

// decide plans a sync: the Job finishes (success policy, completions,
// pod failure policy, backoff limit, failed indexes, deadline), is
// suspended or resumed, or gets pods created or deleted toward its
// parallelism, with exponential back-off after failures.
func decide(o observed) jobPlan {
	j, now := o.job, o.now
	p := jobPlan{status: *o.status.DeepCopy()}
	st := &p.status
	failedIdx := parseIndexes(ptr.Deref(st.FailedIndexes, ""))
	// Indexes that need no more pods: succeeded, or failed for good.
	settled := map[int]bool{}
	for i := range o.completed {
		settled[i] = true
	}
	for i := range failedIdx {
		settled[i] = true
	}
	finish := func(failed bool, reason, msg string) jobPlan {
		p.delete = o.running
		switch {
		case failed:
			setCondition(st, batchv1.JobFailureTarget, corev1.ConditionTrue, reason, msg, now)
			setCondition(st, batchv1.JobFailed, corev1.ConditionTrue, reason, msg, now)
			p.events = append(p.events, event{corev1.EventTypeWarning, reason, msg})
			return p
		case reason == "":
			reason, msg = "CompletionsReached", "Reached expected number of succeeded pods"
		}
		setCondition(st, batchv1.JobSuccessCriteriaMet, corev1.ConditionTrue, reason, msg, now)
		setCondition(st, batchv1.JobComplete, corev1.ConditionTrue, reason, msg, now)
		st.CompletionTime = ptr.To(metav1.NewTime(now))
		p.events = append(p.events, event{corev1.EventTypeNormal, "Completed", "Job completed"})
		return p
	}
	rule, successful := successPolicyMet(j, o.completed)
	switch {
	case o.policyFailure != "":
		return finish(true, "PodFailurePolicy", o.policyFailure)
	case successful:
		return finish(false, "SuccessPolicy", fmt.Sprintf("Matched rules at index %d", rule))
	case perIndex(j) && j.Spec.MaxFailedIndexes != nil && int32(len(failedIdx)) > *j.Spec.MaxFailedIndexes:
		return finish(true, "MaxFailedIndexesExceeded", "Job has exceeded the specified maximal number of failed indexes")
	case perIndex(j) && len(failedIdx) > 0 && len(settled) >= int(ptr.Deref(j.Spec.Completions, 0)) && len(o.running) == 0:
		return finish(true, "FailedIndexes", "Job has failed indexes")
	case succeededAll(j, st.Succeeded, o.completed, len(o.running)):
		return finish(false, "", "")
	case st.Failed > ptr.Deref(j.Spec.BackoffLimit, 6):
		return finish(true, "BackoffLimitExceeded", "Job has reached the specified backoff limit")
	case j.Spec.ActiveDeadlineSeconds != nil && st.StartTime != nil && !now.Before(st.StartTime.Add(time.Duration(*j.Spec.ActiveDeadlineSeconds)*time.Second)):
		return finish(true, "DeadlineExceeded", "Job was active longer than specified deadline")
	}

	if ptr.Deref(j.Spec.Suspend, false) {
		p.delete = o.running
		if !hasCondition(st, batchv1.JobSuspended) {
			setCondition(st, batchv1.JobSuspended, corev1.ConditionTrue, "JobSuspended", "Job suspended", now)
			p.events = append(p.events, event{corev1.EventTypeNormal, "Suspended", "Job suspended"})
		}
		st.StartTime = nil
		return p
	}
	if hasCondition(st, batchv1.JobSuspended) {
		setCondition(st, batchv1.JobSuspended, corev1.ConditionFalse, "JobResumed", "Job resumed", now)
		p.events = append(p.events, event{corev1.EventTypeNormal, "Resumed", "Job resumed"})
		st.StartTime = nil
	}
	if st.StartTime == nil {
		st.StartTime = ptr.To(metav1.NewTime(now))
	}
	if j.Spec.ActiveDeadlineSeconds != nil {
		p.requeue = st.StartTime.Add(time.Duration(*j.Spec.ActiveDeadlineSeconds)*time.Second).Sub(now) + 10*time.Millisecond
	}
	if o.pending > 0 {
		if p.requeue <= 0 {
			p.requeue = o.pending
		} else {
			p.requeue = min(p.requeue, o.pending)
		}
		return p
	}

	want, pendingIdx := wantActive(j, st.Succeeded, settled, o.running)
	have := int32(len(o.running))
	switch {
	case have > want:
		victims := slices.Clone(o.running)
		slices.SortFunc(victims, func(a, b *corev1.Pod) int { return b.CreationTimestamp.Compare(a.CreationTimestamp.Time) })
		p.delete = victims[:have-want]
		return p
	case have == want:
		return p
	}
	if d := backoff(o.backoff, st.Failed); st.Failed > 0 && now.Before(o.lastFailure.Add(d)) {
		if wait := o.lastFailure.Add(d).Sub(now); p.requeue == 0 || wait < p.requeue {
			p.requeue = wait
		}
		return p
	}
	n := int(want - have)
	indexes := make([]int, n)
	for k := range indexes {
		indexes[k] = -1
	}
	if indexed(j) {
		indexes = pendingIdx[:min(n, len(pendingIdx))]
	}
	for _, idx := range indexes {
		pod := newPod(j, idx)
		if perIndex(j) {
			pod.Annotations[annIndexFailureCount] = strconv.Itoa(int(o.indexFailures[idx]))
		}
		p.create = append(p.create, pod)
	}
	return p
}
