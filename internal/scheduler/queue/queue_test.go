package queue

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

func newTestQueue(clock *testingclock.FakeClock) *Queue {
	return New(Config{
		Less: func(a, b *framework.QueuedPodInfo) bool {
			pa, pb := *a.Pod.Spec.Priority, *b.Pod.Spec.Priority
			return pa > pb || (pa == pb && a.Timestamp.Before(b.Timestamp))
		},
		PreEnqueue: func(_ string, pod *corev1.Pod) *framework.Status {
			if len(pod.Spec.SchedulingGates) > 0 {
				return framework.NewStatus(framework.UnschedulableAndUnresolvable, "gated").WithPlugin("SchedulingGates")
			}
			return nil
		},
		PluginEvents: map[string][]framework.ClusterEvent{
			"NodeResourcesFit": {{Resource: framework.NodeResource, Action: framework.Add | framework.UpdateNodeAllocatable}, {Resource: framework.PodResource, Action: framework.Delete}},
			"TaintToleration":  {{Resource: framework.NodeResource, Action: framework.Add | framework.UpdateNodeTaint}},
		},
		InitialBackoff: time.Second, MaxBackoff: 10 * time.Second, MaxUnschedulable: 5 * time.Minute, Clock: clock,
	})
}

func testPod(name string, prio int32) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID(name)}, Spec: corev1.PodSpec{Priority: &prio}}
}

func TestPriorityOrder(t *testing.T) {
	q := newTestQueue(testingclock.NewFakeClock(time.Now()))
	q.Add("p", testPod("low", 1))
	q.Add("p", testPod("high", 10))
	q.Add("p", testPod("mid", 5))
	for _, want := range []string{"high", "mid", "low"} {
		if got := q.Pop().Pod.Name; got != want {
			t.Fatalf("popped %s, want %s", got, want)
		}
	}
}

func TestRequeueOnlyOnHelpfulEvents(t *testing.T) {
	clock := testingclock.NewFakeClock(time.Now())
	q := newTestQueue(clock)
	q.Add("p", testPod("cpu", 0))
	q.Add("p", testPod("taint", 0))
	for range 2 {
		p := q.Pop()
		if p.Pod.Name == "cpu" {
			p.UnschedulablePlugins = sets.New("NodeResourcesFit")
		} else {
			p.UnschedulablePlugins = sets.New("TaintToleration")
		}
		q.AddUnschedulable(p, false)
	}
	if a, b, u, _ := q.Counts(); a != 0 || b != 0 || u != 2 {
		t.Fatalf("counts active=%d backoff=%d unschedulable=%d", a, b, u)
	}
	// A pod deletion helps the cpu-starved pod only.
	q.OnEvent(framework.ClusterEvent{Resource: framework.PodResource, Action: framework.Delete})
	if _, b, u, _ := q.Counts(); b != 1 || u != 1 {
		t.Fatalf("after pod delete: backoff=%d unschedulable=%d", b, u)
	}
	// Label changes help neither.
	q.OnEvent(framework.ClusterEvent{Resource: framework.NodeResource, Action: framework.UpdateNodeLabel})
	if _, _, u, _ := q.Counts(); u != 1 {
		t.Fatalf("after label change: unschedulable=%d", u)
	}
	q.OnEvent(framework.ClusterEvent{Resource: framework.NodeResource, Action: framework.UpdateNodeTaint})
	if _, b, u, _ := q.Counts(); b != 2 || u != 0 {
		t.Fatalf("after taint change: backoff=%d unschedulable=%d", b, u)
	}
	// Back-off expires after 1s (first attempt).
	clock.Step(1100 * time.Millisecond)
	q.flushBackoff()
	if a, b, _, _ := q.Counts(); a != 2 || b != 0 {
		t.Fatalf("after back-off: active=%d backoff=%d", a, b)
	}
}

func TestEventDuringAttemptRetries(t *testing.T) {
	q := newTestQueue(testingclock.NewFakeClock(time.Now()))
	q.Add("p", testPod("p", 0))
	p := q.Pop()
	q.OnEvent(framework.ClusterEvent{Resource: framework.NodeResource, Action: framework.Add})
	p.UnschedulablePlugins = sets.New("NodeResourcesFit")
	q.AddUnschedulable(p, false)
	if _, b, u, _ := q.Counts(); b != 1 || u != 0 {
		t.Fatalf("a node added during the attempt should retry the pod: backoff=%d unschedulable=%d", b, u)
	}
}

func TestGatedPodsWaitForUngating(t *testing.T) {
	q := newTestQueue(testingclock.NewFakeClock(time.Now()))
	gated := testPod("g", 0)
	gated.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "wait"}}
	q.Add("p", gated)
	if a, _, _, g := q.Counts(); a != 0 || g != 1 {
		t.Fatalf("active=%d gated=%d", a, g)
	}
	open := gated.DeepCopy()
	open.Spec.SchedulingGates = nil
	q.Update("p", gated, open)
	if a, _, _, g := q.Counts(); a != 1 || g != 0 {
		t.Fatalf("after ungating: active=%d gated=%d", a, g)
	}
}

func TestBackoffDoubles(t *testing.T) {
	q := newTestQueue(testingclock.NewFakeClock(time.Now()))
	for attempts, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 4: 8 * time.Second, 9: 10 * time.Second} {
		if got := q.backoffDuration(&framework.QueuedPodInfo{Attempts: attempts}); got != want {
			t.Errorf("attempts %d: %v, want %v", attempts, got, want)
		}
	}
}
