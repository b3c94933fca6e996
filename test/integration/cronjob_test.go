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

// TestCronJobController runs the CronJob controller in the real server: an
// every-minute CronJob whose lastScheduleTime is two minutes back starts a
// Job at once and records the run; a suspended one starts nothing. The
// behaviour across minutes (concurrency policies, history, suspend) is
// tested on a fake clock in internal/controller/cronjob.
func TestCronJobController(t *testing.T) {
	s := startServer(t)
	cs := s.client()
	ctx := context.Background()
	cjs := cs.BatchV1().CronJobs("default")
	newCronJob := func(name string, suspend bool) {
		t.Helper()
		cj := &batchv1.CronJob{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: batchv1.CronJobSpec{
				Schedule: "* * * * *", Suspend: ptr.To(suspend),
				JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{
					Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
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
			if ref := metav1.GetControllerOf(&j); ref != nil && ref.Name == name {
				out = append(out, j)
			}
		}
		return out
	}
	created := time.Now()
	newCronJob("every-minute", false)
	newCronJob("paused", true)
	poll.Eventually(t, settle, poll.State("the first run", func() (bool, string) {
		cj, _ := cjs.Get(ctx, "every-minute", metav1.GetOptions{})
		lst := cj.Status.LastScheduleTime
		return len(jobsOf("every-minute")) >= 1 && len(cj.Status.Active) >= 1 && lst != nil && lst.Time.Truncate(time.Minute).Equal(lst.Time) &&
				!lst.Time.Before(created.Add(-time.Minute).Truncate(time.Minute)),
			fmt.Sprintf("%d jobs, status %+v", len(jobsOf("every-minute")), cj.Status)
	}))
	j := jobsOf("every-minute")[0]
	if ref := metav1.GetControllerOf(&j); ref == nil || ref.Kind != "CronJob" {
		t.Errorf("job %s controller %+v", j.Name, ref)
	}
	if js := jobsOf("paused"); len(js) != 0 {
		t.Errorf("a suspended CronJob started %d jobs", len(js))
	}
}
