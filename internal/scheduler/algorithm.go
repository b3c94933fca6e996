package scheduler

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

// ErrNoNodes is the failure when the cluster has no nodes at all.
var ErrNoNodes = errors.New("no nodes available to schedule pods")

// minFeasibleNodesToFind and minFeasibleNodesPercentageToFind are
// upstream's floors for percentageOfNodesToScore.
const (
	minFeasibleNodesToFind           = 100
	minFeasibleNodesPercentageToFind = 5
)

// numFeasibleNodesToFind is how many fitting nodes are enough: all in a
// small cluster, otherwise a percentage that shrinks as the cluster grows
// (50% minus 1% per 125 nodes, at least 5%) unless configured.
func numFeasibleNodesToFind(percentage int32, numAll int) int {
	if numAll < minFeasibleNodesToFind || percentage >= 100 {
		return numAll
	}
	adaptive := percentage
	if adaptive <= 0 {
		adaptive = int32(50 - numAll/125)
		if adaptive < minFeasibleNodesPercentageToFind {
			adaptive = minFeasibleNodesPercentageToFind
		}
	}
	n := numAll * int(adaptive) / 100
	if n < minFeasibleNodesToFind {
		return minFeasibleNodesToFind
	}
	return n
}

// algorithm runs one scheduling attempt over a snapshot. It holds buffers
// reused from cycle to cycle, so it is used by one goroutine at a time.
type algorithm struct {
	snapshot    *framework.Snapshot
	percentage  int32
	nextStart   int
	feasibleBuf []*framework.NodeInfo
	statusBuf   []*framework.Status
	totalsBuf   []int64
}

// result is a successful placement.
type result struct {
	node      string
	evaluated int
	feasible  int
}

// schedule picks a node for pod or returns a *framework.FitError (or
// another error).
func (a *algorithm) schedule(ctx context.Context, fwk *framework.Framework, state *framework.CycleState, pod *framework.PodInfo) (result, error) {
	if a.snapshot.NumNodes() == 0 {
		return result{}, ErrNoNodes
	}
	feasible, diag, err := a.findNodesThatFit(ctx, fwk, state, pod)
	if err != nil {
		return result{}, err
	}
	if len(feasible) == 0 {
		return result{}, &framework.FitError{NumAllNodes: a.snapshot.NumNodes(), Diagnosis: diag}
	}
	evaluated := len(feasible) + diag.NodeToStatus.Len()
	if len(feasible) == 1 {
		return result{node: feasible[0].Name(), evaluated: evaluated, feasible: 1}, nil
	}
	if s := fwk.RunPreScore(ctx, state, pod, feasible); !s.IsSuccess() {
		return result{}, s.AsError()
	}
	totals := a.totals(len(feasible))
	if s := fwk.RunScore(ctx, state, pod, feasible, totals); !s.IsSuccess() {
		return result{}, s.AsError()
	}
	return result{node: feasible[selectHost(totals)].Name(), evaluated: evaluated, feasible: len(feasible)}, nil
}

func (a *algorithm) totals(n int) []int64 {
	if cap(a.totalsBuf) < n {
		a.totalsBuf = make([]int64, n)
	}
	t := a.totalsBuf[:n]
	clear(t)
	return t
}

// selectHost returns the index of the highest total, choosing uniformly
// among ties.
func selectHost(totals []int64) int {
	best, ties := 0, 1
	for i := 1; i < len(totals); i++ {
		switch {
		case totals[i] > totals[best]:
			best, ties = i, 1
		case totals[i] == totals[best]:
			ties++
			if rand.IntN(ties) == 0 {
				best = i
			}
		}
	}
	return best
}

// findNodesThatFit runs PreFilter, then Filter over the nodes in parallel
// from a rotating start, stopping once enough nodes fit.
func (a *algorithm) findNodesThatFit(ctx context.Context, fwk *framework.Framework, state *framework.CycleState, pod *framework.PodInfo) ([]*framework.NodeInfo, framework.Diagnosis, error) {
	diag := framework.Diagnosis{NodeToStatus: framework.NewNodeToStatus(nil), UnschedulablePlugins: sets.New[string]()}
	pre, s, rejectors := fwk.RunPreFilter(ctx, state, pod)
	if !s.IsSuccess() {
		if !s.IsRejected() {
			return nil, diag, s.AsError()
		}
		diag.NodeToStatus = framework.NewNodeToStatus(s)
		diag.PreFilterMsg = s.Message()
		diag.UnschedulablePlugins = rejectors
		return nil, diag, nil
	}
	// A nominated node (from an earlier preemption) is tried first.
	if nom := pod.Pod.Status.NominatedNodeName; nom != "" {
		if ni := a.snapshot.Get(nom); ni != nil && fwk.RunFilterWithNominatedPods(ctx, state, pod, ni).IsSuccess() {
			return []*framework.NodeInfo{ni}, diag, nil
		}
	}
	nodes := a.snapshot.NodeInfoList
	if pre != nil && pre.NodeNames != nil {
		diag.NodeToStatus = framework.NewNodeToStatus(framework.NewStatus(framework.UnschedulableAndUnresolvable, "node is filtered out by the prefilter result"))
		nodes = make([]*framework.NodeInfo, 0, pre.NodeNames.Len())
		for name := range pre.NodeNames {
			if ni := a.snapshot.Get(name); ni != nil {
				nodes = append(nodes, ni)
			}
		}
	}
	percentage := a.percentage
	if fwk.PercentageOfNodesToScore > 0 {
		percentage = fwk.PercentageOfNodesToScore
	}
	want := numFeasibleNodesToFind(percentage, len(nodes))
	if cap(a.feasibleBuf) < want {
		a.feasibleBuf = make([]*framework.NodeInfo, want)
	}
	feasible := a.feasibleBuf[:want]
	if cap(a.statusBuf) < len(nodes) {
		a.statusBuf = make([]*framework.Status, len(nodes))
	}
	statuses := a.statusBuf[:len(nodes)]
	var found atomic.Int32
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := 0
	if len(nodes) > 0 && pre == nil {
		start = a.nextStart % len(nodes)
	}
	fwk.Handle.Parallel(fctx, len(nodes), func(i int) {
		ni := nodes[(start+i)%len(nodes)]
		if st := fwk.RunFilterWithNominatedPods(fctx, state, pod, ni); !st.IsSuccess() {
			statuses[i] = st
			return
		}
		n := found.Add(1)
		if int(n) > want {
			cancel()
			found.Add(-1)
			return
		}
		feasible[n-1] = ni
	})
	var firstErr error
	for i, st := range statuses {
		if st == nil {
			continue
		}
		statuses[i] = nil
		if st.Code() == framework.Error {
			if firstErr == nil {
				firstErr = st.AsError()
			}
			continue
		}
		diag.NodeToStatus.Set(nodes[(start+i)%len(nodes)].Name(), st)
		diag.UnschedulablePlugins.Insert(st.Plugin())
	}
	if firstErr != nil {
		return nil, diag, firstErr
	}
	n := int(found.Load())
	if pre == nil && len(nodes) > 0 {
		a.nextStart = (start + n + diag.NodeToStatus.Len()) % len(nodes)
	}
	return feasible[:n], diag, nil
}
