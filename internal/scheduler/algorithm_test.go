package scheduler

import (
	"testing"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

func TestNumFeasibleNodesToFind(t *testing.T) {
	for _, tc := range []struct {
		percentage int32
		nodes      int
		want       int
	}{
		{0, 50, 50},     // small clusters: every node
		{0, 1000, 420},  // 50 - 1000/125 = 42%
		{0, 5000, 500},  // 50 - 40 = 10%
		{0, 10000, 500}, // floor of 5%
		{0, 150, 100},   // never fewer than 100
		{30, 1000, 300}, // configured
		{100, 5000, 5000},
	} {
		if got := numFeasibleNodesToFind(tc.percentage, tc.nodes); got != tc.want {
			t.Errorf("numFeasibleNodesToFind(%d, %d) = %d, want %d", tc.percentage, tc.nodes, got, tc.want)
		}
	}
}

func TestFitErrorMessage(t *testing.T) {
	statuses := framework.NewNodeToStatus(nil)
	statuses.Set("a", framework.NewStatus(framework.Unschedulable, "Insufficient cpu"))
	statuses.Set("b", framework.NewStatus(framework.Unschedulable, "Insufficient cpu", "Insufficient memory"))
	statuses.Set("c", framework.NewStatus(framework.UnschedulableAndUnresolvable, "node(s) had untolerated taint {k: v}"))
	err := &framework.FitError{NumAllNodes: 3, Diagnosis: framework.Diagnosis{NodeToStatus: statuses, PostFilterMsg: "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."}}
	want := "0/3 nodes are available: 1 Insufficient memory, 1 node(s) had untolerated taint {k: v}, 2 Insufficient cpu. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
	if err.Error() != want {
		t.Errorf("got  %q\nwant %q", err.Error(), want)
	}
	pre := &framework.FitError{NumAllNodes: 2, Diagnosis: framework.Diagnosis{PreFilterMsg: `persistentvolumeclaim "data" not found`}}
	if got := pre.Error(); got != `0/2 nodes are available: persistentvolumeclaim "data" not found.` {
		t.Errorf("prefilter message %q", got)
	}
}

func TestSelectHostPicksTheBest(t *testing.T) {
	if got := selectHost([]int64{3, 9, 1, 9}); got != 1 && got != 3 {
		t.Errorf("selectHost = %d", got)
	}
}
