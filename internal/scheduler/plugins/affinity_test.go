package plugins_test

import (
	"context"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins"
)

func term(key string, sel map[string]string) corev1.PodAffinityTerm {
	return corev1.PodAffinityTerm{TopologyKey: key, LabelSelector: &metav1.LabelSelector{MatchLabels: sel}}
}

func withAffinity(p *corev1.Pod, aff, anti []corev1.PodAffinityTerm) *corev1.Pod {
	p.Spec.Affinity = &corev1.Affinity{PodAffinity: &corev1.PodAffinity{RequiredDuringSchedulingIgnoredDuringExecution: aff}, PodAntiAffinity: &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: anti}}
	return p
}

func TestInterPodAffinityFilter(t *testing.T) {
	nodes := []*corev1.Node{node("a1", 4, 8, "zone", "a"), node("a2", 4, 8, "zone", "a"), node("b1", 4, 8, "zone", "b"), node("nozone", 4, 8)}
	guard := withAffinity(pod("guard", 0, 0, "app", "guard"), nil, []corev1.PodAffinityTerm{term(corev1.LabelHostname, map[string]string{"app": "web"})})
	other := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "other", Labels: map[string]string{"team": "x"}}}
	otherDB := pod("db", 0, 0, "app", "db")
	otherDB.Namespace = "other"
	e := newEnv(t, only("InterPodAffinity"), nodes, []*corev1.Pod{on(pod("cache", 0, 0, "app", "cache"), "a1"), on(guard, "b1"), on(otherDB, "a2")},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns"}}, other)

	nsSelTerm := term("zone", map[string]string{"app": "db"})
	nsSelTerm.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "x"}}
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want []string
	}{
		{"affinity to a zone with a cache pod", withAffinity(pod("p", 0, 0), []corev1.PodAffinityTerm{term("zone", map[string]string{"app": "cache"})}, nil), []string{"a1", "a2"}},
		{"anti-affinity by zone", withAffinity(pod("p", 0, 0), nil, []corev1.PodAffinityTerm{term("zone", map[string]string{"app": "cache"})}), []string{"b1", "nozone"}},
		{"existing pod's anti-affinity repels", pod("web", 0, 0, "app", "web"), []string{"a1", "a2", "nozone"}},
		{"affinity to nothing: stays pending", withAffinity(pod("p", 0, 0), []corev1.PodAffinityTerm{term("zone", map[string]string{"app": "none"})}, nil), nil},
		{"first pod of a self-affine group", withAffinity(pod("p", 0, 0, "app", "new"), []corev1.PodAffinityTerm{term("zone", map[string]string{"app": "new"})}, nil), []string{"a1", "a2", "b1"}},
		{"other namespaces only through a selector", withAffinity(pod("p", 0, 0), []corev1.PodAffinityTerm{term("zone", map[string]string{"app": "db"})}, nil), nil},
		{"namespaceSelector reaches them", withAffinity(pod("p", 0, 0), []corev1.PodAffinityTerm{nsSelTerm}, nil), []string{"a1", "a2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := e.fits(tc.pod); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("fits %v, want %v (%v)", got, tc.want, e.filter(tc.pod))
			}
		})
	}
	got := e.filter(pod("web", 0, 0, "app", "web"))["b1"]
	if got != plugins.ErrReasonExistingAntiAffinityRules {
		t.Errorf("reason %q", got)
	}
}

func TestInterPodAffinityScore(t *testing.T) {
	nodes := []*corev1.Node{node("a", 4, 8, "zone", "a"), node("b", 4, 8, "zone", "b")}
	e := newEnv(t, only("InterPodAffinity"), nodes, []*corev1.Pod{on(pod("cache", 0, 0, "app", "cache"), "a")})
	p := pod("p", 0, 0)
	p.Spec.Affinity = &corev1.Affinity{PodAffinity: &corev1.PodAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{Weight: 50, PodAffinityTerm: term("zone", map[string]string{"app": "cache"})}}}}
	if s := e.scores(p); s["a"] != 100 || s["b"] != 0 {
		t.Errorf("preferred affinity scores %v", s)
	}
	p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{Weight: 50, PodAffinityTerm: term("zone", map[string]string{"app": "cache"})}}}}
	if s := e.scores(p); s["a"] != 0 || s["b"] != 100 {
		t.Errorf("preferred anti-affinity scores %v", s)
	}
}

func spread(key string, skew int32, when corev1.UnsatisfiableConstraintAction, sel map[string]string) corev1.TopologySpreadConstraint {
	return corev1.TopologySpreadConstraint{TopologyKey: key, MaxSkew: skew, WhenUnsatisfiable: when, LabelSelector: &metav1.LabelSelector{MatchLabels: sel}}
}

