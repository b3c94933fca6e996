package framework

import (
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
)

// PodIndex finds a snapshot's pods by namespace and label, and keeps the
// existing pods' affinity terms grouped (identical terms of many replicas
// are one group) with their counts per topology pair. With it, the
// inter-pod affinity and topology spread plugins do work proportional to
// the pods that match, not to every pod in the cluster, on each attempt.
// The cache keeps it current as nodes change; plugins only read it.
type PodIndex struct {
	byValue map[labelRef]podSet
	byKey   map[labelRef]podSet
	byNS    map[string]podSet
	// Anti groups existing pods' required anti-affinity terms, counting
	// pods; HardAffinity their required affinity terms, counting pods;
	// Preferred their preferred terms, summing weights (negative for
	// anti-affinity).
	Anti         map[string]*TermGroup
	HardAffinity map[string]*TermGroup
	Preferred    map[string]*TermGroup
}

// labelRef is a namespace with a label key and (for byValue) its value.
type labelRef struct{ ns, key, value string }

// podSet holds the indexed pods of one bucket, by identity.
type podSet map[*PodInfo]string

// TopologyPair is a topology key and one of its values.
type TopologyPair struct{ Key, Value string }

// TermGroup is one distinct affinity term of existing pods and, per
// topology pair of the nodes they run on, how many pods (or how much
// weight) carry it.
type TermGroup struct {
	Term   AffinityTerm
	Counts map[TopologyPair]int64
}

// NewPodIndex returns an empty index.
func NewPodIndex() *PodIndex {
	return &PodIndex{
		byValue: map[labelRef]podSet{}, byKey: map[labelRef]podSet{}, byNS: map[string]podSet{},
		Anti: map[string]*TermGroup{}, HardAffinity: map[string]*TermGroup{}, Preferred: map[string]*TermGroup{},
	}
}

// Namespaces lists the namespaces holding indexed pods.
func (x *PodIndex) Namespaces() []string { return slices.Collect(maps.Keys(x.byNS)) }

// Update replaces what old (nil for a new node) contributed with what ni
// (nil for a removed node) does. Pods present in both, on a node whose
// labels did not change, are left alone.
func (x *PodIndex) Update(old, ni *NodeInfo) {
	sameLabels := old != nil && ni != nil && old.Node() != nil && ni.Node() != nil && maps.Equal(old.Node().Labels, ni.Node().Labels)
	var keep map[*PodInfo]struct{}
	if sameLabels {
		keep = make(map[*PodInfo]struct{}, len(ni.Pods))
		for _, p := range ni.Pods {
			keep[p] = struct{}{}
		}
	}
	var had map[*PodInfo]struct{}
	if old != nil {
		if sameLabels {
			had = make(map[*PodInfo]struct{}, len(old.Pods))
		}
		for _, p := range old.Pods {
			if had != nil {
				had[p] = struct{}{}
			}
			if _, ok := keep[p]; !ok {
				x.remove(p, old)
			}
		}
	}
	if ni == nil {
		return
	}
	for _, p := range ni.Pods {
		if _, ok := had[p]; !ok {
			x.add(p, ni)
		}
	}
}

func (x *PodIndex) add(p *PodInfo, ni *NodeInfo)    { x.apply(p, ni, 1) }
func (x *PodIndex) remove(p *PodInfo, ni *NodeInfo) { x.apply(p, ni, -1) }

