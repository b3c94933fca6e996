package job

import (
	"slices"
	"strconv"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestIndexesRoundTrip(t *testing.T) {
	for in, want := range map[string]string{"": "", "0": "0", "0,1,2": "0-2", "1,3-5,7": "1,3-5,7", "5,4,3,9": "3-5,9"} {
		if got := formatIndexes(parseIndexes(in)); got != want {
			t.Errorf("%q → %q, want %q", in, got, want)
		}
	}
}

func TestWantActive(t *testing.T) {
	job := func(completions *int32, parallelism int32, idx bool) *batchv1.Job {
		j := &batchv1.Job{Spec: batchv1.JobSpec{Completions: completions, Parallelism: ptr.To(parallelism)}}
		if idx {
			j.Spec.CompletionMode = ptr.To(batchv1.IndexedCompletion)
		}
		return j
	}
	running := func(indexes ...string) []*corev1.Pod {
		var out []*corev1.Pod
		for _, i := range indexes {
			out = append(out, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{batchv1.JobCompletionIndexAnnotation: i}}})
		}
		return out
	}
	if n, _ := wantActive(job(ptr.To[int32](5), 2, false), 4, nil, nil); n != 1 {
		t.Errorf("1 completion left, parallelism 2: want %d", n)
	}
	if n, _ := wantActive(job(nil, 3, false), 0, nil, nil); n != 3 {
		t.Errorf("work queue before any success: want %d", n)
	}
	if n, _ := wantActive(job(nil, 3, false), 1, nil, nil); n != 0 {
		t.Errorf("work queue after a success: want %d", n)
	}
	n, pending := wantActive(job(ptr.To[int32](4), 2, true), 1, map[int]bool{0: true}, running("2"))
	if n != 2 || len(pending) != 2 || pending[0] != 1 || pending[1] != 3 {
		t.Errorf("indexed: want %d pending %v", n, pending)
	}
}

func TestSucceededAll(t *testing.T) {
	nonIndexed := &batchv1.Job{Spec: batchv1.JobSpec{Completions: ptr.To[int32](2)}}
	if succeededAll(nonIndexed, 1, nil, 0) || !succeededAll(nonIndexed, 2, nil, 1) {
		t.Error("NonIndexed completions")
	}
	workQueue := &batchv1.Job{}
	if succeededAll(workQueue, 1, nil, 1) || !succeededAll(workQueue, 1, nil, 0) {
		t.Error("a work queue completes when one pod succeeded and none runs")
	}
	idx := &batchv1.Job{Spec: batchv1.JobSpec{Completions: ptr.To[int32](2), CompletionMode: ptr.To(batchv1.IndexedCompletion)}}
	if succeededAll(idx, 2, map[int]bool{0: true}, 0) || !succeededAll(idx, 2, map[int]bool{0: true, 1: true}, 0) {
		t.Error("Indexed completes on every index, not on a count")
	}
}

func TestBackoff(t *testing.T) {
	for failed, want := range map[int32]time.Duration{0: 0, 1: 10 * time.Second, 2: 20 * time.Second, 4: 80 * time.Second, 20: maxBackoff} {
		if got := backoff(10*time.Second, failed); got != want {
			t.Errorf("after %d failures: %s, want %s", failed, got, want)
		}
	}
}

func TestIndexedPod(t *testing.T) {
	j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "w", Namespace: "ns", UID: "u"},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}}}}}
	p := newPod(j, 3)
	if p.GenerateName != "w-3-" || p.Spec.Hostname != "w-3" || p.Annotations[batchv1.JobCompletionIndexAnnotation] != "3" ||
		p.Finalizers[0] != trackingFinalizer || p.Spec.Containers[0].Env[0].Name != "JOB_COMPLETION_INDEX" || !metav1.IsControlledBy(p, j) {
		t.Errorf("indexed pod %+v", p)
	}
}

