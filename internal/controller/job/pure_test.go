package job

import (
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
