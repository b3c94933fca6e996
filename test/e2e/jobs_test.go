package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/test/poll"

	batchv1 "k8s.io/api/batch/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func shellJob(ns, name, script string) *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: batchv1.JobSpec{Template: v1.PodTemplateSpec{Spec: v1.PodSpec{
			RestartPolicy: v1.RestartPolicyNever, TerminationGracePeriodSeconds: ptr.To[int64](0),
			Containers: []v1.Container{{Name: "main", Image: busyboxImage, Command: []string{"sh", "-c", script}}},
		}}},
	}
}

func waitJobCondition(t *testing.T, ns, name string, typ batchv1.JobConditionType) *batchv1.Job {
	t.Helper()
	var j *batchv1.Job
	poll.Eventually(t, 90*time.Second, func() error {
		var err error
		if j, err = cl.client.BatchV1().Jobs(ns).Get(context.Background(), name, getOpts); err != nil {
			return err
		}
		for _, c := range j.Status.Conditions {
			if c.Type == typ && c.Status == v1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("job %s: status %+v", name, j.Status)
	})
	return j
}

// podFailurePolicy acts on real exit codes: exit 42 fails the Job at once
// despite its backoffLimit; exit 3 is ignored, so a Job with backoffLimit 0
// still completes on its retry.
func TestJobPodFailurePolicy(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	rules := []batchv1.PodFailurePolicyRule{
		{Action: batchv1.PodFailurePolicyActionFailJob, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{Operator: batchv1.PodFailurePolicyOnExitCodesOpIn, Values: []int32{42}}},
		{Action: batchv1.PodFailurePolicyActionIgnore, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{Operator: batchv1.PodFailurePolicyOnExitCodesOpIn, Values: []int32{3}}},
	}
	fatal := shellJob(ns, "fatal", "exit 42")
	fatal.Spec.BackoffLimit = ptr.To[int32](6)
	fatal.Spec.PodFailurePolicy = &batchv1.PodFailurePolicy{Rules: rules}
	if _, err := cl.client.BatchV1().Jobs(ns).Create(ctx, fatal, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The retry sees the marker its first pod left on the node.
	marker := filepath.Join(filepath.Dir(cl.dataDir), "job-marker-"+ns)
	if err := os.MkdirAll(marker, 0o777); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(marker) })
	flaky := shellJob(ns, "flaky", "if [ -e /marker/once ]; then exit 0; fi; touch /marker/once; exit 3")
	flaky.Spec.BackoffLimit = ptr.To[int32](0)
	flaky.Spec.PodFailurePolicy = &batchv1.PodFailurePolicy{Rules: rules}
	flaky.Spec.Template.Spec.Volumes = []v1.Volume{{Name: "marker", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: marker}}}}
	flaky.Spec.Template.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "marker", MountPath: "/marker"}}
	if _, err := cl.client.BatchV1().Jobs(ns).Create(ctx, flaky, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	j := waitJobCondition(t, ns, "fatal", batchv1.JobFailed)
	for _, c := range j.Status.Conditions {
		if c.Type == batchv1.JobFailed && (c.Reason != "PodFailurePolicy" || c.Message == "") {
			t.Errorf("failed condition %+v", c)
		}
	}
	if j.Status.Failed != 1 {
		t.Errorf("fatal job failed %d pods, want 1 (no retries after a FailJob rule)", j.Status.Failed)
	}
	j = waitJobCondition(t, ns, "flaky", batchv1.JobComplete)
	if j.Status.Failed != 0 || j.Status.Succeeded != 1 {
		t.Errorf("flaky job: failed %d succeeded %d, want the ignored failure uncounted", j.Status.Failed, j.Status.Succeeded)
	}
}

// An Indexed Job with a successPolicy completes once its leader index
// succeeds; the other indexes' pods are removed.
func TestJobSuccessPolicy(t *testing.T) {
	ns := namespace(t)
	j := shellJob(ns, "leader", `[ "$JOB_COMPLETION_INDEX" = 0 ] && exit 0; while true; do sleep 1; done`)
	j.Spec.CompletionMode = ptr.To(batchv1.IndexedCompletion)
	j.Spec.Completions, j.Spec.Parallelism = ptr.To[int32](3), ptr.To[int32](3)
	j.Spec.SuccessPolicy = &batchv1.SuccessPolicy{Rules: []batchv1.SuccessPolicyRule{{SucceededIndexes: ptr.To("0")}}}
	if _, err := cl.client.BatchV1().Jobs(ns).Create(context.Background(), j, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got := waitJobCondition(t, ns, "leader", batchv1.JobComplete)
	met := false
	for _, c := range got.Status.Conditions {
		if c.Type == batchv1.JobSuccessCriteriaMet && c.Reason == "SuccessPolicy" {
			met = true
		}
	}
	if !met || got.Status.CompletedIndexes != "0" {
		t.Errorf("status %+v", got.Status)
	}
	poll.Eventually(t, 60*time.Second, func() error {
		pods, err := cl.client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: batchv1.JobNameLabel + "=leader"})
		if err != nil {
			return err
		}
		for _, p := range pods.Items {
			if p.Status.Phase == v1.PodRunning || p.Status.Phase == v1.PodPending {
				return fmt.Errorf("pod %s still %s", p.Name, p.Status.Phase)
			}
		}
		return nil
	})
}

// backoffLimitPerIndex: an index that keeps failing is retried up to its
// limit and then marked failed while the other indexes complete; the Job
// ends Failed with reason FailedIndexes.
func TestJobBackoffLimitPerIndex(t *testing.T) {
	ns := namespace(t)
	j := shellJob(ns, "perindex", `[ "$JOB_COMPLETION_INDEX" = 1 ] && exit 1; exit 0`)
	j.Spec.CompletionMode = ptr.To(batchv1.IndexedCompletion)
	j.Spec.Completions, j.Spec.Parallelism = ptr.To[int32](3), ptr.To[int32](3)
	j.Spec.BackoffLimitPerIndex = ptr.To[int32](1)
	if _, err := cl.client.BatchV1().Jobs(ns).Create(context.Background(), j, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got := waitJobCondition(t, ns, "perindex", batchv1.JobFailed)
	reason := ""
	for _, c := range got.Status.Conditions {
		if c.Type == batchv1.JobFailed {
			reason = c.Reason
		}
	}
	if reason != "FailedIndexes" || ptr.Deref(got.Status.FailedIndexes, "") != "1" || got.Status.CompletedIndexes != "0,2" || got.Status.Failed != 2 {
		t.Errorf("reason %q failedIndexes %q completed %q failed %d; want FailedIndexes, 1, 0,2, 2 (one retry)",
			reason, ptr.Deref(got.Status.FailedIndexes, ""), got.Status.CompletedIndexes, got.Status.Failed)
	}
}
