package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/test/poll"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// jobNode plays the kubelet for Job pods: each pod ends as its Job's
// "outcome" label says: succeed, fail, fail-once (the Job's first pod fails,
// later ones succeed) or hang (runs forever).
func jobNode(ctx context.Context, t *testing.T, cs *kubernetes.Clientset) {
	var mu sync.Mutex
	failedOnce := map[string]bool{}
	for ctx.Err() == nil {
		l, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "outcome"})
		if err == nil {
			for _, p := range l.Items {
				if p.Status.Phase != "" && p.Status.Phase != corev1.PodPending || p.DeletionTimestamp != nil {
					continue
				}
				job := p.Labels[batchv1.JobNameLabel]
				phase := corev1.PodSucceeded
				firstFailure := false
				switch p.Labels["outcome"] {
				case "fail":
					phase = corev1.PodFailed
				case "hang":
					phase = corev1.PodRunning
				case "fail-once":
					mu.Lock()
					if !failedOnce[job] {
						firstFailure, phase = true, corev1.PodFailed
					}
					mu.Unlock()
				}
				p.Status.Phase = phase
				// An update can lose a race (the scheduler writes the pod's
				// conditions too): the failure counts only once written.
				if _, err := cs.CoreV1().Pods("default").UpdateStatus(ctx, &p, metav1.UpdateOptions{}); err == nil && firstFailure {
					mu.Lock()
					failedOnce[job] = true
					mu.Unlock()
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func testJob(name, outcome string, completions, parallelism int32) *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: batchv1.JobSpec{
			Completions: ptr.To(completions), Parallelism: ptr.To(parallelism),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"outcome": outcome}},
				Spec:       corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
			},
		},
	}
}