func (x *PodIndex) apply(p *PodInfo, ni *NodeInfo, sign int64) {
	ns := p.Pod.Namespace
	bucket(x.byNS, ns, p, ni.Name(), sign)
	for k, v := range p.Pod.Labels {
		bucket(x.byValue, labelRef{ns, k, v}, p, ni.Name(), sign)
		bucket(x.byKey, labelRef{ns, k, ""}, p, ni.Name(), sign)
	}
	if !p.HasAffinity() || ni.Node() == nil {
		return
	}
	nodeLabels := ni.Node().Labels
	for i := range p.RequiredAntiAffinity {
		group(x.Anti, &p.RequiredAntiAffinity[i], nodeLabels, sign)
	}
	for i := range p.RequiredAffinity {
		group(x.HardAffinity, &p.RequiredAffinity[i], nodeLabels, sign)
	}
	for i := range p.PreferredAffinity {
		group(x.Preferred, &p.PreferredAffinity[i].AffinityTerm, nodeLabels, sign*int64(p.PreferredAffinity[i].Weight))
	}
	for i := range p.PreferredAntiAffinity {
		group(x.Preferred, &p.PreferredAntiAffinity[i].AffinityTerm, nodeLabels, -sign*int64(p.PreferredAntiAffinity[i].Weight))
	}
}

func bucket[K comparable](m map[K]podSet, k K, p *PodInfo, node string, sign int64) {
	s := m[k]
	if sign > 0 {
		if s == nil {
			s = podSet{}
			m[k] = s
		}
		s[p] = node
		return
	}
	delete(s, p)
	if len(s) == 0 {
		delete(m, k)
	}
}

func group(m map[string]*TermGroup, t *AffinityTerm, nodeLabels map[string]string, n int64) {
	v, ok := nodeLabels[t.TopologyKey]
	if !ok || n == 0 {
		return
	}
	g := m[t.Key]
	if g == nil {
		g = &TermGroup{Term: *t, Counts: map[TopologyPair]int64{}}
		m[t.Key] = g
	}
	pair := TopologyPair{t.TopologyKey, v}
	g.Counts[pair] += n
	if g.Counts[pair] == 0 {
		delete(g.Counts, pair)
	}
	if len(g.Counts) == 0 {
		delete(m, t.Key)
	}
}

// Each calls f with every indexed pod in namespace ns whose labels match
// sel, and the name of its node. It walks the smallest bucket that sel's
// equality, set or existence requirements allow, and all of ns otherwise.
func (x *PodIndex) Each(ns string, sel labels.Selector, f func(p *PodInfo, node string)) {
	visit := func(s podSet) {
		for p, node := range s {
			if sel.Matches(labels.Set(p.Pod.Labels)) {
				f(p, node)
			}
		}
	}
	all := x.byNS[ns]
	best, bestValues, bestLen := -1, []string(nil), len(all)
	reqs, _ := sel.Requirements()
	for i := range reqs {
		r := &reqs[i]
		switch r.Operator() {
		case selection.Equals, selection.DoubleEquals, selection.In:
			n := 0
			vals := r.Values().UnsortedList()
			for _, v := range vals {
				n += len(x.byValue[labelRef{ns, r.Key(), v}])
			}
			if n < bestLen || best < 0 && n <= bestLen {
				best, bestValues, bestLen = i, vals, n
			}
		case selection.Exists:
			if n := len(x.byKey[labelRef{ns, r.Key(), ""}]); n < bestLen || best < 0 && n <= bestLen {
				best, bestValues, bestLen = i, nil, n
			}
		}
	}
	switch {
	case best < 0:
		visit(all)
	case bestValues == nil:
		visit(x.byKey[labelRef{ns, reqs[best].Key(), ""}])
	default:
		for _, v := range bestValues {
			visit(x.byValue[labelRef{ns, reqs[best].Key(), v}])
		}
	}
}

// termKey identifies an affinity term by everything that decides what it
// matches and where it counts, so equal terms share a TermGroup.
func termKey(t *AffinityTerm) string {
	var b strings.Builder
	b.WriteString(t.TopologyKey)
	b.WriteByte(0)
	for _, ns := range slices.Sorted(maps.Keys(t.Namespaces)) {
		b.WriteString(ns)
		b.WriteByte(',')
	}
	b.WriteByte(0)
	if t.NamespaceSelector != nil {
		b.WriteString("sel:")
		b.WriteString(t.NamespaceSelector.String())
	}
	b.WriteByte(0)
	b.WriteString(t.Selector.String())
	return b.String()
}
