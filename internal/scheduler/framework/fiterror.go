package framework

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/util/sets"
)

// Diagnosis records why a pod fits no node.
type Diagnosis struct {
	NodeToStatus *NodeToStatus
	// UnschedulablePlugins rejected the pod; events they registered for
	// move it back to the active queue.
	UnschedulablePlugins sets.Set[string]
	PendingPlugins       sets.Set[string]
	// PreFilterMsg is set when a PreFilter plugin rejected the pod.
	PreFilterMsg  string
	PostFilterMsg string
}

// FitError is the error of a pod that fits no node; its message is the one
// users see in FailedScheduling events and the PodScheduled condition.
type FitError struct {
	NumAllNodes int
	Diagnosis   Diagnosis
}

// Error implements error, in upstream's words:
// "0/5 nodes are available: 3 Insufficient cpu, 2 node(s) had untolerated
// taint {k: v}. preemption: ...".
func (f *FitError) Error() string {
	msg := fmt.Sprintf("0/%d nodes are available:", f.NumAllNodes)
	if f.Diagnosis.PreFilterMsg != "" {
		msg += " " + f.Diagnosis.PreFilterMsg + "."
	} else if hist := histogram(f.NumAllNodes, f.Diagnosis.NodeToStatus); hist != "" {
		msg += " " + hist + "."
	}
	if m := f.Diagnosis.PostFilterMsg; m != "" {
		msg += " " + strings.TrimSuffix(m, ".") + "."
	}
	return msg
}

// FitMessage formats a node-status histogram as a FitError without
// PreFilter or PostFilter messages (preemption's own summary).
func FitMessage(numAllNodes int, statuses *NodeToStatus) string {
	return (&FitError{NumAllNodes: numAllNodes, Diagnosis: Diagnosis{NodeToStatus: statuses}}).Error()
}

// histogram counts reasons over the nodes, sorted as upstream sorts them.
func histogram(numAllNodes int, statuses *NodeToStatus) string {
	if statuses == nil {
		return ""
	}
	counts := map[string]int{}
	for _, s := range statuses.m {
		for _, r := range s.Reasons() {
			counts[r]++
		}
	}
	if absent := numAllNodes - len(statuses.m); absent > 0 {
		for _, r := range statuses.absent.Reasons() {
			counts[r] += absent
		}
	}
	out := make([]string, 0, len(counts))
	for r, n := range counts {
		out = append(out, fmt.Sprintf("%d %s", n, r))
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}
