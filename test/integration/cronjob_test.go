package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/test/poll"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// TestCronJobController runs every-minute CronJobs across one minute
// boundary: Allow, Forbid and Replace with a still-running job, history
// limits with lastSuccessfulTime, and suspend. Each CronJob's
// lastScheduleTime is set two minutes back at the start so that its first
// run is due at once; the second comes at the next minute.
func TestCronJobController(t *testing.T) {
	s := startServer(t)
	cs := s.client()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go jobNode(ctx, t, cs)
	cjs := cs.BatchV1().CronJobs("default")
	newCronJob := func(name, outcome string, policy batchv1.ConcurrencyPolicy, suspend bool) {
		t.Helper()
		cj := &batchv1.CronJob{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: batchv1.CronJobSpec{
				Schedule: "* * * * *", ConcurrencyPolicy: policy, Suspend: ptr.To(suspend),
				SuccessfulJobsHistoryLimit: ptr.To[int32](1),
				JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"outcome": outcome}},
					Spec:       corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
				}}},
			},
		}
		created, err := cjs.Create(ctx, cj, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		created.Status.LastScheduleTime = ptr.To(metav1.NewTime(time.Now().Add(-2 * time.Minute)))
		if _, err := cjs.UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	jobsOf := func(name string) []batchv1.Job {
		l, _ := cs.BatchV1().Jobs("default").List(ctx, metav1.ListOptions{})
		var out []batchv1.Job
		for _, j := range l.Items {
			if ref := metav1.GetControllerOf(&j); ref != nil && ref.Name == name && j.DeletionTimestamp == nil {
				out = append(out, j)
			}
		}
		return out
	}
	// Start just after a minute boundary so the first runs land before the next.
	if sec := time.Now().Second(); sec > 45 {
		time.Sleep(time.Duration(62-sec) * time.Second)
	}
	first := time.Now().Truncate(time.Minute)
	newCronJob("allow", "hang", batchv1.AllowConcurrent, false)
	newCronJob("forbid", "hang", batchv1.ForbidConcurrent, false)
	newCronJob("replace", "hang", batchv1.ReplaceConcurrent, false)
	newCronJob("history", "succeed", batchv1.AllowConcurrent, false)
	newCronJob("paused", "succeed", batchv1.AllowConcurrent, true)
	for _, n := range []string{"allow", "forbid", "replace", "history"} {
		poll.Eventually(t, settle, poll.State(n+" first run", func() (bool, string) {
			got := cs.BatchV1().CronJobs("default")
			cj, _ := got.Get(ctx, n, metav1.GetOptions{})
			return len(jobsOf(n)) == 1 && cj.Status.LastScheduleTime != nil && cj.Status.LastScheduleTime.Time.Equal(first),
				fmt.Sprintf("%d jobs, status %+v", len(jobsOf(n)), cj.Status)
		}))
	}
	firstReplace := jobsOf("replace")[0].Name

	// The next minute.
	time.Sleep(time.Until(first.Add(time.Minute)) + 2*time.Second)
	second := first.Add(time.Minute)
	poll.Eventually(t, settle, poll.State("Allow runs alongside", func() (bool, string) {
		cj, _ := cjs.Get(ctx, "allow", metav1.GetOptions{})
		return len(jobsOf("allow")) == 2 && len(cj.Status.Active) == 2, fmt.Sprintf("%d jobs, %d active", len(jobsOf("allow")), len(cj.Status.Active))
	}))
	poll.Eventually(t, settle, poll.State("Replace swaps the running job", func() (bool, string) {
		js := jobsOf("replace")
		return len(js) == 1 && js[0].Name != firstReplace, fmt.Sprintf("%d jobs", len(js))
	}))
	poll.Eventually(t, settle, poll.State("history keeps one successful job", func() (bool, string) {
		cj, _ := cjs.Get(ctx, "history", metav1.GetOptions{})
		return len(jobsOf("history")) == 1 && cj.Status.LastSuccessfulTime != nil && cj.Status.LastScheduleTime.Time.Equal(second),
			fmt.Sprintf("%d jobs, status %+v", len(jobsOf("history")), cj.Status)
	}))
	if js := jobsOf("forbid"); len(js) != 1 {
		t.Errorf("Forbid started %d jobs while one runs", len(js))
	}
	if js := jobsOf("paused"); len(js) != 0 {
		t.Errorf("a suspended CronJob started %d jobs", len(js))
	}
}
