package plugins

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	configv1 "k8s.io/kube-scheduler/config/v1"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

// Preemption messages, as upstream words them.
const (
	MsgPreemptionNotHelpful = "Preemption is not helpful for scheduling"
	MsgNoVictims            = "No preemption victims found for incoming pod"
	MsgNeverPreempt         = "not eligible due to preemptionPolicy=Never."
	MsgTerminatingOnNominee = "not eligible due to a terminating pod on the nominated node."
)

// DefaultPreemption is the PostFilter that makes room for a pod by
// evicting lower-priority pods from one node.
type DefaultPreemption struct {
	h                    framework.Handle
	minCandidatePercent  int32
	minCandidateAbsolute int32
	// Preempt carries out the decision (edge: API calls). Tests replace
	// it to record decisions.
	Preempt func(ctx context.Context, pod *corev1.Pod, c *Candidate) error
}

var _ framework.PostFilterPlugin = (*DefaultPreemption)(nil)

// NewDefaultPreemption builds the plugin.
func NewDefaultPreemption(h framework.Handle, args *configv1.DefaultPreemptionArgs) *DefaultPreemption {
	p := &DefaultPreemption{h: h, minCandidatePercent: 10, minCandidateAbsolute: 100}
	if args != nil {
		if args.MinCandidateNodesPercentage != nil {
			p.minCandidatePercent = *args.MinCandidateNodesPercentage
		}
		if args.MinCandidateNodesAbsolute != nil {
			p.minCandidateAbsolute = *args.MinCandidateNodesAbsolute
		}
	}
	p.Preempt = p.evict
	return p
}

// Name implements Plugin.
func (*DefaultPreemption) Name() string { return DefaultPreemptionName }

// Candidate is a node and the pods to evict from it.
type Candidate struct {
	Node    string
	Victims []*corev1.Pod
	// PDBViolations counts victims whose eviction breaks a budget.
	PDBViolations int
}

// PostFilter finds the best node to preempt on and evicts its victims.
func (p *DefaultPreemption) PostFilter(ctx context.Context, state *framework.CycleState, pod *framework.PodInfo, statuses *framework.NodeToStatus) (*framework.PostFilterResult, *framework.Status) {
	c, status := p.SelectCandidate(ctx, state, pod, statuses)
	if !status.IsSuccess() {
		return nil, status
	}
	if err := p.Preempt(ctx, pod.Pod, c); err != nil {
		return nil, framework.AsStatus(err)
	}
	return &framework.PostFilterResult{NominatedNodeName: c.Node}, nil
}

// SelectCandidate is the pure part of preemption: which node, which pods.
func (p *DefaultPreemption) SelectCandidate(ctx context.Context, state *framework.CycleState, pod *framework.PodInfo, statuses *framework.NodeToStatus) (*Candidate, *framework.Status) {
	snap := p.h.Snapshot()
	if msg, ok := p.eligible(pod.Pod, snap, statuses); !ok {
		return nil, framework.NewStatus(framework.Unschedulable, "preemption: "+msg)
	}
	var potential []*framework.NodeInfo
	for _, ni := range snap.NodeInfoList {
		if statuses.Get(ni.Name()).Code() == framework.Unschedulable {
			potential = append(potential, ni)
		}
	}
	all := len(snap.NodeInfoList)
	if len(potential) == 0 {
		return nil, framework.NewStatus(framework.Unschedulable, "preemption: "+framework.FitMessage(all, framework.NewNodeToStatus(framework.NewStatus(framework.UnschedulableAndUnresolvable, MsgPreemptionNotHelpful))))
	}
	pdbs := p.pdbs()
	want := int(max(int32(len(potential))*p.minCandidatePercent/100, p.minCandidateAbsolute))
	offset := rand.IntN(len(potential))
	dry := framework.NewNodeToStatus(framework.NewStatus(framework.UnschedulableAndUnresolvable, MsgPreemptionNotHelpful))
	var mu sync.Mutex
	var candidates []*Candidate
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p.h.Parallel(cctx, len(potential), func(i int) {
		ni := potential[(offset+i)%len(potential)]
		victims, violations, s := p.selectVictims(cctx, state.Clone(), pod, ni.Clone(), pdbs)
		mu.Lock()
		defer mu.Unlock()
		if !s.IsSuccess() {
			dry.Set(ni.Name(), s)
			return
		}
		candidates = append(candidates, &Candidate{Node: ni.Name(), Victims: victims, PDBViolations: violations})
		if len(candidates) >= want {
			cancel()
		}
	})
	if len(candidates) == 0 {
		return nil, framework.NewStatus(framework.Unschedulable, "preemption: "+framework.FitMessage(all, dry))
	}
	return PickCandidate(candidates), nil
}

