package ttlafterfinished

import (
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestExpiry(t *testing.T) {
	done := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	finished := func(ttl *int32, cond batchv1.JobConditionType) *batchv1.Job {
		j := &batchv1.Job{Spec: batchv1.JobSpec{TTLSecondsAfterFinished: ttl}}
		j.Status.Conditions = []batchv1.JobCondition{{Type: cond, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(done)}}
		return j
	}
	if at, ok := expiry(finished(ptr.To[int32](30), batchv1.JobFailed)); !ok || !at.Equal(done.Add(30*time.Second)) {
		t.Errorf("failed job expires at %v (%v)", at, ok)
	}
	if _, ok := expiry(finished(nil, batchv1.JobComplete)); ok {
		t.Error("a Job without TTL expires")
	}
	if _, ok := expiry(finished(ptr.To[int32](0), batchv1.JobSuspended)); ok {
		t.Error("an unfinished Job expires")
	}
}
