package job

import (
	"context"
	"log/slog"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/skiff-sh/skiff/internal/controller"
)

// TestStalePodViewCountsOnce: a sync whose pod informer still shows a
// counted and released pod with its tracking finalizer (the finalizer's
// removal not yet seen) must not count that pod again. Counting it twice
// finished a Job early and deleted a pod it still needed.
func TestStalePodViewCountsOnce(t *testing.T) {
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "j", UID: "job-uid"},
		Spec: batchv1.JobSpec{
			Completions: ptr.To[int32](2), Parallelism: ptr.To[int32](1), BackoffLimit: ptr.To[int32](6),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"job": "j"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"job": "j"}},
				Spec:       corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "c", Image: "x"}}},
			},
		},
		Status: batchv1.JobStatus{StartTime: &metav1.Time{Time: time.Unix(1000, 0)}},
	}
	done := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "default", Name: "j-a", UID: "pod-a", Labels: map[string]string{"job": "j"}, Finalizers: []string{trackingFinalizer},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: "j", UID: "job-uid", Controller: ptr.To(true)}},
		},
		Status: corev1.PodStatus{Phase: corev1.PodSucceeded},
	}
	client := fake.NewClientset(job, done)
	inf := informers.NewSharedInformerFactory(client, 0)
	cc := &controller.Context{Client: client, Informers: inf, Events: record.NewBroadcaster(), Clock: clocktesting.NewFakeClock(time.Unix(2000, 0)), Log: slog.Default()}
	ctrl, err := New(cc)
	if err != nil {
		t.Fatal(err)
	}
	c := ctrl.(*Controller)
	jobs, pods := inf.Batch().V1().Jobs().Informer().GetIndexer(), inf.Core().V1().Pods().Informer().GetIndexer()
	if err := jobs.Add(job); err != nil {
		t.Fatal(err)
	}
	if err := pods.Add(done); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_ = c.sync(ctx, "default/j")
	// The Job's view catches up; the pod's does not.
	fresh, err := client.BatchV1().Jobs("default").Get(ctx, "j", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if fresh.Status.Succeeded != 1 {
		t.Fatalf("after the first sync: succeeded %d, want 1", fresh.Status.Succeeded)
	}
	if err := jobs.Update(fresh); err != nil {
		t.Fatal(err)
	}
	_ = c.sync(ctx, "default/j")
	final, err := client.BatchV1().Jobs("default").Get(ctx, "j", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if final.Status.Succeeded != 1 {
		t.Errorf("succeeded %d after a sync on a stale pod view, want 1", final.Status.Succeeded)
	}
}
