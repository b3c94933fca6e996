package framework

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
)

// WeightedScore is a score plugin with its weight.
type WeightedScore struct {
	ScorePlugin
	Weight int64
}

// Framework is one profile: the plugins at each extension point, in order,
// and the code that runs them.
type Framework struct {
	ProfileName string
	QueueSort   QueueSortPlugin
	PreEnqueue  []PreEnqueuePlugin
	PreFilter   []PreFilterPlugin
	Filter      []FilterPlugin
	PostFilter  []PostFilterPlugin
	PreScore    []PreScorePlugin
	Score       []WeightedScore
	Reserve     []ReservePlugin
	Permit      []PermitPlugin
	PreBind     []PreBindPlugin
	Bind        []BindPlugin
	PostBind    []PostBindPlugin
	// PercentageOfNodesToScore overrides the global setting (0 = unset).
	PercentageOfNodesToScore int32
	// Plugins holds every instance by name.
	Plugins map[string]Plugin
	// Handle is how plugins reach the scheduler; set before use.
	Handle Handle
	// scoreBuffers holds the score slices of finished attempts.
	scoreBuffers sync.Pool
}

var _ Runner = (*Framework)(nil)

// RunPreEnqueue asks the PreEnqueue plugins whether pod may be queued.
func (f *Framework) RunPreEnqueue(ctx context.Context, pod *corev1.Pod) *Status {
	for _, p := range f.PreEnqueue {
		if s := p.PreEnqueue(ctx, pod); !s.IsSuccess() {
			return s.WithPlugin(p.Name())
		}
	}
	return nil
}

// RunPreFilter runs the PreFilter plugins, intersecting the node sets they
// return; the plugin set returned names those that rejected the pod.
func (f *Framework) RunPreFilter(ctx context.Context, state *CycleState, pod *PodInfo) (*PreFilterResult, *Status, sets.Set[string]) {
	var result *PreFilterResult
	state.SkipFilter = sets.New[string]()
	nodes := f.Handle.Snapshot().NodeInfoList
	for _, p := range f.PreFilter {
		r, s := p.PreFilter(ctx, state, pod, nodes)
		if s.IsSkip() {
			state.SkipFilter.Insert(p.Name())
			continue
		}
		if !s.IsSuccess() {
			s.WithPlugin(p.Name())
			if s.IsRejected() {
				return nil, s, sets.New(p.Name())
			}
			return nil, s, nil
		}
		if r != nil && r.NodeNames != nil {
			if result == nil {
				result = &PreFilterResult{NodeNames: r.NodeNames.Clone()}
			} else {
				result.NodeNames = result.NodeNames.Intersection(r.NodeNames)
			}
			if result.NodeNames.Len() == 0 {
				return nil, NewStatus(UnschedulableAndUnresolvable, "node(s) didn't satisfy plugin(s) ["+p.Name()+"] simultaneously").WithPlugin(p.Name()), sets.New(p.Name())
			}
		}
	}
	return result, nil, nil
}

// RunFilter runs the Filter plugins on one node and returns the first
// rejection (nil when the node fits).
func (f *Framework) RunFilter(ctx context.Context, state *CycleState, pod *PodInfo, node *NodeInfo) *Status {
	for _, p := range f.Filter {
		if state.SkipFilter.Has(p.Name()) {
			continue
		}
		if s := p.Filter(ctx, state, pod, node); !s.IsSuccess() {
			if !s.IsRejected() {
				s = NewStatus(Error, fmt.Sprintf("running %q filter plugin: %s", p.Name(), s.Message()))
			}
			return s.WithPlugin(p.Name())
		}
	}
	return nil
}