// TestJobController runs Jobs to completion and to failure: completions
// and parallelism, retries, backoffLimit, Indexed mode, activeDeadlineSeconds,
// suspend, and the tracking finalizer.
func TestJobController(t *testing.T) {
	s := startServer(t, "--job-pod-failure-backoff=100ms")
	cs := s.client()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go jobNode(ctx, t, cs)
	jobs := cs.BatchV1().Jobs("default")
	create := func(j *batchv1.Job) {
		t.Helper()
		if _, err := jobs.Create(ctx, j, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	condition := func(name string, want batchv1.JobConditionType) func() (bool, string) {
		return func() (bool, string) {
			j, err := jobs.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			for _, c := range j.Status.Conditions {
				if c.Type == want && c.Status == corev1.ConditionTrue {
					return true, ""
				}
			}
			return false, fmt.Sprintf("status %+v", j.Status)
		}
	}
	podsOf := func(name string) []corev1.Pod {
		l, _ := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: batchv1.JobNameLabel + "=" + name})
		return l.Items
	}

	t.Run("completions and parallelism", func(t *testing.T) {
		create(testJob("ok", "succeed", 3, 2))
		s.mustKubectl("wait", "job/ok", "--for=condition=complete", "--timeout=30s")
		j, _ := jobs.Get(ctx, "ok", metav1.GetOptions{})
		if j.Status.Succeeded != 3 || j.Status.Failed != 0 || j.Status.CompletionTime == nil || j.Status.Active != 0 {
			t.Errorf("status %+v", j.Status)
		}
		if ok, _ := condition("ok", batchv1.JobSuccessCriteriaMet)(); !ok {
			t.Error("no SuccessCriteriaMet condition")
		}
		poll.Eventually(t, settle, poll.State("tracking finalizers released", func() (bool, string) {
			for _, p := range podsOf("ok") {
				if slices.Contains(p.Finalizers, batchv1.JobTrackingFinalizer) {
					return false, p.Name + " keeps the finalizer"
				}
			}
			return len(podsOf("ok")) == 3, fmt.Sprintf("%d pods", len(podsOf("ok")))
		}))
	})

	t.Run("a failure retried", func(t *testing.T) {
		create(testJob("retry", "fail-once", 1, 1))
		poll.Eventually(t, settle, poll.State("complete after a retry", condition("retry", batchv1.JobComplete)))
		j, _ := jobs.Get(ctx, "retry", metav1.GetOptions{})
		if j.Status.Succeeded != 1 || j.Status.Failed != 1 {
			t.Errorf("status %+v", j.Status)
		}
	})

	t.Run("backoff limit", func(t *testing.T) {
		j := testJob("doomed", "fail", 1, 1)
		j.Spec.BackoffLimit = ptr.To[int32](2)
		create(j)
		poll.Eventually(t, settle, poll.State("failed at the backoff limit", condition("doomed", batchv1.JobFailed)))
		got, _ := jobs.Get(ctx, "doomed", metav1.GetOptions{})
		if got.Status.Failed != 3 || len(podsOf("doomed")) != 3 {
			t.Errorf("failed %d with %d pods, want 3 and 3", got.Status.Failed, len(podsOf("doomed")))
		}
		reason := s.mustKubectl("get", "job", "doomed", "-o", `jsonpath={.status.conditions[?(@.type=="Failed")].reason}`)
		if reason != "BackoffLimitExceeded" {
			t.Errorf("Failed reason %q", reason)
		}
	})

	t.Run("indexed", func(t *testing.T) {
		j := testJob("idx", "succeed", 3, 3)
		j.Spec.CompletionMode = ptr.To(batchv1.IndexedCompletion)
		create(j)
		poll.Eventually(t, settle, poll.State("indexed complete", condition("idx", batchv1.JobComplete)))
		got, _ := jobs.Get(ctx, "idx", metav1.GetOptions{})
		if got.Status.CompletedIndexes != "0-2" {
			t.Errorf("completedIndexes %q", got.Status.CompletedIndexes)
		}
		var seen []string
		for _, p := range podsOf("idx") {
			i := p.Annotations[batchv1.JobCompletionIndexAnnotation]
			seen = append(seen, i)
			if p.Spec.Hostname != "idx-"+i || !strings.HasPrefix(p.Name, "idx-"+i+"-") {
				t.Errorf("pod %s hostname %q for index %s", p.Name, p.Spec.Hostname, i)
			}
			env := p.Spec.Containers[0].Env
			if len(env) != 1 || env[0].Name != "JOB_COMPLETION_INDEX" {
				t.Errorf("pod %s env %+v", p.Name, env)
			}
		}
		slices.Sort(seen)
		if strings.Join(seen, ",") != "0,1,2" {
			t.Errorf("indexes %v", seen)
		}
	})

	t.Run("active deadline", func(t *testing.T) {
		j := testJob("slow", "hang", 1, 1)
		j.Spec.ActiveDeadlineSeconds = ptr.To[int64](1)
		create(j)
		poll.Eventually(t, settle, poll.State("failed at the deadline", condition("slow", batchv1.JobFailed)))
		poll.Eventually(t, settle, poll.State("its pod deleted", func() (bool, string) {
			for _, p := range podsOf("slow") {
				if p.DeletionTimestamp == nil {
					return false, p.Name + " still running"
				}
			}
			return true, ""
		}))
		reason := s.mustKubectl("get", "job", "slow", "-o", `jsonpath={.status.conditions[?(@.type=="Failed")].reason}`)
		if reason != "DeadlineExceeded" {
			t.Errorf("Failed reason %q", reason)
		}
	})

	t.Run("ttl after finished", func(t *testing.T) {
		// A one-second TTL can delete the Job before a poll sees it
		// complete, so its life is read from a watch started first.
		w, err := jobs.Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=brief"})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		j := testJob("brief", "succeed", 1, 1)
		j.Spec.TTLSecondsAfterFinished = ptr.To[int32](1)
		create(j)
		completed := false
		timeout := time.After(settle)
		for deleted := false; !deleted; {
			select {
			case ev := <-w.ResultChan():
				got, ok := ev.Object.(*batchv1.Job)
				if !ok {
					t.Fatalf("watch: %v", ev.Object)
				}
				for _, c := range got.Status.Conditions {
					completed = completed || (c.Type == batchv1.JobComplete && c.Status == corev1.ConditionTrue)
				}
				deleted = ev.Type == watch.Deleted
			case <-timeout:
				t.Fatalf("after %s: the Job was not deleted (completed: %v)", settle, completed)
			}
		}
		if !completed {
			t.Error("the Job was deleted without completing")
		}
		poll.Eventually(t, settle, poll.State("its pods deleted after its TTL", func() (bool, string) {
			return len(podsOf("brief")) == 0, fmt.Sprintf("%d pods", len(podsOf("brief")))
		}))
	})

	t.Run("suspend and resume", func(t *testing.T) {
		j := testJob("later", "succeed", 1, 1)
		j.Spec.Suspend = ptr.To(true)
		create(j)
		poll.Eventually(t, settle, poll.State("suspended", condition("later", batchv1.JobSuspended)))
		if n := len(podsOf("later")); n != 0 {
			t.Fatalf("a suspended Job made %d pods", n)
		}
		s.mustKubectl("patch", "job", "later", "--type=merge", "-p", `{"spec":{"suspend":false}}`)
		poll.Eventually(t, settle, poll.State("complete after resume", condition("later", batchv1.JobComplete)))
	})
}
