package plugins

import (
	"context"

	"k8s.io/apimachinery/pkg/labels"
	configv1 "k8s.io/kube-scheduler/config/v1"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

// InterPodAffinity enforces required pod affinity and anti-affinity (the
// incoming pod's and the existing pods') and scores preferred terms.
type InterPodAffinity struct {
	h                     framework.Handle
	hardPodAffinityWeight int64
}

var (
	_ framework.PreFilterPlugin = (*InterPodAffinity)(nil)
	_ framework.FilterPlugin    = (*InterPodAffinity)(nil)
	_ framework.PreScorePlugin  = (*InterPodAffinity)(nil)
	_ framework.ScorePlugin     = (*InterPodAffinity)(nil)
)

// Inter-pod affinity rejections.
const (
	ErrReasonAffinityRulesNotMatch     = "node(s) didn't match pod affinity rules"
	ErrReasonAntiAffinityRulesNotMatch = "node(s) didn't match pod anti-affinity rules"
	ErrReasonExistingAntiAffinityRules = "node(s) didn't satisfy existing pods anti-affinity rules"
)

// NewInterPodAffinity builds the plugin.
func NewInterPodAffinity(h framework.Handle, args *configv1.InterPodAffinityArgs) *InterPodAffinity {
	p := &InterPodAffinity{h: h, hardPodAffinityWeight: 1}
	if args != nil && args.HardPodAffinityWeight != nil {
		p.hardPodAffinityWeight = int64(*args.HardPodAffinityWeight)
	}
	return p
}

// Name implements Plugin.
func (*InterPodAffinity) Name() string { return InterPodAffinityName }

// topologyPair is a topology key and one of its values.
type topologyPair struct{ key, value string }

type topologyCounts map[topologyPair]int64

func (c topologyCounts) add(terms []framework.AffinityTerm, nodeLabels map[string]string, n int64) {
	for i := range terms {
		if v, ok := nodeLabels[terms[i].TopologyKey]; ok {
			p := topologyPair{terms[i].TopologyKey, v}
			c[p] += n
			if c[p] == 0 {
				delete(c, p)
			}
		}
	}
}

func (c topologyCounts) clone() topologyCounts {
	out := make(topologyCounts, len(c))
	for k, v := range c {
		out[k] = v
	}
	return out
}

type interPodState struct {
	// existingAnti counts existing pods whose required anti-affinity
	// rejects the incoming pod, per topology pair.
	existingAnti topologyCounts
	// affinity and anti count existing pods matching the incoming pod's
	// required affinity (all terms) and anti-affinity terms.
	affinity topologyCounts
	anti     topologyCounts
	// pod is the incoming pod with namespace selectors resolved.
	pod      *framework.PodInfo
	nsLabels labels.Set
}

func (s *interPodState) Clone() framework.StateData {
	return &interPodState{existingAnti: s.existingAnti.clone(), affinity: s.affinity.clone(), anti: s.anti.clone(), pod: s.pod, nsLabels: s.nsLabels}
}

const interPodKey framework.StateKey = "PreFilter" + InterPodAffinityName

// resolveNamespaces turns each term's namespace selector into namespace
// names, as upstream does once per cycle.
func (p *InterPodAffinity) resolveNamespaces(pi *framework.PodInfo) *framework.PodInfo {
	needs := false
	for _, list := range [][]framework.AffinityTerm{pi.RequiredAffinity, pi.RequiredAntiAffinity} {
		for _, t := range list {
			needs = needs || t.NamespaceSelector != nil
		}
	}
	for _, list := range [][]framework.WeightedAffinityTerm{pi.PreferredAffinity, pi.PreferredAntiAffinity} {
		for _, t := range list {
			needs = needs || t.NamespaceSelector != nil
		}
	}
	if !needs || p.h.Listers().Namespaces == nil {
		return pi
	}
	nss, _ := p.h.Listers().Namespaces.List(labels.Everything())
	resolve := func(t framework.AffinityTerm) framework.AffinityTerm {
		if t.NamespaceSelector == nil {
			return t
		}
		out := t
		out.Namespaces = make(map[string]struct{}, len(t.Namespaces))
		for k := range t.Namespaces {
			out.Namespaces[k] = struct{}{}
		}
		for _, ns := range nss {
			if t.NamespaceSelector.Matches(labels.Set(ns.Labels)) {
				out.Namespaces[ns.Name] = struct{}{}
			}
		}
		out.NamespaceSelector = nil
		return out
	}
	c := *pi
	c.RequiredAffinity, c.RequiredAntiAffinity = nil, nil
	c.PreferredAffinity, c.PreferredAntiAffinity = nil, nil
	for _, t := range pi.RequiredAffinity {
		c.RequiredAffinity = append(c.RequiredAffinity, resolve(t))
	}
	for _, t := range pi.RequiredAntiAffinity {
		c.RequiredAntiAffinity = append(c.RequiredAntiAffinity, resolve(t))
	}
	for _, t := range pi.PreferredAffinity {
		c.PreferredAffinity = append(c.PreferredAffinity, framework.WeightedAffinityTerm{AffinityTerm: resolve(t.AffinityTerm), Weight: t.Weight})
	}
	for _, t := range pi.PreferredAntiAffinity {
		c.PreferredAntiAffinity = append(c.PreferredAntiAffinity, framework.WeightedAffinityTerm{AffinityTerm: resolve(t.AffinityTerm), Weight: t.Weight})
	}
	return &c
}

func matchesAll(terms []framework.AffinityTerm, pod *framework.PodInfo, nsLabels labels.Set) bool {
	if len(terms) == 0 {
		return false
	}
	for i := range terms {
		if !terms[i].Matches(pod.Pod, nsLabels) {
			return false
		}
	}
	return true
}

// existingAntiFor counts what existing pod ep on node contributes to
// existingAnti against the incoming pod (the what-if updates of
// preemption; PreFilter reads the index's term groups instead).
func existingAntiFor(c topologyCounts, ep *framework.PodInfo, incoming *framework.PodInfo, nsLabels labels.Set, nodeLabels map[string]string, n int64) {
	for i := range ep.RequiredAntiAffinity {
		t := &ep.RequiredAntiAffinity[i]
		if t.Matches(incoming.Pod, nsLabels) {
			if v, ok := nodeLabels[t.TopologyKey]; ok {
				pair := topologyPair{t.TopologyKey, v}
				c[pair] += n
				if c[pair] == 0 {
					delete(c, pair)
				}
			}
		}
	}
}

// incomingFor counts what existing pod ep on node contributes to the
// incoming pod's affinity and anti-affinity counts.
func (p *InterPodAffinity) incomingFor(st *interPodState, ep *framework.PodInfo, nodeLabels map[string]string, n int64) {
	epNS := p.h.NamespaceLabels(ep.Pod.Namespace)
	if matchesAll(st.pod.RequiredAffinity, ep, epNS) {
		st.affinity.add(st.pod.RequiredAffinity, nodeLabels, n)
	}
	for i := range st.pod.RequiredAntiAffinity {
		t := &st.pod.RequiredAntiAffinity[i]
		if t.Matches(ep.Pod, epNS) {
			st.anti.add(st.pod.RequiredAntiAffinity[i:i+1], nodeLabels, n)
		}
	}
}

// termNamespaces lists the namespaces whose pods term t can select: its
// named namespaces and, with a namespace selector left unresolved, every
// namespace holding pods.
func (p *InterPodAffinity) termNamespaces(t *framework.AffinityTerm, idx *framework.PodIndex) []string {
	if t.NamespaceSelector != nil {
		return idx.Namespaces()
	}
	out := make([]string, 0, len(t.Namespaces))
	for ns := range t.Namespaces {
		out = append(out, ns)
	}
	return out
}

// eachMatch calls f for every pod in the snapshot that term t selects, with
// its node's labels.
func (p *InterPodAffinity) eachMatch(snap *framework.Snapshot, t *framework.AffinityTerm, f func(ep *framework.PodInfo, nodeLabels map[string]string)) {
	for _, ns := range p.termNamespaces(t, snap.Index) {
		var nsLabels labels.Set
		if t.NamespaceSelector != nil {
			nsLabels = p.h.NamespaceLabels(ns)
		}
		snap.Index.Each(ns, t.Selector, func(ep *framework.PodInfo, node string) {
			if ni := snap.NodeInfoMap[node]; ni != nil && t.Matches(ep.Pod, nsLabels) {
				f(ep, ni.Node().Labels)
			}
		})
	}
}

// PreFilter counts, per topology pair, the existing pods that matter to
// the incoming pod's required terms and whose own anti-affinity rejects it.
// Both come from the snapshot's pod index: the existing pods' identical
// anti-affinity terms are tested once per group, and only pods the
// incoming terms select are visited.
func (p *InterPodAffinity) PreFilter(_ context.Context, state *framework.CycleState, pod *framework.PodInfo, _ []*framework.NodeInfo) (*framework.PreFilterResult, *framework.Status) {
	if pod.ParseErr != nil {
		return nil, framework.NewStatus(framework.UnschedulableAndUnresolvable, pod.ParseErr.Error())
	}
	snap := p.h.Snapshot()
	st := &interPodState{existingAnti: topologyCounts{}, affinity: topologyCounts{}, anti: topologyCounts{}, pod: p.resolveNamespaces(pod), nsLabels: p.h.NamespaceLabels(pod.Pod.Namespace)}
	for _, g := range snap.Index.Anti {
		if g.Term.Matches(pod.Pod, st.nsLabels) {
			for pair, n := range g.Counts {
				st.existingAnti[topologyPair{pair.Key, pair.Value}] += n
			}
		}
	}
	if len(pod.RequiredAffinity) == 0 && len(pod.RequiredAntiAffinity) == 0 {
		if len(st.existingAnti) == 0 {
			return nil, framework.NewStatus(framework.Skip)
		}
		state.Write(interPodKey, st)
		return nil, nil
	}
	if len(st.pod.RequiredAffinity) > 0 {
		// A pod counts for affinity only when it matches every term, so
		// the first term's matches are the candidates.
		p.eachMatch(snap, &st.pod.RequiredAffinity[0], func(ep *framework.PodInfo, nodeLabels map[string]string) {
			if matchesAll(st.pod.RequiredAffinity, ep, p.h.NamespaceLabels(ep.Pod.Namespace)) {
				st.affinity.add(st.pod.RequiredAffinity, nodeLabels, 1)
			}
		})
	}
	for i := range st.pod.RequiredAntiAffinity {
		terms := st.pod.RequiredAntiAffinity[i : i+1]
		p.eachMatch(snap, &terms[0], func(_ *framework.PodInfo, nodeLabels map[string]string) {
			st.anti.add(terms, nodeLabels, 1)
		})
	}
	state.Write(interPodKey, st)
	return nil, nil
}

// PreFilterExtensions implements PreFilterPlugin.
func (p *InterPodAffinity) PreFilterExtensions() framework.PreFilterExtensions { return p }

func (p *InterPodAffinity) update(state *framework.CycleState, other *framework.PodInfo, node *framework.NodeInfo, n int64) *framework.Status {
	d, ok := state.Read(interPodKey)
	if !ok {
		return nil
	}
	st := d.(*interPodState)
	existingAntiFor(st.existingAnti, other, st.pod, st.nsLabels, node.Node().Labels, n)
	p.incomingFor(st, other, node.Node().Labels, n)
	return nil
}

// AddPod implements PreFilterExtensions.
func (p *InterPodAffinity) AddPod(_ context.Context, state *framework.CycleState, _ *framework.PodInfo, add *framework.PodInfo, node *framework.NodeInfo) *framework.Status {
	return p.update(state, add, node, 1)
}

// RemovePod implements PreFilterExtensions.
func (p *InterPodAffinity) RemovePod(_ context.Context, state *framework.CycleState, _ *framework.PodInfo, remove *framework.PodInfo, node *framework.NodeInfo) *framework.Status {
	return p.update(state, remove, node, -1)
}

// Filter implements FilterPlugin.
func (p *InterPodAffinity) Filter(_ context.Context, state *framework.CycleState, pod *framework.PodInfo, node *framework.NodeInfo) *framework.Status {
	d, ok := state.Read(interPodKey)
	if !ok {
		return framework.AsStatus(errNoState(InterPodAffinityName))
	}
	st := d.(*interPodState)
	labels := node.Node().Labels
	// Required affinity: every term's topology domain must hold a match,
	// except for the first pod of a group whose terms match itself.
	if len(st.pod.RequiredAffinity) > 0 {
		satisfied := true
		for _, t := range st.pod.RequiredAffinity {
			v, ok := labels[t.TopologyKey]
			if !ok || st.affinity[topologyPair{t.TopologyKey, v}] <= 0 {
				satisfied = false
				break
			}
		}
		if !satisfied {
			if len(st.affinity) > 0 || !matchesAll(st.pod.RequiredAffinity, st.pod, st.nsLabels) || !hasAllKeys(labels, st.pod.RequiredAffinity) {
				return framework.NewStatus(framework.UnschedulableAndUnresolvable, ErrReasonAffinityRulesNotMatch)
			}
		}
	}
	for _, t := range st.pod.RequiredAntiAffinity {
		if v, ok := labels[t.TopologyKey]; ok && st.anti[topologyPair{t.TopologyKey, v}] > 0 {
			return framework.NewStatus(framework.Unschedulable, ErrReasonAntiAffinityRulesNotMatch)
		}
	}
	if len(st.existingAnti) > 0 {
		for k, v := range labels {
			if st.existingAnti[topologyPair{k, v}] > 0 {
				return framework.NewStatus(framework.Unschedulable, ErrReasonExistingAntiAffinityRules)
			}
		}
	}
	return nil
}

func hasAllKeys(labels map[string]string, terms []framework.AffinityTerm) bool {
	for _, t := range terms {
		if _, ok := labels[t.TopologyKey]; !ok {
			return false
		}
	}
	return true
}

// EventsToRegister implements EnqueueExtensions.
func (*InterPodAffinity) EventsToRegister() []framework.ClusterEvent {
	return []framework.ClusterEvent{
		events(framework.PodResource, framework.All),
		events(framework.NodeResource, framework.Add|framework.UpdateNodeLabel),
		events(framework.NamespaceResource, framework.Add|framework.Update),
	}
}

type interPodScoreState struct {
	scores map[string]map[string]int64 // topology key → value → score
}

func (s *interPodScoreState) Clone() framework.StateData { return s }

const interPodScoreKey framework.StateKey = "PreScore" + InterPodAffinityName

// PreScore sums, per topology domain, the weights of preferred terms (the
// incoming pod's and the existing pods') that the placement would satisfy,
// from the snapshot's pod index.
func (p *InterPodAffinity) PreScore(_ context.Context, state *framework.CycleState, pod *framework.PodInfo, _ []*framework.NodeInfo) *framework.Status {
	snap := p.h.Snapshot()
	idx := snap.Index
	hasPreferred := len(pod.PreferredAffinity)+len(pod.PreferredAntiAffinity) > 0
	if !hasPreferred && len(idx.Preferred) == 0 && (len(idx.HardAffinity) == 0 || p.hardPodAffinityWeight == 0) {
		return framework.NewStatus(framework.Skip)
	}
	st := &interPodScoreState{scores: map[string]map[string]int64{}}
	add := func(key, value string, w int64) {
		if w == 0 {
			return
		}
		if st.scores[key] == nil {
			st.scores[key] = map[string]int64{}
		}
		st.scores[key][value] += w
	}
	incoming := p.resolveNamespaces(pod)
	for _, list := range []struct {
		terms []framework.WeightedAffinityTerm
		sign  int64
	}{{incoming.PreferredAffinity, 1}, {incoming.PreferredAntiAffinity, -1}} {
		for i := range list.terms {
			t := &list.terms[i]
			w := list.sign * int64(t.Weight)
			p.eachMatch(snap, &t.AffinityTerm, func(_ *framework.PodInfo, nodeLabels map[string]string) {
				if v, ok := nodeLabels[t.TopologyKey]; ok {
					add(t.TopologyKey, v, w)
				}
			})
		}
	}
	nsLabels := p.h.NamespaceLabels(pod.Pod.Namespace)
	groups := func(m map[string]*framework.TermGroup, factor int64) {
		for _, g := range m {
			if g.Term.Matches(pod.Pod, nsLabels) {
				for pair, n := range g.Counts {
					add(pair.Key, pair.Value, factor*n)
				}
			}
		}
	}
	if p.hardPodAffinityWeight > 0 {
		groups(idx.HardAffinity, p.hardPodAffinityWeight)
	}
	groups(idx.Preferred, 1)
	if len(st.scores) == 0 {
		return framework.NewStatus(framework.Skip)
	}
	state.Write(interPodScoreKey, st)
	return nil
}

// Score adds up the domain scores of the node's topology labels.
func (p *InterPodAffinity) Score(_ context.Context, state *framework.CycleState, _ *framework.PodInfo, node *framework.NodeInfo) (int64, *framework.Status) {
	d, ok := state.Read(interPodScoreKey)
	if !ok {
		return 0, nil
	}
	var s int64
	for key, vs := range d.(*interPodScoreState).scores {
		if v, ok := node.Node().Labels[key]; ok {
			s += vs[v]
		}
	}
	return s, nil
}

// ScoreExtensions implements ScorePlugin.
func (p *InterPodAffinity) ScoreExtensions() framework.ScoreExtensions { return p }

// NormalizeScore maps [min, max] onto [0, 100].
func (*InterPodAffinity) NormalizeScore(_ context.Context, _ *framework.CycleState, _ *framework.PodInfo, scores []framework.NodeScore) *framework.Status {
	minMaxNormalize(scores)
	return nil
}

func minMaxNormalize(scores []framework.NodeScore) {
	if len(scores) == 0 {
		return
	}
	lo, hi := scores[0].Score, scores[0].Score
	for _, s := range scores {
		lo, hi = min(lo, s.Score), max(hi, s.Score)
	}
	for i := range scores {
		if hi > lo {
			scores[i].Score = framework.MaxNodeScore * (scores[i].Score - lo) / (hi - lo)
		} else {
			scores[i].Score = 0
		}
	}
}