// RunFilterWithNominatedPods filters node as if the pods nominated to it
// with priority at least pod's were already there, so a preemptor's room
// is not taken by a lower-priority pod; then, as upstream, without them.
func (f *Framework) RunFilterWithNominatedPods(ctx context.Context, state *CycleState, pod *PodInfo, node *NodeInfo) *Status {
	var nominated []*PodInfo
	if n := f.Handle.Nominator(); n != nil && node.Node() != nil {
		prio := corev1helpers.PodPriority(pod.Pod)
		for _, np := range n.NominatedPodsForNode(node.Name()) {
			if np.Pod.UID != pod.Pod.UID && corev1helpers.PodPriority(np.Pod) >= prio {
				nominated = append(nominated, np)
			}
		}
	}
	if len(nominated) > 0 {
		withState := state.Clone()
		withNode := node.Clone()
		for _, np := range nominated {
			withNode.AddPod(np)
			if s := f.RunPreFilterExtensionAddPod(ctx, withState, pod, np, withNode); !s.IsSuccess() {
				return s
			}
		}
		if s := f.RunFilter(ctx, withState, pod, withNode); !s.IsSuccess() {
			return s
		}
	}
	return f.RunFilter(ctx, state, pod, node)
}

// RunPreFilterExtensionAddPod tells the PreFilter plugins pod add is
// (simulated to be) on node.
func (f *Framework) RunPreFilterExtensionAddPod(ctx context.Context, state *CycleState, pod, add *PodInfo, node *NodeInfo) *Status {
	for _, p := range f.PreFilter {
		if ext := p.PreFilterExtensions(); ext != nil && !state.SkipFilter.Has(p.Name()) {
			if s := ext.AddPod(ctx, state, pod, add, node); !s.IsSuccess() {
				return s.WithPlugin(p.Name())
			}
		}
	}
	return nil
}

// RunPreFilterExtensionRemovePod tells the PreFilter plugins pod remove is
// (simulated to be) gone from node.
func (f *Framework) RunPreFilterExtensionRemovePod(ctx context.Context, state *CycleState, pod, remove *PodInfo, node *NodeInfo) *Status {
	for _, p := range f.PreFilter {
		if ext := p.PreFilterExtensions(); ext != nil && !state.SkipFilter.Has(p.Name()) {
			if s := ext.RemovePod(ctx, state, pod, remove, node); !s.IsSuccess() {
				return s.WithPlugin(p.Name())
			}
		}
	}
	return nil
}

// RunPostFilter runs PostFilter plugins until one nominates a node.
func (f *Framework) RunPostFilter(ctx context.Context, state *CycleState, pod *PodInfo, statuses *NodeToStatus) (*PostFilterResult, *Status) {
	var last *Status
	for _, p := range f.PostFilter {
		r, s := p.PostFilter(ctx, state, pod, statuses)
		if s.IsSuccess() {
			return r, nil
		}
		if !s.IsRejected() {
			return nil, s.WithPlugin(p.Name())
		}
		last = s.WithPlugin(p.Name())
	}
	if last == nil {
		last = NewStatus(Unschedulable)
	}
	return nil, last
}

// RunPreScore runs the PreScore plugins.
func (f *Framework) RunPreScore(ctx context.Context, state *CycleState, pod *PodInfo, nodes []*NodeInfo) *Status {
	state.SkipScore = sets.New[string]()
	for _, p := range f.PreScore {
		s := p.PreScore(ctx, state, pod, nodes)
		if s.IsSkip() {
			state.SkipScore.Insert(p.Name())
			continue
		}
		if !s.IsSuccess() {
			return NewStatus(Error, fmt.Sprintf("running PreScore plugin %q: %s", p.Name(), s.Message())).WithPlugin(p.Name())
		}
	}
	return nil
}