func TestPodFailureAction(t *testing.T) {
	failed := func(init, app int32, conds ...corev1.PodCondition) *corev1.Pod {
		term := func(name string, code int32) corev1.ContainerStatus {
			return corev1.ContainerStatus{Name: name, State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code}}}
		}
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}, Status: corev1.PodStatus{Phase: corev1.PodFailed, Conditions: conds,
			InitContainerStatuses: []corev1.ContainerStatus{term("setup", init)}, ContainerStatuses: []corev1.ContainerStatus{term("main", app)}}}
	}
	job := &batchv1.Job{Spec: batchv1.JobSpec{PodFailurePolicy: &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{
		{Action: batchv1.PodFailurePolicyActionIgnore, OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{{Type: corev1.DisruptionTarget}}},
		{Action: batchv1.PodFailurePolicyActionFailJob, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{ContainerName: ptr.To("main"), Operator: batchv1.PodFailurePolicyOnExitCodesOpIn, Values: []int32{42}}},
		{Action: batchv1.PodFailurePolicyActionIgnore, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{Operator: batchv1.PodFailurePolicyOnExitCodesOpNotIn, Values: []int32{1, 2}}},
	}}}}
	disrupted := corev1.PodCondition{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue}
	cases := []struct {
		name string
		pod  *corev1.Pod
		want batchv1.PodFailurePolicyAction
		msg  string
	}{
		{"a disruption is ignored", failed(0, 1, disrupted), batchv1.PodFailurePolicyActionIgnore, "Pod ns/p has condition DisruptionTarget matching Ignore rule at index 0"},
		{"exit 42 of main fails the Job", failed(0, 42), batchv1.PodFailurePolicyActionFailJob, "Container main for pod ns/p failed with exit code 42 matching FailJob rule at index 1"},
		{"exit 42 of another container does not", failed(42, 1), batchv1.PodFailurePolicyActionIgnore, "Container setup for pod ns/p failed with exit code 42 matching Ignore rule at index 2"},
		{"NotIn matches codes outside the set", failed(0, 7), batchv1.PodFailurePolicyActionIgnore, "Container main for pod ns/p failed with exit code 7 matching Ignore rule at index 2"},
		{"no rule matches: counted", failed(0, 1), batchv1.PodFailurePolicyActionCount, ""},
	}
	for _, c := range cases {
		got := podFailureAction(job, c.pod)
		if got.action != c.want || got.message != c.msg {
			t.Errorf("%s: %s %q, want %s %q", c.name, got.action, got.message, c.want, c.msg)
		}
	}
	if got := podFailureAction(&batchv1.Job{}, failed(0, 42)); got.action != batchv1.PodFailurePolicyActionCount {
		t.Errorf("no policy: %s", got.action)
	}
}

func TestSuccessPolicyMet(t *testing.T) {
	job := func(rules ...batchv1.SuccessPolicyRule) *batchv1.Job {
		return &batchv1.Job{Spec: batchv1.JobSpec{CompletionMode: ptr.To(batchv1.IndexedCompletion), Completions: ptr.To[int32](5), SuccessPolicy: &batchv1.SuccessPolicy{Rules: rules}}}
	}
	leader := batchv1.SuccessPolicyRule{SucceededIndexes: ptr.To("0")}
	twoOfWorkers := batchv1.SuccessPolicyRule{SucceededIndexes: ptr.To("1-4"), SucceededCount: ptr.To[int32](2)}
	anyThree := batchv1.SuccessPolicyRule{SucceededCount: ptr.To[int32](3)}
	set := func(is ...int) map[int]bool {
		m := map[int]bool{}
		for _, i := range is {
			m[i] = true
		}
		return m
	}
	cases := []struct {
		name      string
		job       *batchv1.Job
		completed map[int]bool
		rule      int
		ok        bool
	}{
		{"leader done", job(leader), set(0), 0, true},
		{"leader not done", job(leader), set(1, 2, 3), 0, false},
		{"two workers of the set", job(leader, twoOfWorkers), set(2, 4), 1, true},
		{"one worker and index 0 is not two workers", job(twoOfWorkers), set(0, 3), 0, false},
		{"any three", job(anyThree), set(0, 2, 4), 0, true},
	}
	for _, c := range cases {
		rule, ok := successPolicyMet(c.job, c.completed)
		if ok != c.ok || (ok && rule != c.rule) {
			t.Errorf("%s: rule %d %v, want %d %v", c.name, rule, ok, c.rule, c.ok)
		}
	}
	nonIndexed := job(anyThree)
	nonIndexed.Spec.CompletionMode = nil
	if _, ok := successPolicyMet(nonIndexed, set(0, 1, 2)); ok {
		t.Error("a NonIndexed Job met a success policy")
	}
}