// eligible is upstream's PodEligibleToPreemptOthers.
func (p *DefaultPreemption) eligible(pod *corev1.Pod, snap *framework.Snapshot, statuses *framework.NodeToStatus) (string, bool) {
	if pod.Spec.PreemptionPolicy != nil && *pod.Spec.PreemptionPolicy == corev1.PreemptNever {
		return MsgNeverPreempt, false
	}
	nom := pod.Status.NominatedNodeName
	if nom == "" || statuses.Get(nom).Code() == framework.UnschedulableAndUnresolvable {
		return "", true
	}
	if ni := snap.Get(nom); ni != nil {
		prio := corev1helpers.PodPriority(pod)
		for _, ep := range ni.Pods {
			if corev1helpers.PodPriority(ep.Pod) < prio && ep.Pod.DeletionTimestamp != nil && hasDisruptionTarget(ep.Pod) {
				return MsgTerminatingOnNominee, false
			}
		}
	}
	return "", true
}

func hasDisruptionTarget(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.DisruptionTarget && c.Status == corev1.ConditionTrue && c.Reason == corev1.PodReasonPreemptionByScheduler {
			return true
		}
	}
	return false
}

func (p *DefaultPreemption) pdbs() []*policyv1.PodDisruptionBudget {
	if p.h.Listers().PDBs == nil {
		return nil
	}
	list, _ := p.h.Listers().PDBs.List(labels.Everything())
	return list
}

// moreImportant orders pods by priority, then by earlier start.
func moreImportant(a, b *corev1.Pod) bool {
	pa, pb := corev1helpers.PodPriority(a), corev1helpers.PodPriority(b)
	if pa != pb {
		return pa > pb
	}
	return startTime(a).Before(startTime(b))
}

func startTime(p *corev1.Pod) *metav1.Time {
	if p.Status.StartTime != nil {
		return p.Status.StartTime
	}
	return &p.CreationTimestamp
}

// selectVictims removes every lower-priority pod from node, checks the pod
// fits, then gives back as many as still let it fit, most important first
// (budget-protected pods before the others). It returns the victims.
func (p *DefaultPreemption) selectVictims(ctx context.Context, state *framework.CycleState, pod *framework.PodInfo, node *framework.NodeInfo, pdbs []*policyv1.PodDisruptionBudget) ([]*corev1.Pod, int, *framework.Status) {
	run := p.h.Runner()
	prio := corev1helpers.PodPriority(pod.Pod)
	var potential []*framework.PodInfo
	for _, ep := range append([]*framework.PodInfo(nil), node.Pods...) {
		if corev1helpers.PodPriority(ep.Pod) < prio {
			potential = append(potential, ep)
			if err := node.RemovePod(ep.Pod); err != nil {
				return nil, 0, framework.AsStatus(err)
			}
			if s := run.RunPreFilterExtensionRemovePod(ctx, state, pod, ep, node); !s.IsSuccess() {
				return nil, 0, s
			}
		}
	}
	if len(potential) == 0 {
		return nil, 0, framework.NewStatus(framework.UnschedulableAndUnresolvable, MsgNoVictims)
	}
	if s := run.RunFilterWithNominatedPods(ctx, state, pod, node); !s.IsSuccess() {
		return nil, 0, s
	}
	sort.SliceStable(potential, func(i, j int) bool { return moreImportant(potential[i].Pod, potential[j].Pod) })
	violating, ok := splitByBudget(potential, pdbs)
	var victims []*corev1.Pod
	violations := 0
	reprieve := func(pi *framework.PodInfo, breaksBudget bool) *framework.Status {
		node.AddPod(pi)
		if s := run.RunPreFilterExtensionAddPod(ctx, state, pod, pi, node); !s.IsSuccess() {
			return s
		}
		if run.RunFilterWithNominatedPods(ctx, state, pod, node).IsSuccess() {
			return nil
		}
		if err := node.RemovePod(pi.Pod); err != nil {
			return framework.AsStatus(err)
		}
		if s := run.RunPreFilterExtensionRemovePod(ctx, state, pod, pi, node); !s.IsSuccess() {
			return s
		}
		victims = append(victims, pi.Pod)
		if breaksBudget {
			violations++
		}
		return nil
	}
	for _, pi := range violating {
		if s := reprieve(pi, true); s != nil {
			return nil, 0, s
		}
	}
	for _, pi := range ok {
		if s := reprieve(pi, false); s != nil {
			return nil, 0, s
		}
	}
	return victims, violations, nil
}