// RunScore scores nodes with every Score plugin in parallel over nodes,
// normalizes, weighs and sums; totals[i] belongs to nodes[i].
func (f *Framework) RunScore(ctx context.Context, state *CycleState, pod *PodInfo, nodes []*NodeInfo, totals []int64) *Status {
	var active []WeightedScore
	for _, p := range f.Score {
		if !state.SkipScore.Has(p.Name()) {
			active = append(active, p)
		}
	}
	if len(active) == 0 {
		return nil
	}
	// One buffer for every plugin's scores, reused across attempts: per
	// attempt it is plugins × feasible nodes entries, the scheduler's
	// largest allocation otherwise.
	buf, _ := f.scoreBuffers.Get().(*[]NodeScore)
	if buf == nil {
		buf = new([]NodeScore)
	}
	defer f.scoreBuffers.Put(buf)
	if need := len(active) * len(nodes); cap(*buf) < need {
		*buf = make([]NodeScore, need)
	}
	flat := (*buf)[:len(active)*len(nodes)]
	clear(flat)
	scores := make([][]NodeScore, len(active))
	for i := range scores {
		scores[i] = flat[i*len(nodes) : (i+1)*len(nodes) : (i+1)*len(nodes)]
	}
	errs := make([]*Status, len(active))
	f.Handle.Parallel(ctx, len(nodes), func(n int) {
		for i, p := range active {
			v, s := p.Score(ctx, state, pod, nodes[n])
			if !s.IsSuccess() {
				errs[i] = s
				continue
			}
			scores[i][n] = NodeScore{Name: nodes[n].Name(), Score: v}
		}
	})
	for i, s := range errs {
		if s != nil {
			return NewStatus(Error, fmt.Sprintf("running Score plugin %q: %s", active[i].Name(), s.Message())).WithPlugin(active[i].Name())
		}
	}
	for i, p := range active {
		if ext := p.ScoreExtensions(); ext != nil {
			if s := ext.NormalizeScore(ctx, state, pod, scores[i]); !s.IsSuccess() {
				return NewStatus(Error, fmt.Sprintf("normalizing %q scores: %s", p.Name(), s.Message())).WithPlugin(p.Name())
			}
		}
		for n, ns := range scores[i] {
			if ns.Score > MaxNodeScore || ns.Score < MinNodeScore {
				return NewStatus(Error, fmt.Sprintf("plugin %q returned score %d for node %q, outside [%d, %d]", p.Name(), ns.Score, ns.Name, MinNodeScore, MaxNodeScore))
			}
			totals[n] += ns.Score * p.Weight
		}
	}
	return nil
}

// RunReserve runs Reserve plugins; on failure the caller runs Unreserve.
func (f *Framework) RunReserve(ctx context.Context, state *CycleState, pod *corev1.Pod, node string) *Status {
	for _, p := range f.Reserve {
		if s := p.Reserve(ctx, state, pod, node); !s.IsSuccess() {
			return s.WithPlugin(p.Name())
		}
	}
	return nil
}

// RunUnreserve undoes Reserve, in reverse order.
func (f *Framework) RunUnreserve(ctx context.Context, state *CycleState, pod *corev1.Pod, node string) {
	for i := len(f.Reserve) - 1; i >= 0; i-- {
		f.Reserve[i].Unreserve(ctx, state, pod, node)
	}
}

// RunPermit runs Permit plugins and returns Wait with the shortest timeout
// when any plugin waits.
func (f *Framework) RunPermit(ctx context.Context, state *CycleState, pod *corev1.Pod, node string) (*Status, time.Duration, []string) {
	var waitFor []string
	var timeout time.Duration
	for _, p := range f.Permit {
		s, d := p.Permit(ctx, state, pod, node)
		switch {
		case s.IsSuccess():
		case s.Code() == Wait:
			waitFor = append(waitFor, p.Name())
			if timeout == 0 || d < timeout {
				timeout = d
			}
		default:
			return s.WithPlugin(p.Name()), 0, nil
		}
	}
	if len(waitFor) > 0 {
		return NewStatus(Wait), timeout, waitFor
	}
	return nil, 0, nil
}

// RunPreBind runs PreBind plugins.
func (f *Framework) RunPreBind(ctx context.Context, state *CycleState, pod *corev1.Pod, node string) *Status {
	for _, p := range f.PreBind {
		if s := p.PreBind(ctx, state, pod, node); !s.IsSuccess() {
			return s.WithPlugin(p.Name())
		}
	}
	return nil
}

// RunBind runs Bind plugins until one does not Skip.
func (f *Framework) RunBind(ctx context.Context, state *CycleState, pod *corev1.Pod, node string) *Status {
	for _, p := range f.Bind {
		s := p.Bind(ctx, state, pod, node)
		if s.IsSkip() {
			continue
		}
		return s.WithPlugin(p.Name())
	}
	return NewStatus(Error, "no bind plugin bound the pod")
}

// RunPostBind tells PostBind plugins.
func (f *Framework) RunPostBind(ctx context.Context, state *CycleState, pod *corev1.Pod, node string) {
	for _, p := range f.PostBind {
		p.PostBind(ctx, state, pod, node)
	}
}

// HasPostFilter reports whether preemption or another PostFilter is on.
func (f *Framework) HasPostFilter() bool { return len(f.PostFilter) > 0 }