func TestPodTopologySpreadFilter(t *testing.T) {
	tainted := node("c1", 4, 8, "zone", "c")
	tainted.Spec.Taints = []corev1.Taint{{Key: "k", Effect: corev1.TaintEffectNoSchedule}}
	nodes := []*corev1.Node{node("a1", 4, 8, "zone", "a"), node("a2", 4, 8, "zone", "a"), node("b1", 4, 8, "zone", "b"), tainted, node("nozone", 4, 8)}
	existing := []*corev1.Pod{on(pod("w1", 0, 0, "app", "w"), "a1"), on(pod("w2", 0, 0, "app", "w"), "a2"), on(pod("w3", 0, 0, "app", "w"), "b1")}
	e := newEnv(t, only("PodTopologySpread"), nodes, existing)
	mk := func(cs ...corev1.TopologySpreadConstraint) *corev1.Pod {
		p := pod("new", 0, 0, "app", "w", "rev", "2")
		p.Spec.TopologySpreadConstraints = cs
		return p
	}
	honorTaints := spread("zone", 1, corev1.DoNotSchedule, map[string]string{"app": "w"})
	honorTaints.NodeTaintsPolicy = ptr.To(corev1.NodeInclusionPolicyHonor)
	minDomains := spread("zone", 1, corev1.DoNotSchedule, map[string]string{"app": "w"})
	minDomains.MinDomains = ptr.To[int32](4)
	minDomains.NodeTaintsPolicy = ptr.To(corev1.NodeInclusionPolicyHonor)
	labelKeys := spread("zone", 1, corev1.DoNotSchedule, map[string]string{"app": "w"})
	labelKeys.MatchLabelKeys = []string{"rev"}
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want []string
	}{
		// zone counts a=2 b=1 c=0 (tainted node still counts by default): min 0.
		{"zone skew 1 with an empty tainted zone", mk(spread("zone", 1, corev1.DoNotSchedule, map[string]string{"app": "w"})), []string{"c1"}},
		// With the tainted zone left out the minimum is b's 1, so b fits;
		// c1 itself is left to TaintToleration (not in this profile).
		{"nodeTaintsPolicy Honor ignores the tainted zone", mk(honorTaints), []string{"b1", "c1"}},
		// Two domains < minDomains 4: the minimum counts as 0, so only an
		// empty domain fits.
		{"minDomains above the domain count treats the minimum as 0", mk(minDomains), []string{"c1"}},
		{"hostname skew 1", mk(spread(corev1.LabelHostname, 1, corev1.DoNotSchedule, map[string]string{"app": "w"})), []string{"c1", "nozone"}},
		{"matchLabelKeys narrows to this revision", mk(labelKeys), []string{"a1", "a2", "b1", "c1"}},
		{"ScheduleAnyway never filters", mk(spread("zone", 1, corev1.ScheduleAnyway, map[string]string{"app": "w"})), []string{"a1", "a2", "b1", "c1", "nozone"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := e.fits(tc.pod); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("fits %v, want %v (%v)", got, tc.want, e.filter(tc.pod))
			}
		})
	}
	if r := e.filter(mk(spread("zone", 1, corev1.DoNotSchedule, map[string]string{"app": "w"})))["nozone"]; r != plugins.ErrReasonSpreadMissingLabel {
		t.Errorf("missing label reason %q", r)
	}
}

func TestPodTopologySpreadScore(t *testing.T) {
	nodes := []*corev1.Node{node("a1", 4, 8, "zone", "a"), node("b1", 4, 8, "zone", "b")}
	e := newEnv(t, only("PodTopologySpread"), nodes, []*corev1.Pod{on(pod("w1", 0, 0, "app", "w"), "a1"), on(pod("w2", 0, 0, "app", "w"), "a1")})
	p := pod("new", 0, 0, "app", "w")
	p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{spread("zone", 1, corev1.ScheduleAnyway, map[string]string{"app": "w"})}
	if s := e.scores(p); s["b1"] != 100 || s["a1"] >= s["b1"] {
		t.Errorf("scores %v: the empty zone should win", s)
	}
	// Without constraints, the cluster default spreads pods of a Service.
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "w", Namespace: "ns"}, Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "w"}}}
	e = newEnv(t, only("PodTopologySpread"), nodes, []*corev1.Pod{on(pod("w1", 0, 0, "app", "w"), "a1")}, svc)
	if s := e.scores(pod("new", 0, 0, "app", "w")); s["b1"] <= s["a1"] {
		t.Errorf("default spreading scores %v", s)
	}
}

