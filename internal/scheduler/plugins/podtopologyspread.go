package plugins

import (
	"context"
	"fmt"
	"math"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"
	configv1 "k8s.io/kube-scheduler/config/v1"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

// PodTopologySpread enforces DoNotSchedule spread constraints and scores
// ScheduleAnyway ones; pods without constraints get the cluster defaults
// over the Services and controllers that select them.
type PodTopologySpread struct {
	h        framework.Handle
	defaults []corev1.TopologySpreadConstraint
	// system marks upstream's built-in defaults.
	system bool
}

var (
	_ framework.PreFilterPlugin = (*PodTopologySpread)(nil)
	_ framework.FilterPlugin    = (*PodTopologySpread)(nil)
	_ framework.PreScorePlugin  = (*PodTopologySpread)(nil)
	_ framework.ScorePlugin     = (*PodTopologySpread)(nil)
)

// Topology spread rejections.
const (
	ErrReasonSpread             = "node(s) didn't match pod topology spread constraints"
	ErrReasonSpreadMissingLabel = "node(s) didn't match pod topology spread constraints (missing required label)"
)

// systemDefaultConstraints are upstream's defaults for pods without
// constraints of their own.
var systemDefaultConstraints = []corev1.TopologySpreadConstraint{
	{TopologyKey: corev1.LabelHostname, WhenUnsatisfiable: corev1.ScheduleAnyway, MaxSkew: 3},
	{TopologyKey: corev1.LabelTopologyZone, WhenUnsatisfiable: corev1.ScheduleAnyway, MaxSkew: 5},
}

// NewPodTopologySpread builds the plugin.
func NewPodTopologySpread(h framework.Handle, args *configv1.PodTopologySpreadArgs) (*PodTopologySpread, error) {
	p := &PodTopologySpread{h: h, defaults: systemDefaultConstraints, system: true}
	if args == nil {
		return p, nil
	}
	switch args.DefaultingType {
	case "", configv1.SystemDefaulting:
		if len(args.DefaultConstraints) > 0 {
			return nil, fmt.Errorf("defaultConstraints: Invalid value: when defaultingType is System, defaultConstraints must be empty")
		}
	case configv1.ListDefaulting:
		p.defaults, p.system = args.DefaultConstraints, false
		for i, c := range args.DefaultConstraints {
			if c.LabelSelector != nil {
				return nil, fmt.Errorf("defaultConstraints[%d].labelSelector: Forbidden: constraint must not define a selector, as they deduced for each pod", i)
			}
			if c.MaxSkew <= 0 {
				return nil, fmt.Errorf("defaultConstraints[%d].maxSkew: Invalid value: %d: must be greater than zero", i, c.MaxSkew)
			}
			if c.TopologyKey == "" {
				return nil, fmt.Errorf("defaultConstraints[%d].topologyKey: Required value", i)
			}
		}
	default:
		return nil, fmt.Errorf("defaultingType: Unsupported value: %q: supported values: \"System\", \"List\"", args.DefaultingType)
	}
	return p, nil
}

// Name implements Plugin.
func (*PodTopologySpread) Name() string { return PodTopologySpreadName }

type spreadConstraint struct {
	maxSkew       int32
	key           string
	selector      labels.Selector
	minDomains    int32
	honorAffinity bool
	honorTaints   bool
}

// constraints returns the pod's constraints of one kind, or the defaults
// when the pod has none of either kind.
func (p *PodTopologySpread) constraints(pod *corev1.Pod, when corev1.UnsatisfiableConstraintAction) ([]spreadConstraint, error) {
	list := pod.Spec.TopologySpreadConstraints
	var defaultSel labels.Selector
	if len(list) == 0 {
		list = p.defaults
		if len(list) == 0 {
			return nil, nil
		}
		defaultSel = p.defaultSelector(pod)
		if defaultSel.Empty() {
			return nil, nil
		}
	}
	var out []spreadConstraint
	for _, c := range list {
		if c.WhenUnsatisfiable != when {
			continue
		}
		sel := defaultSel
		if sel == nil {
			var err error
			if sel, err = metav1.LabelSelectorAsSelector(c.LabelSelector); err != nil {
				return nil, fmt.Errorf("topologySpreadConstraints labelSelector: %w", err)
			}
			for _, k := range c.MatchLabelKeys {
				if v, ok := pod.Labels[k]; ok {
					r, err := labels.NewRequirement(k, selection.In, []string{v})
					if err != nil {
						return nil, fmt.Errorf("matchLabelKeys %q: %w", k, err)
					}
					sel = sel.Add(*r)
				}
			}
		}
		sc := spreadConstraint{maxSkew: c.MaxSkew, key: c.TopologyKey, selector: sel, minDomains: 1, honorAffinity: true}
		if c.MinDomains != nil {
			sc.minDomains = *c.MinDomains
		}
		if c.NodeAffinityPolicy != nil && *c.NodeAffinityPolicy == corev1.NodeInclusionPolicyIgnore {
			sc.honorAffinity = false
		}
		if c.NodeTaintsPolicy != nil && *c.NodeTaintsPolicy == corev1.NodeInclusionPolicyHonor {
			sc.honorTaints = true
		}
		out = append(out, sc)
	}
	return out, nil
}

// defaultSelector merges the selectors of the Services, replication
// controllers, ReplicaSets and StatefulSets that select pod.
func (p *PodTopologySpread) defaultSelector(pod *corev1.Pod) labels.Selector {
	l := p.h.Listers()
	set := labels.Set{}
	sel := labels.NewSelector()
	podLabels := labels.Set(pod.Labels)
	if l.Services != nil {
		svcs, _ := l.Services.Services(pod.Namespace).List(labels.Everything())
		for _, s := range svcs {
			if len(s.Spec.Selector) > 0 && labels.SelectorFromSet(s.Spec.Selector).Matches(podLabels) {
				for k, v := range s.Spec.Selector {
					set[k] = v
				}
			}
		}
	}
	if l.ReplicationControllers != nil {
		rcs, _ := l.ReplicationControllers.ReplicationControllers(pod.Namespace).List(labels.Everything())
		for _, rc := range rcs {
			if len(rc.Spec.Selector) > 0 && labels.SelectorFromSet(rc.Spec.Selector).Matches(podLabels) {
				for k, v := range rc.Spec.Selector {
					set[k] = v
				}
			}
		}
	}
	addSel := func(ls *metav1.LabelSelector) {
		s, err := metav1.LabelSelectorAsSelector(ls)
		if err != nil || s.Empty() || !s.Matches(podLabels) {
			return
		}
		reqs, _ := s.Requirements()
		sel = sel.Add(reqs...)
	}
	if l.ReplicaSets != nil {
		rss, _ := l.ReplicaSets.ReplicaSets(pod.Namespace).List(labels.Everything())
		for _, rs := range rss {
			addSel(rs.Spec.Selector)
		}
	}
	if l.StatefulSets != nil {
		sss, _ := l.StatefulSets.StatefulSets(pod.Namespace).List(labels.Everything())
		for _, ss := range sss {
			addSel(ss.Spec.Selector)
		}
	}
	reqs, _ := labels.SelectorFromSet(set).Requirements()
	return sel.Add(reqs...)
}

// eligible reports whether node counts for constraint c under its node
// inclusion policies.
func eligible(c *spreadConstraint, pod *corev1.Pod, req nodeaffinity.RequiredNodeAffinity, node *corev1.Node) bool {
	if c.honorAffinity {
		if ok, _ := req.Match(node); !ok {
			return false
		}
	}
	if c.honorTaints {
		if _, untolerated := corev1helpers.FindMatchingUntoleratedTaint(klog.Background(), node.Spec.Taints, pod.Spec.Tolerations, noScheduleOrExecute, false); untolerated {
			return false
		}
	}
	return true
}

func hasKeys(node *corev1.Node, cs []spreadConstraint) bool {
	for _, c := range cs {
		if _, ok := node.Labels[c.key]; !ok {
			return false
		}
	}
	return true
}

// countMatching counts pods on node in namespace ns matching sel that are
// not terminating.
func countMatching(pods []*framework.PodInfo, ns string, sel labels.Selector) int {
	n := 0
	for _, p := range pods {
		if p.Pod.Namespace == ns && p.Pod.DeletionTimestamp == nil && sel.Matches(labels.Set(p.Pod.Labels)) {
			n++
		}
	}
	return n
}

type spreadState struct {
	constraints []spreadConstraint
	// counts[j] maps constraint j's domains to matching pods; a domain
	// with none may be missing. domains[j] is how many domains it has.
	counts  []map[string]int
	domains []int
	minimum []int
	pod     *corev1.Pod
	req     nodeaffinity.RequiredNodeAffinity
}

func (s *spreadState) Clone() framework.StateData {
	c := &spreadState{constraints: s.constraints, pod: s.pod, req: s.req, minimum: append([]int(nil), s.minimum...), domains: s.domains}
	for _, m := range s.counts {
		cm := make(map[string]int, len(m))
		for k, v := range m {
			cm[k] = v
		}
		c.counts = append(c.counts, cm)
	}
	return c
}

func (s *spreadState) recomputeMinimum() {
	for i, m := range s.counts {
		if len(m) < s.domains[i] {
			s.minimum[i] = 0 // a domain without matching pods
			continue
		}
		lo := math.MaxInt
		for _, v := range m {
			lo = min(lo, v)
		}
		if lo == math.MaxInt {
			lo = 0
		}
		s.minimum[i] = lo
	}
}

const spreadKey framework.StateKey = "PreFilter" + PodTopologySpreadName

// hasRequiredNodeAffinity reports a nodeSelector or required node affinity.
func hasRequiredNodeAffinity(pod *corev1.Pod) bool {
	if len(pod.Spec.NodeSelector) > 0 {
		return true
	}
	a := pod.Spec.Affinity
	return a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil
}

// spreadNodes decides which nodes count for a pod's constraints.
type spreadNodes struct {
	pod *corev1.Pod
	req nodeaffinity.RequiredNodeAffinity
	cs  []spreadConstraint
	// filtered is set when a node inclusion policy applies, so that
	// eligibility must be checked node by node.
	filtered bool
	memo     map[string][]bool
	// anyKeys lets a node count for a constraint whose key it carries
	// without carrying the others' (scoring under the system defaults).
	anyKeys bool
}

func newSpreadNodes(pod *corev1.Pod, req nodeaffinity.RequiredNodeAffinity, cs []spreadConstraint) *spreadNodes {
	sn := &spreadNodes{pod: pod, req: req, cs: cs}
	affinity := hasRequiredNodeAffinity(pod)
	for j := range cs {
		if cs[j].honorTaints || cs[j].honorAffinity && affinity {
			sn.filtered = true
		}
	}
	if sn.filtered {
		sn.memo = map[string][]bool{}
	}
	return sn
}

// counts reports whether node n counts for constraint j: it carries every
// constraint's key and passes j's inclusion policies.
func (sn *spreadNodes) counts(n *corev1.Node, j int) bool {
	if sn.anyKeys {
		if _, ok := n.Labels[sn.cs[j].key]; !ok {
			return false
		}
	} else if !hasKeys(n, sn.cs) {
		return false
	}
	if !sn.filtered {
		return true
	}
	e, ok := sn.memo[n.Name]
	if !ok {
		e = make([]bool, len(sn.cs))
		for i := range sn.cs {
			e[i] = eligible(&sn.cs[i], sn.pod, sn.req, n)
		}
		sn.memo[n.Name] = e
	}
	return e[j]
}

// domains returns each constraint's domains over the nodes that count:
// memoized in the snapshot unless an inclusion policy filters nodes.
func (sn *spreadNodes) domains(snap *framework.Snapshot) []map[string]struct{} {
	keys := make([]string, len(sn.cs))
	for j := range sn.cs {
		keys[j] = sn.cs[j].key
	}
	if !sn.filtered {
		return snap.TopologyDomains(keys)
	}
	out := make([]map[string]struct{}, len(sn.cs))
	for j := range out {
		out[j] = map[string]struct{}{}
	}
	for _, ni := range snap.NodeInfoList {
		n := ni.Node()
		for j := range sn.cs {
			if sn.counts(n, j) {
				out[j][n.Labels[keys[j]]] = struct{}{}
			}
		}
	}
	return out
}

// countPods counts, per domain of constraint j, the pods in namespace ns
// its selector matches that are not terminating, on nodes that count and
// (when keep is set) in a domain keep accepts.
func (sn *spreadNodes) countPods(snap *framework.Snapshot, ns string, j int, keep func(string) bool) map[string]int {
	c := &sn.cs[j]
	out := map[string]int{}
	snap.Index.Each(ns, c.selector, func(ep *framework.PodInfo, node string) {
		ni := snap.NodeInfoMap[node]
		if ep.Pod.DeletionTimestamp != nil || ni == nil || !sn.counts(ni.Node(), j) {
			return
		}
		v := ni.Node().Labels[c.key]
		if keep == nil || keep(v) {
			out[v]++
		}
	})
	return out
}

// PreFilter counts matching pods per domain for each hard constraint,
// visiting only the pods the constraints select.
func (p *PodTopologySpread) PreFilter(_ context.Context, state *framework.CycleState, pod *framework.PodInfo, _ []*framework.NodeInfo) (*framework.PreFilterResult, *framework.Status) {
	cs, err := p.constraints(pod.Pod, corev1.DoNotSchedule)
	if err != nil {
		return nil, framework.NewStatus(framework.UnschedulableAndUnresolvable, err.Error())
	}
	if len(cs) == 0 {
		return nil, framework.NewStatus(framework.Skip)
	}
	st := &spreadState{constraints: cs, pod: pod.Pod, req: nodeaffinity.GetRequiredNodeAffinity(pod.Pod), minimum: make([]int, len(cs)), domains: make([]int, len(cs))}
	snap := p.h.Snapshot()
	sn := newSpreadNodes(pod.Pod, st.req, cs)
	for j, d := range sn.domains(snap) {
		st.domains[j] = len(d)
		st.counts = append(st.counts, sn.countPods(snap, pod.Pod.Namespace, j, nil))
	}
	st.recomputeMinimum()
	state.Write(spreadKey, st)
	return nil, nil
}

// PreFilterExtensions implements PreFilterPlugin.
func (p *PodTopologySpread) PreFilterExtensions() framework.PreFilterExtensions { return p }

func (p *PodTopologySpread) update(state *framework.CycleState, other *framework.PodInfo, node *framework.NodeInfo, delta int) *framework.Status {
	d, ok := state.Read(spreadKey)
	if !ok {
		return nil
	}
	st := d.(*spreadState)
	n := node.Node()
	if !hasKeys(n, st.constraints) || other.Pod.Namespace != st.pod.Namespace {
		return nil
	}
	for j := range st.constraints {
		c := &st.constraints[j]
		if eligible(c, st.pod, st.req, n) && c.selector.Matches(labels.Set(other.Pod.Labels)) {
			st.counts[j][n.Labels[c.key]] += delta
		}
	}
	st.recomputeMinimum()
	return nil
}

// AddPod implements PreFilterExtensions.
func (p *PodTopologySpread) AddPod(_ context.Context, state *framework.CycleState, _ *framework.PodInfo, add *framework.PodInfo, node *framework.NodeInfo) *framework.Status {
	return p.update(state, add, node, 1)
}

// RemovePod implements PreFilterExtensions.
func (p *PodTopologySpread) RemovePod(_ context.Context, state *framework.CycleState, _ *framework.PodInfo, remove *framework.PodInfo, node *framework.NodeInfo) *framework.Status {
	return p.update(state, remove, node, -1)
}

// Filter rejects a node whose domain would exceed maxSkew.
func (p *PodTopologySpread) Filter(_ context.Context, state *framework.CycleState, pod *framework.PodInfo, node *framework.NodeInfo) *framework.Status {
	d, ok := state.Read(spreadKey)
	if !ok {
		return framework.AsStatus(errNoState(PodTopologySpreadName))
	}
	st := d.(*spreadState)
	podLabels := labels.Set(pod.Pod.Labels)
	for j := range st.constraints {
		c := &st.constraints[j]
		v, ok := node.Node().Labels[c.key]
		if !ok {
			return framework.NewStatus(framework.UnschedulableAndUnresolvable, ErrReasonSpreadMissingLabel)
		}
		self := 0
		if c.selector.Matches(podLabels) {
			self = 1
		}
		minimum := st.minimum[j]
		if int32(st.domains[j]) < c.minDomains {
			minimum = 0
		}
		if st.counts[j][v]+self-minimum > int(c.maxSkew) {
			return framework.NewStatus(framework.Unschedulable, ErrReasonSpread)
		}
	}
	return nil
}

// EventsToRegister implements EnqueueExtensions.
func (*PodTopologySpread) EventsToRegister() []framework.ClusterEvent {
	return []framework.ClusterEvent{
		events(framework.PodResource, framework.All),
		events(framework.NodeResource, framework.Add|framework.Delete|framework.UpdateNodeLabel|framework.UpdateNodeTaint),
	}
}

type spreadScoreState struct {
	constraints []spreadConstraint
	counts      []map[string]int
	weights     []float64
	ignored     map[string]bool
}

func (s *spreadScoreState) Clone() framework.StateData { return s }

const spreadScoreKey framework.StateKey = "PreScore" + PodTopologySpreadName

// PreScore counts matching pods in the domains of the feasible nodes for
// each soft constraint.
func (p *PodTopologySpread) PreScore(ctx context.Context, state *framework.CycleState, pod *framework.PodInfo, filtered []*framework.NodeInfo) *framework.Status {
	cs, err := p.constraints(pod.Pod, corev1.ScheduleAnyway)
	if err != nil {
		return framework.AsStatus(err)
	}
	if len(cs) == 0 {
		return framework.NewStatus(framework.Skip)
	}
	st := &spreadScoreState{constraints: cs, ignored: map[string]bool{}}
	domains := make([]map[string]bool, len(cs))
	for j := range cs {
		domains[j] = map[string]bool{}
	}
	for _, ni := range filtered {
		n := ni.Node()
		// With the system defaults a node without zone labels is still
		// scored on the hostname constraint, as upstream.
		if !p.system && !hasKeys(n, cs) {
			st.ignored[n.Name] = true
			continue
		}
		for j := range cs {
			if v, ok := n.Labels[cs[j].key]; ok {
				domains[j][v] = true
			}
		}
	}
	for j := range cs {
		st.weights = append(st.weights, math.Log(float64(len(domains[j])+2)))
		st.counts = append(st.counts, map[string]int{})
	}
	snap := p.h.Snapshot()
	sn := newSpreadNodes(pod.Pod, nodeaffinity.GetRequiredNodeAffinity(pod.Pod), cs)
	// As upstream, pods scored under the system defaults are counted on
	// nodes that carry the constraint's own key.
	sn.anyKeys = p.system && len(pod.Pod.Spec.TopologySpreadConstraints) == 0
	for j := range cs {
		if cs[j].key == corev1.LabelHostname {
			continue // counted per node in Score
		}
		st.counts[j] = sn.countPods(snap, pod.Pod.Namespace, j, func(v string) bool { return domains[j][v] })
	}
	state.Write(spreadScoreKey, st)
	return nil
}

// invalidScore marks nodes without the constraints' topology labels.
const invalidScore = -1

// Score sums, per constraint, the matching pods in the node's domain
// weighted by the number of domains (lower is better).
func (p *PodTopologySpread) Score(_ context.Context, state *framework.CycleState, pod *framework.PodInfo, node *framework.NodeInfo) (int64, *framework.Status) {
	d, ok := state.Read(spreadScoreKey)
	if !ok {
		return 0, nil
	}
	st := d.(*spreadScoreState)
	n := node.Node()
	if st.ignored[n.Name] {
		return invalidScore, nil
	}
	var score float64
	for j := range st.constraints {
		c := &st.constraints[j]
		v, ok := n.Labels[c.key]
		if !ok {
			continue
		}
		var cnt int
		if c.key == corev1.LabelHostname {
			cnt = countMatching(node.Pods, pod.Pod.Namespace, c.selector)
		} else {
			cnt = st.counts[j][v]
		}
		score += float64(cnt)*st.weights[j] + float64(c.maxSkew-1)
	}
	return int64(math.Round(score)), nil
}

// ScoreExtensions implements ScorePlugin.
func (p *PodTopologySpread) ScoreExtensions() framework.ScoreExtensions { return p }

// NormalizeScore reverses the scores onto 0–100 (fewer matches is better).
func (p *PodTopologySpread) NormalizeScore(_ context.Context, state *framework.CycleState, _ *framework.PodInfo, scores []framework.NodeScore) *framework.Status {
	if _, ok := state.Read(spreadScoreKey); !ok {
		return nil
	}
	lo, hi := int64(math.MaxInt64), int64(0)
	for _, s := range scores {
		if s.Score == invalidScore {
			continue
		}
		lo, hi = min(lo, s.Score), max(hi, s.Score)
	}
	for i := range scores {
		switch {
		case scores[i].Score == invalidScore:
			scores[i].Score = 0
		case hi == 0:
			scores[i].Score = framework.MaxNodeScore
		default:
			scores[i].Score = framework.MaxNodeScore * (hi + lo - scores[i].Score) / hi
		}
	}
	return nil
}
