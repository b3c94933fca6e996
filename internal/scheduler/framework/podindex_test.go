package framework

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
)

func indexNode(name, zone string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name, corev1.LabelTopologyZone: zone}}}
}

func indexPod(name, ns, node string, lbls map[string]string, anti *metav1.LabelSelector) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: types.UID(ns + "/" + name), Labels: lbls}, Spec: corev1.PodSpec{NodeName: node}}
	if anti != nil {
		p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{TopologyKey: corev1.LabelTopologyZone, LabelSelector: anti}}}}
	}
	return p
}

// scan is what Each must return: every pod of ns on a snapshot node that
// sel matches.
func scan(s *Snapshot, ns string, sel labels.Selector) []string {
	var out []string
	for _, ni := range s.NodeInfoList {
		for _, p := range ni.Pods {
			if p.Pod.Namespace == ns && sel.Matches(labels.Set(p.Pod.Labels)) {
				out = append(out, p.Pod.Name+"@"+ni.Name())
			}
		}
	}
	sort.Strings(out)
	return out
}

func each(s *Snapshot, ns string, sel labels.Selector) []string {
	var out []string
	s.Index.Each(ns, sel, func(p *PodInfo, node string) { out = append(out, p.Pod.Name+"@"+node) })
	sort.Strings(out)
	return out
}

func TestPodIndexEachMatchesAScan(t *testing.T) {
	var nodes []*corev1.Node
	for i := range 4 {
		nodes = append(nodes, indexNode(fmt.Sprint("n", i), fmt.Sprint("z", i%2)))
	}
	pods := []*corev1.Pod{
		indexPod("web-1", "a", "n0", map[string]string{"app": "web", "tier": "front"}, nil),
		indexPod("web-2", "a", "n1", map[string]string{"app": "web"}, nil),
		indexPod("db-1", "a", "n2", map[string]string{"app": "db", "tier": "back"}, nil),
		indexPod("web-b", "b", "n3", map[string]string{"app": "web"}, nil),
		indexPod("bare", "a", "n3", nil, nil),
		indexPod("nowhere", "a", "gone", map[string]string{"app": "web"}, nil),
	}
	s := NewSnapshot(pods, nodes)
	for _, sel := range []string{"app=web", "app in (web,db)", "tier", "!tier", "app!=web", "app=web,tier=front", "", "app=none", "tier notin (front)"} {
		t.Run(sel, func(t *testing.T) {
			parsed, err := labels.Parse(sel)
			if err != nil {
				t.Fatal(err)
			}
			for _, ns := range []string{"a", "b", "c"} {
				if got, want := each(s, ns, parsed), scan(s, ns, parsed); !reflect.DeepEqual(got, want) {
					t.Errorf("ns %s: Each %v, scan %v", ns, got, want)
				}
			}
		})
	}
}

// TestPodIndexFollowsChanges moves pods, relabels and removes nodes at
// random and checks the incrementally updated index against one built from
// scratch after every step.
func TestPodIndexFollowsChanges(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	nodes := map[string]*NodeInfo{}
	live := NewEmptySnapshot()
	for i := range 6 {
		ni := NewNodeInfo()
		ni.SetNode(indexNode(fmt.Sprint("n", i), fmt.Sprint("z", i%3)))
		nodes[ni.Name()] = ni
		live.NodeInfoMap[ni.Name()] = ni.Clone()
		live.Index.Update(nil, live.NodeInfoMap[ni.Name()])
	}
	podOn := map[string]string{}
	for step := range 400 {
		name := fmt.Sprint("n", rng.IntN(6))
		ni := nodes[name]
		switch op := rng.IntN(10); {
		case op < 5: // a pod arrives (or is replaced, as a confirmed bind)
			pod := fmt.Sprint("p", rng.IntN(40))
			if at, ok := podOn[pod]; ok {
				_ = nodes[at].RemovePod(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: types.UID("a/" + pod)}})
				syncNode(live, nodes[at])
			}
			group := fmt.Sprint("g", rng.IntN(4))
			var anti *metav1.LabelSelector
			if rng.IntN(2) == 0 {
				anti = &metav1.LabelSelector{MatchLabels: map[string]string{"group": group}}
			}
			ni.AddPod(NewPodInfo(indexPod(pod, "a", name, map[string]string{"group": group}, anti)))
			podOn[pod] = name
		case op < 8: // a pod goes
			for pod, at := range podOn {
				if at == name {
					_ = ni.RemovePod(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: types.UID("a/" + pod)}})
					delete(podOn, pod)
					break
				}
			}
		default: // the node moves to another zone
			ni.SetNode(indexNode(name, fmt.Sprint("z", rng.IntN(3))))
		}
		syncNode(live, ni)
		fresh := NewEmptySnapshot()
		for n, info := range live.NodeInfoMap {
			fresh.NodeInfoMap[n] = info
			fresh.Index.Update(nil, info)
		}
		if !reflect.DeepEqual(groups(live.Index.Anti), groups(fresh.Index.Anti)) {
			t.Fatalf("step %d: anti-affinity groups %v, rebuilt %v", step, groups(live.Index.Anti), groups(fresh.Index.Anti))
		}
		if !reflect.DeepEqual(live.Index.byValue, fresh.Index.byValue) || !reflect.DeepEqual(live.Index.byNS, fresh.Index.byNS) {
			t.Fatalf("step %d: label buckets differ from a rebuilt index", step)
		}
	}
	if len(live.Index.Anti) == 0 {
		t.Fatal("the test never indexed an anti-affinity term")
	}
}

// sync stands in for the cache: the snapshot takes a clone of ni.
func syncNode(s *Snapshot, ni *NodeInfo) {
	clone := ni.Clone()
	s.Index.Update(s.NodeInfoMap[ni.Name()], clone)
	s.NodeInfoMap[ni.Name()] = clone
}

func groups(m map[string]*TermGroup) map[string]map[TopologyPair]int64 {
	out := map[string]map[TopologyPair]int64{}
	for k, g := range m {
		out[k] = g.Counts
	}
	return out
}

func TestTermKeyGroupsEqualTerms(t *testing.T) {
	mk := func(ns string, sel map[string]string, key string) *PodInfo {
		p := indexPod("p", ns, "n", nil, nil)
		p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{TopologyKey: key, LabelSelector: &metav1.LabelSelector{MatchLabels: sel}}}}}
		return NewPodInfo(p)
	}
	a := mk("x", map[string]string{"app": "web", "tier": "f"}, "zone").RequiredAntiAffinity[0].Key
	same := mk("x", map[string]string{"tier": "f", "app": "web"}, "zone").RequiredAntiAffinity[0].Key
	for name, other := range map[string]string{
		"other namespace": mk("y", map[string]string{"app": "web", "tier": "f"}, "zone").RequiredAntiAffinity[0].Key,
		"other selector":  mk("x", map[string]string{"app": "web"}, "zone").RequiredAntiAffinity[0].Key,
		"other topology":  mk("x", map[string]string{"app": "web", "tier": "f"}, "host").RequiredAntiAffinity[0].Key,
	} {
		if other == a {
			t.Errorf("%s: same key %q", name, a)
		}
	}
	if a != same {
		t.Errorf("equal terms got keys %q and %q", a, same)
	}
}