func TestPreemptionVictims(t *testing.T) {
	prio := func(p *corev1.Pod, v int32) *corev1.Pod {
		p.Spec.Priority = &v
		return p
	}
	nodes := []*corev1.Node{node("a", 4, 8), node("b", 4, 8), node("c", 4, 8)}
	pods := []*corev1.Pod{
		on(prio(pod("a-low", 2000, 0, "app", "x"), 1), "a"), on(prio(pod("a-low2", 2000, 0), 1), "a"),
		on(prio(pod("b-mid", 3000, 0), 5), "b"), on(prio(pod("b-small", 500, 0), 1), "b"),
		on(prio(pod("c-high", 4000, 0), 100), "c"),
	}
	pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "ns"}, Spec: policyv1.PodDisruptionBudgetSpec{
		MinAvailable: ptr.To(intstr.FromInt32(1)), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}}}
	profile := only("NodeResourcesFit", "DefaultPreemption")
	e := newEnv(t, profile, nodes, pods, pdb)
	pre := e.fwk.PostFilter[0].(*plugins.DefaultPreemption)
	run := func(p *corev1.Pod) (*plugins.Candidate, string) {
		pi := framework.NewPodInfo(p)
		state := framework.NewCycleState()
		statuses := framework.NewNodeToStatus(nil)
		e.fwk.RunPreFilter(context.Background(), state, pi)
		for _, ni := range e.snap.NodeInfoList {
			statuses.Set(ni.Name(), e.fwk.RunFilter(context.Background(), state, pi, ni))
		}
		c, s := pre.SelectCandidate(context.Background(), state, pi, statuses)
		return c, s.Message()
	}
	names := func(c *plugins.Candidate) []string {
		var out []string
		for _, v := range c.Victims {
			out = append(out, v.Name)
		}
		return out
	}
	// Needs 2 cores at priority 10. On a one of two priority-1 pods must
	// go; the budget-protected one is reprieved first, so a-low2 is the
	// victim. On b, freeing 500m is not enough and b-mid (priority 5) must
	// go. c has nothing lower. The lowest highest-victim priority wins: a.
	c, msg := run(prio(pod("vip", 2000, 0), 10))
	if c == nil {
		t.Fatalf("no candidate: %s", msg)
	}
	if c.Node != "a" || len(c.Victims) != 1 || c.PDBViolations != 0 || names(c)[0] != "a-low2" {
		t.Errorf("candidate %s victims %v violations %d; want a, [a-low2], 0", c.Node, names(c), c.PDBViolations)
	}
	// A pod that would need to evict equal or higher priority finds nothing.
	if c, msg := run(prio(pod("big", 4500, 0), 10)); c != nil || msg != "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling." {
		t.Errorf("got %v, %q", c, msg)
	}
	never := prio(pod("polite", 2000, 0), 10)
	never.Spec.PreemptionPolicy = ptr.To(corev1.PreemptNever)
	if c, msg := run(never); c != nil || msg != "preemption: "+plugins.MsgNeverPreempt {
		t.Errorf("preemptionPolicy Never: %v %q", c, msg)
	}
}

func TestPickCandidate(t *testing.T) {
	p := func(name string, prio int32) *corev1.Pod {
		x := pod(name, 0, 0)
		x.Spec.Priority = &prio
		return x
	}
	for _, tc := range []struct {
		name string
		cs   []*plugins.Candidate
		want string
	}{
		{"fewest budget violations", []*plugins.Candidate{{Node: "a", Victims: []*corev1.Pod{p("1", 1)}, PDBViolations: 1}, {Node: "b", Victims: []*corev1.Pod{p("2", 5)}}}, "b"},
		{"lowest highest priority", []*plugins.Candidate{{Node: "a", Victims: []*corev1.Pod{p("1", 5)}}, {Node: "b", Victims: []*corev1.Pod{p("2", 3), p("3", 3)}}}, "b"},
		{"lowest priority sum", []*plugins.Candidate{{Node: "a", Victims: []*corev1.Pod{p("1", 3), p("2", 3)}}, {Node: "b", Victims: []*corev1.Pod{p("3", 3), p("4", 1)}}}, "b"},
		{"fewest victims", []*plugins.Candidate{{Node: "a", Victims: []*corev1.Pod{p("1", 0), p("2", 0)}}, {Node: "b", Victims: []*corev1.Pod{p("3", 0)}}}, "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := plugins.PickCandidate(tc.cs); got.Node != tc.want {
				t.Errorf("picked %s, want %s", got.Node, tc.want)
			}
		})
	}
}