// splitByBudget separates pods whose eviction would exceed a
// PodDisruptionBudget from the rest, counting down each budget's
// allowance as pods are taken.
func splitByBudget(pods []*framework.PodInfo, pdbs []*policyv1.PodDisruptionBudget) (violating, ok []*framework.PodInfo) {
	allowed := make([]int32, len(pdbs))
	sels := make([]labels.Selector, len(pdbs))
	for i, pdb := range pdbs {
		allowed[i] = pdb.Status.DisruptionsAllowed
		if s, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector); err == nil {
			sels[i] = s
		}
	}
	for _, pi := range pods {
		breaks := false
		for i, pdb := range pdbs {
			if pdb.Namespace != pi.Pod.Namespace || sels[i] == nil || sels[i].Empty() || !sels[i].Matches(labels.Set(pi.Pod.Labels)) {
				continue
			}
			if _, disrupted := pdb.Status.DisruptedPods[pi.Pod.Name]; disrupted {
				continue
			}
			allowed[i]--
			if allowed[i] < 0 {
				breaks = true
			}
		}
		if breaks {
			violating = append(violating, pi)
		} else {
			ok = append(ok, pi)
		}
	}
	return violating, ok
}

// PickCandidate chooses among candidates as upstream does: fewest budget
// violations, then the lowest highest-victim priority, the lowest sum of
// priorities, the fewest victims, the latest start among the
// highest-priority victims, and finally the first.
func PickCandidate(cs []*Candidate) *Candidate {
	if len(cs) == 0 {
		return nil
	}
	keep := func(score func(*Candidate) int64) {
		best := int64(-1 << 63)
		var out []*Candidate
		for _, c := range cs {
			s := score(c)
			if s > best {
				best, out = s, []*Candidate{c}
			} else if s == best {
				out = append(out, c)
			}
		}
		cs = out
	}
	keep(func(c *Candidate) int64 { return -int64(c.PDBViolations) })
	keep(func(c *Candidate) int64 {
		if len(c.Victims) == 0 {
			return 1 << 40
		}
		return -int64(corev1helpers.PodPriority(c.Victims[0]))
	})
	keep(func(c *Candidate) int64 {
		var s int64
		for _, v := range c.Victims {
			// Offset so that negative priorities still count.
			s += int64(corev1helpers.PodPriority(v)) + (1 << 31) + 1
		}
		return -s
	})
	keep(func(c *Candidate) int64 { return -int64(len(c.Victims)) })
	keep(func(c *Candidate) int64 {
		if len(c.Victims) == 0 {
			return 1 << 62
		}
		top := corev1helpers.PodPriority(c.Victims[0])
		var earliest int64 = 1 << 62
		for _, v := range c.Victims {
			if corev1helpers.PodPriority(v) == top {
				earliest = min(earliest, startTime(v).UnixNano())
			}
		}
		return earliest
	})
	return cs[0]
}

// evict marks each victim with a DisruptionTarget condition, deletes it
// and clears lower-priority nominations to the node.
func (p *DefaultPreemption) evict(ctx context.Context, pod *corev1.Pod, c *Candidate) error {
	cs := p.h.Client()
	for _, v := range c.Victims {
		cond := corev1.PodCondition{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: corev1.PodReasonPreemptionByScheduler,
			Message: fmt.Sprintf("%s: preempting to accommodate a higher priority pod", pod.Spec.SchedulerName), LastTransitionTime: metav1.Now()}
		if err := PatchPodCondition(ctx, cs, v, cond); err != nil {
			return fmt.Errorf("mark victim %s/%s: %w", v.Namespace, v.Name, err)
		}
		if err := cs.CoreV1().Pods(v.Namespace).Delete(ctx, v.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &v.UID}}); err != nil && !isGone(err) {
			return fmt.Errorf("preempt %s/%s: %w", v.Namespace, v.Name, err)
		}
		if r := p.h.Recorder(); r != nil {
			r.Eventf(v, pod, corev1.EventTypeNormal, "Preempted", "Preempting", "Preempted by pod %v on node %v", pod.UID, c.Node)
		}
	}
	prio := corev1helpers.PodPriority(pod)
	if n := p.h.Nominator(); n != nil {
		for _, np := range n.NominatedPodsForNode(c.Node) {
			if np.Pod.UID != pod.UID && corev1helpers.PodPriority(np.Pod) < prio {
				if err := ClearNomination(ctx, cs, np.Pod); err != nil && !isGone(err) {
					return err
				}
			}
		}
	}
	return nil
}