func TestPerIndexFailures(t *testing.T) {
	job := &batchv1.Job{Spec: batchv1.JobSpec{CompletionMode: ptr.To(batchv1.IndexedCompletion), Completions: ptr.To[int32](3), BackoffLimitPerIndex: ptr.To[int32](1),
		PodFailurePolicy: &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{
			{Action: batchv1.PodFailurePolicyActionIgnore, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{Operator: batchv1.PodFailurePolicyOnExitCodesOpIn, Values: []int32{3}}},
			{Action: batchv1.PodFailurePolicyActionFailIndex, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{Operator: batchv1.PodFailurePolicyOnExitCodesOpIn, Values: []int32{9}}},
		}}}}
	pod := func(index, seen int, code int32) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{
			batchv1.JobCompletionIndexAnnotation: strconv.Itoa(index), annIndexFailureCount: strconv.Itoa(seen)}},
			Status: corev1.PodStatus{Phase: corev1.PodFailed, ContainerStatuses: []corev1.ContainerStatus{{Name: "main",
				State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code}}}}}}
	}
	counts := failureCounts(job, []*corev1.Pod{pod(0, 0, 1), pod(0, 1, 1), pod(1, 0, 3), pod(2, 0, 1)})
	if counts[0] != 2 || counts[1] != 0 || counts[2] != 1 {
		t.Errorf("failure counts %v, want index 0: 2, 1: 0 (ignored), 2: 1", counts)
	}
	cases := []struct {
		name   string
		pod    *corev1.Pod
		action batchv1.PodFailurePolicyAction
		failed bool
	}{
		{"first failure: retried", pod(0, 0, 1), batchv1.PodFailurePolicyActionCount, false},
		{"second failure uses up the limit of 1", pod(0, 1, 1), batchv1.PodFailurePolicyActionCount, true},
		{"FailIndex fails it at once", pod(2, 0, 9), batchv1.PodFailurePolicyActionFailIndex, true},
	}
	for _, c := range cases {
		if got := indexFailed(job, c.pod, podFailureAction(job, c.pod).action); got != c.failed || podFailureAction(job, c.pod).action != c.action {
			t.Errorf("%s: failed %v (action %s)", c.name, got, podFailureAction(job, c.pod).action)
		}
	}
	plain := job.DeepCopy()
	plain.Spec.BackoffLimitPerIndex = nil
	if indexFailed(plain, pod(0, 5, 1), batchv1.PodFailurePolicyActionCount) {
		t.Error("an index failed without backoffLimitPerIndex")
	}
}

