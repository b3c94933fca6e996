package plugins

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"
	configv1 "k8s.io/kube-scheduler/config/v1"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

// TaintToleration rejects nodes with NoSchedule/NoExecute taints the pod
// does not tolerate, and prefers nodes with fewer untolerated
// PreferNoSchedule taints.
type TaintToleration struct{}

var (
	_ framework.FilterPlugin = TaintToleration{}
	_ framework.ScorePlugin  = TaintToleration{}
)

// Name implements Plugin.
func (TaintToleration) Name() string { return TaintTolerationName }

func noScheduleOrExecute(t *corev1.Taint) bool {
	return t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute
}

// Filter implements FilterPlugin.
func (TaintToleration) Filter(_ context.Context, _ *framework.CycleState, pod *framework.PodInfo, node *framework.NodeInfo) *framework.Status {
	taints := node.Taints()
	if len(taints) == 0 {
		return nil
	}
	taint, untolerated := corev1helpers.FindMatchingUntoleratedTaint(klog.Background(), taints, pod.Pod.Spec.Tolerations, noScheduleOrExecute, false)
	if !untolerated {
		return nil
	}
	return framework.NewStatus(framework.UnschedulableAndUnresolvable, fmt.Sprintf("node(s) had untolerated taint {%s: %s}", taint.Key, taint.Value))
}

// Score counts untolerated PreferNoSchedule taints (fewer is better).
func (TaintToleration) Score(_ context.Context, _ *framework.CycleState, pod *framework.PodInfo, node *framework.NodeInfo) (int64, *framework.Status) {
	var n int64
	taints := node.Taints()
	for i := range taints {
		t := &taints[i]
		if t.Effect != corev1.TaintEffectPreferNoSchedule {
			continue
		}
		ok := false
		for _, tol := range pod.Pod.Spec.Tolerations {
			if (tol.Effect == "" || tol.Effect == corev1.TaintEffectPreferNoSchedule) && tol.ToleratesTaint(klog.Background(), t, false) {
				ok = true
				break
			}
		}
		if !ok {
			n++
		}
	}
	return n, nil
}

// ScoreExtensions implements ScorePlugin.
func (p TaintToleration) ScoreExtensions() framework.ScoreExtensions { return p }

// NormalizeScore reverses the counts onto 0–100.
func (TaintToleration) NormalizeScore(_ context.Context, _ *framework.CycleState, _ *framework.PodInfo, scores []framework.NodeScore) *framework.Status {
	DefaultNormalizeScore(framework.MaxNodeScore, true, scores)
	return nil
}

// EventsToRegister implements EnqueueExtensions.
func (TaintToleration) EventsToRegister() []framework.ClusterEvent {
	return []framework.ClusterEvent{events(framework.NodeResource, framework.Add|framework.UpdateNodeTaint)}
}

// NodeAffinity applies nodeSelector, required node affinity and the
// profile's added affinity as a filter, and preferred terms as a score.
type NodeAffinity struct {
	added          *nodeaffinity.NodeSelector
	addedPreferred *nodeaffinity.PreferredSchedulingTerms
}

var (
	_ framework.PreFilterPlugin = (*NodeAffinity)(nil)
	_ framework.FilterPlugin    = (*NodeAffinity)(nil)
	_ framework.ScorePlugin     = (*NodeAffinity)(nil)
)

// Node affinity rejections.
const (
	ErrReasonNodeAffinity = "node(s) didn't match Pod's node affinity/selector"
	ErrReasonEnforced     = "node(s) didn't match scheduler-enforced node affinity"
)

// NewNodeAffinity builds the plugin from its arguments.
func NewNodeAffinity(args *configv1.NodeAffinityArgs) (*NodeAffinity, error) {
	p := &NodeAffinity{}
	if args == nil || args.AddedAffinity == nil {
		return p, nil
	}
	var err error
	if ns := args.AddedAffinity.RequiredDuringSchedulingIgnoredDuringExecution; ns != nil {
		if p.added, err = nodeaffinity.NewNodeSelector(ns); err != nil {
			return nil, fmt.Errorf("addedAffinity: %w", err)
		}
	}
	if terms := args.AddedAffinity.PreferredDuringSchedulingIgnoredDuringExecution; len(terms) > 0 {
		if p.addedPreferred, err = nodeaffinity.NewPreferredSchedulingTerms(terms); err != nil {
			return nil, fmt.Errorf("addedAffinity: %w", err)
		}
	}
	return p, nil
}

// Name implements Plugin.
func (*NodeAffinity) Name() string { return NodeAffinityName }

type nodeAffinityState struct {
	required nodeaffinity.RequiredNodeAffinity
}

func (s *nodeAffinityState) Clone() framework.StateData { return s }

const nodeAffinityKey framework.StateKey = "PreFilter" + NodeAffinityName

// PreFilter parses the pod's requirement once, and narrows the nodes when
// the terms only name nodes by metadata.name.
func (p *NodeAffinity) PreFilter(_ context.Context, state *framework.CycleState, pod *framework.PodInfo, _ []*framework.NodeInfo) (*framework.PreFilterResult, *framework.Status) {
	spec := &pod.Pod.Spec
	var required *corev1.NodeSelector
	if spec.Affinity != nil && spec.Affinity.NodeAffinity != nil {
		required = spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution
	}
	if len(spec.NodeSelector) == 0 && required == nil && p.added == nil {
		return nil, framework.NewStatus(framework.Skip)
	}
	state.Write(nodeAffinityKey, &nodeAffinityState{required: nodeaffinity.GetRequiredNodeAffinity(pod.Pod)})
	if required == nil {
		return nil, nil
	}
	// Only when every term is a metadata.name In requirement can the
	// node set be narrowed.
	names := sets.New[string]()
	for _, t := range required.NodeSelectorTerms {
		if len(t.MatchExpressions) > 0 || len(t.MatchFields) != 1 {
			return nil, nil
		}
		f := t.MatchFields[0]
		if f.Key != "metadata.name" || f.Operator != corev1.NodeSelectorOpIn {
			return nil, nil
		}
		names.Insert(f.Values...)
	}
	if names.Len() == 0 {
		return nil, nil
	}
	return &framework.PreFilterResult{NodeNames: names}, nil
}

// PreFilterExtensions implements PreFilterPlugin.
func (*NodeAffinity) PreFilterExtensions() framework.PreFilterExtensions { return nil }

// Filter implements FilterPlugin.
func (p *NodeAffinity) Filter(_ context.Context, state *framework.CycleState, pod *framework.PodInfo, node *framework.NodeInfo) *framework.Status {
	if p.added != nil && !p.added.Match(node.Node()) {
		return framework.NewStatus(framework.UnschedulableAndUnresolvable, ErrReasonEnforced)
	}
	d, ok := state.Read(nodeAffinityKey)
	var req nodeaffinity.RequiredNodeAffinity
	if ok {
		req = d.(*nodeAffinityState).required
	} else {
		req = nodeaffinity.GetRequiredNodeAffinity(pod.Pod)
	}
	if match, _ := req.Match(node.Node()); !match {
		return framework.NewStatus(framework.UnschedulableAndUnresolvable, ErrReasonNodeAffinity)
	}
	return nil
}

type nodeAffinityScoreState struct {
	preferred *nodeaffinity.PreferredSchedulingTerms
}

func (s *nodeAffinityScoreState) Clone() framework.StateData { return s }

const nodeAffinityScoreKey framework.StateKey = "PreScore" + NodeAffinityName

// PreScore parses the preferred terms once.
func (p *NodeAffinity) PreScore(_ context.Context, state *framework.CycleState, pod *framework.PodInfo, _ []*framework.NodeInfo) *framework.Status {
	a := pod.Pod.Spec.Affinity
	if (a == nil || a.NodeAffinity == nil || len(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution) == 0) && p.addedPreferred == nil {
		return framework.NewStatus(framework.Skip)
	}
	st := &nodeAffinityScoreState{}
	if a != nil && a.NodeAffinity != nil && len(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution) > 0 {
		terms, err := nodeaffinity.NewPreferredSchedulingTerms(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution)
		if err != nil {
			return framework.AsStatus(fmt.Errorf("parse preferred node affinity: %w", err))
		}
		st.preferred = terms
	}
	state.Write(nodeAffinityScoreKey, st)
	return nil
}

// Score sums the weights of matching preferred terms.
func (p *NodeAffinity) Score(_ context.Context, state *framework.CycleState, _ *framework.PodInfo, node *framework.NodeInfo) (int64, *framework.Status) {
	var s int64
	if p.addedPreferred != nil {
		s += p.addedPreferred.Score(node.Node())
	}
	if d, ok := state.Read(nodeAffinityScoreKey); ok && d.(*nodeAffinityScoreState).preferred != nil {
		s += d.(*nodeAffinityScoreState).preferred.Score(node.Node())
	}
	return s, nil
}

// ScoreExtensions implements ScorePlugin.
func (p *NodeAffinity) ScoreExtensions() framework.ScoreExtensions { return p }

// NormalizeScore scales so the best node gets 100.
func (*NodeAffinity) NormalizeScore(_ context.Context, _ *framework.CycleState, _ *framework.PodInfo, scores []framework.NodeScore) *framework.Status {
	DefaultNormalizeScore(framework.MaxNodeScore, false, scores)
	return nil
}

// EventsToRegister implements EnqueueExtensions.
func (*NodeAffinity) EventsToRegister() []framework.ClusterEvent {
	return []framework.ClusterEvent{events(framework.NodeResource, framework.Add|framework.UpdateNodeLabel)}
}