// TestDecide is the Job's contract for one sync of a Job that runs.
func TestDecide(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	started := metav1.NewTime(now.Add(-time.Minute))
	job := func(f func(*batchv1.Job)) *batchv1.Job {
		j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "j", Namespace: "ns", UID: "u"}, Spec: batchv1.JobSpec{
			Completions: ptr.To[int32](3), Parallelism: ptr.To[int32](2), BackoffLimit: ptr.To[int32](2),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}},
		}}
		if f != nil {
			f(j)
		}
		return j
	}
	running := func(names ...string) []*corev1.Pod {
		var out []*corev1.Pod
		for i, n := range names {
			out = append(out, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: n, CreationTimestamp: metav1.NewTime(now.Add(time.Duration(i) * time.Second))}})
		}
		return out
	}
	status := func(succeeded, failed int32) batchv1.JobStatus {
		return batchv1.JobStatus{Succeeded: succeeded, Failed: failed, StartTime: &started}
	}
	suspendedStatus := batchv1.JobStatus{Conditions: []batchv1.JobCondition{{Type: batchv1.JobSuspended, Status: corev1.ConditionTrue}}}
	cases := []struct {
		name string
		in   observed
		// what the plan must hold
		condition  batchv1.JobConditionType
		reason     string
		deletes    []string
		creates    int
		createIdx  []string
		requeue    time.Duration
		noStart    bool
		eventNames []string
	}{
		{name: "fewer pods than parallelism: create up to it",
			in: observed{job: job(nil), status: status(0, 0), running: running("a")}, creates: 1},
		{name: "parallelism capped by completions left",
			in: observed{job: job(nil), status: status(2, 0)}, creates: 1},
		{name: "indexed: pods for the indexes still pending",
			in:      observed{job: job(func(j *batchv1.Job) { j.Spec.CompletionMode = ptr.To(batchv1.IndexedCompletion) }), status: status(1, 0), completed: map[int]bool{0: true}},
			creates: 2, createIdx: []string{"1", "2"}},
		{name: "more pods than wanted: the newest go",
			in: observed{job: job(nil), status: status(2, 0), running: running("old", "mid", "new")}, deletes: []string{"new", "mid"}},
		{name: "completions reached: complete, stop what runs",
			in: observed{job: job(nil), status: status(3, 0), running: running("straggler")}, condition: batchv1.JobComplete, reason: "CompletionsReached", deletes: []string{"straggler"}, eventNames: []string{"Completed"}},
		{name: "backoff limit exceeded: failed",
			in: observed{job: job(nil), status: status(0, 3), running: running("a")}, condition: batchv1.JobFailed, reason: "BackoffLimitExceeded", deletes: []string{"a"}, eventNames: []string{"BackoffLimitExceeded"}},
		{name: "a FailJob rule matched: failed by the pod failure policy",
			in: observed{job: job(nil), status: status(0, 1), policyFailure: "Container c exited with 42"}, condition: batchv1.JobFailed, reason: "PodFailurePolicy", eventNames: []string{"PodFailurePolicy"}},
		{name: "past the active deadline: failed",
			in:        observed{job: job(func(j *batchv1.Job) { j.Spec.ActiveDeadlineSeconds = ptr.To[int64](30) }), status: status(0, 0), running: running("a")},
			condition: batchv1.JobFailed, reason: "DeadlineExceeded", deletes: []string{"a"}, eventNames: []string{"DeadlineExceeded"}},
		{name: "before the deadline: look again when it comes",
			in:      observed{job: job(func(j *batchv1.Job) { j.Spec.ActiveDeadlineSeconds = ptr.To[int64](90) }), status: status(0, 0), running: running("a", "b")},
			requeue: 30*time.Second + 10*time.Millisecond},
		{name: "suspended: pods stop, the start time goes",
			in:        observed{job: job(func(j *batchv1.Job) { j.Spec.Suspend = ptr.To(true) }), status: status(0, 0), running: running("a")},
			condition: batchv1.JobSuspended, reason: "JobSuspended", deletes: []string{"a"}, noStart: true, eventNames: []string{"Suspended"}},
		{name: "resumed: the condition turns false and pods start",
			in: observed{job: job(nil), status: suspendedStatus}, condition: batchv1.JobSuspended, reason: "JobResumed", creates: 2, eventNames: []string{"Resumed"}},
		{name: "a recent failure: wait out the back-off before replacing",
			in: observed{job: job(nil), status: status(0, 1), lastFailure: now.Add(-4 * time.Second), backoff: 10 * time.Second}, requeue: 6 * time.Second},
		{name: "earlier writes not yet seen: wait for them",
			in: observed{job: job(nil), status: status(0, 0), pending: 2 * time.Second}, requeue: 2 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.now = now
			p := decide(tc.in)
			var deleted, events, idx []string
			for _, d := range p.delete {
				deleted = append(deleted, d.Name)
			}
			for _, e := range p.events {
				events = append(events, e.reason)
			}
			for _, c := range p.create {
				if i, ok := c.Annotations[batchv1.JobCompletionIndexAnnotation]; ok {
					idx = append(idx, i)
				}
			}
			if !slices.Equal(deleted, tc.deletes) || len(p.create) != tc.creates || !slices.Equal(idx, tc.createIdx) || p.requeue != tc.requeue || !slices.Equal(events, tc.eventNames) {
				t.Errorf("plan: delete %v create %d (indexes %v) requeue %s events %v\nwant: delete %v create %d (indexes %v) requeue %s events %v",
					deleted, len(p.create), idx, p.requeue, events, tc.deletes, tc.creates, tc.createIdx, tc.requeue, tc.eventNames)
			}
			if tc.condition != "" {
				c := condition(&p.status, tc.condition)
				if c == nil || c.Reason != tc.reason {
					t.Errorf("condition %s: %+v, want reason %s", tc.condition, c, tc.reason)
				}
			}
			if (p.status.StartTime == nil) != tc.noStart {
				t.Errorf("start time %v, want it unset: %v", p.status.StartTime, tc.noStart)
			}
		})
	}
}

func condition(st *batchv1.JobStatus, t batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			return &st.Conditions[i]
		}
	}
	return nil
}
