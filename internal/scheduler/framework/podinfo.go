package framework

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
)

// PodInfo is a pod with what the plugins derive from it computed once:
// its requests and its parsed affinity terms.
type PodInfo struct {
	Pod      *corev1.Pod
	Requests Resource
	// NonZero counts containers without requests at the scoring defaults.
	NonZero               Resource
	RequiredAffinity      []AffinityTerm
	RequiredAntiAffinity  []AffinityTerm
	PreferredAffinity     []WeightedAffinityTerm
	PreferredAntiAffinity []WeightedAffinityTerm
	// ParseErr is set when an affinity term cannot be parsed; the pod is
	// then unschedulable with this error.
	ParseErr error
}

// AffinityTerm is a parsed pod (anti-)affinity term.
type AffinityTerm struct {
	Namespaces map[string]struct{}
	Selector   labels.Selector
	// NamespaceSelector is nil when the term names no namespace selector.
	NamespaceSelector labels.Selector
	TopologyKey       string
	// Key identifies equal terms (see termKey).
	Key string
}

// WeightedAffinityTerm is a preferred term.
type WeightedAffinityTerm struct {
	AffinityTerm
	Weight int32
}

// Matches reports whether pod (whose namespace carries nsLabels) is
// selected by the term.
func (t *AffinityTerm) Matches(pod *corev1.Pod, nsLabels labels.Set) bool {
	if _, ok := t.Namespaces[pod.Namespace]; ok || (t.NamespaceSelector != nil && t.NamespaceSelector.Matches(nsLabels)) {
		return t.Selector.Matches(labels.Set(pod.Labels))
	}
	return false
}

// NewPodInfo parses pod once for the scheduler.
func NewPodInfo(pod *corev1.Pod) *PodInfo {
	pi := &PodInfo{Pod: pod}
	pi.Requests, pi.NonZero = PodRequests(pod)
	aff := pod.Spec.Affinity
	if aff == nil {
		return pi
	}
	var err error
	if a := aff.PodAffinity; a != nil {
		if pi.RequiredAffinity, err = parseTerms(pod, a.RequiredDuringSchedulingIgnoredDuringExecution); err != nil {
			pi.ParseErr = err
		}
		if pi.PreferredAffinity, err = parseWeighted(pod, a.PreferredDuringSchedulingIgnoredDuringExecution); err != nil {
			pi.ParseErr = err
		}
	}
	if a := aff.PodAntiAffinity; a != nil {
		if pi.RequiredAntiAffinity, err = parseTerms(pod, a.RequiredDuringSchedulingIgnoredDuringExecution); err != nil {
			pi.ParseErr = err
		}
		if pi.PreferredAntiAffinity, err = parseWeighted(pod, a.PreferredDuringSchedulingIgnoredDuringExecution); err != nil {
			pi.ParseErr = err
		}
	}
	return pi
}

// HasAffinity reports any pod affinity or anti-affinity term.
func (pi *PodInfo) HasAffinity() bool {
	return len(pi.RequiredAffinity)+len(pi.RequiredAntiAffinity)+len(pi.PreferredAffinity)+len(pi.PreferredAntiAffinity) > 0
}

func parseTerms(pod *corev1.Pod, terms []corev1.PodAffinityTerm) ([]AffinityTerm, error) {
	var out []AffinityTerm
	for i := range terms {
		t, err := newAffinityTerm(pod, &terms[i])
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func parseWeighted(pod *corev1.Pod, terms []corev1.WeightedPodAffinityTerm) ([]WeightedAffinityTerm, error) {
	var out []WeightedAffinityTerm
	for i := range terms {
		t, err := newAffinityTerm(pod, &terms[i].PodAffinityTerm)
		if err != nil {
			return nil, err
		}
		out = append(out, WeightedAffinityTerm{AffinityTerm: t, Weight: terms[i].Weight})
	}
	return out, nil
}

// newAffinityTerm parses one term. An empty namespace list with no
// namespace selector means the pod's own namespace; matchLabelKeys and
// mismatchLabelKeys become In and NotIn requirements on the pod's values.
func newAffinityTerm(pod *corev1.Pod, term *corev1.PodAffinityTerm) (AffinityTerm, error) {
	sel, err := metav1.LabelSelectorAsSelector(term.LabelSelector)
	if err != nil {
		return AffinityTerm{}, fmt.Errorf("pod affinity term labelSelector: %w", err)
	}
	if sel, err = mergeLabelKeys(sel, pod.Labels, term.MatchLabelKeys, selection.In); err != nil {
		return AffinityTerm{}, err
	}
	if sel, err = mergeLabelKeys(sel, pod.Labels, term.MismatchLabelKeys, selection.NotIn); err != nil {
		return AffinityTerm{}, err
	}
	t := AffinityTerm{Selector: sel, TopologyKey: term.TopologyKey, Namespaces: map[string]struct{}{}}
	for _, ns := range term.Namespaces {
		t.Namespaces[ns] = struct{}{}
	}
	if term.NamespaceSelector != nil {
		if t.NamespaceSelector, err = metav1.LabelSelectorAsSelector(term.NamespaceSelector); err != nil {
			return AffinityTerm{}, fmt.Errorf("pod affinity term namespaceSelector: %w", err)
		}
	} else if len(term.Namespaces) == 0 {
		t.Namespaces[pod.Namespace] = struct{}{}
	}
	t.Key = termKey(&t)
	return t, nil
}

// mergeLabelKeys adds "key op (value of key on the pod)" for each key the
// pod carries.
func mergeLabelKeys(sel labels.Selector, podLabels map[string]string, keys []string, op selection.Operator) (labels.Selector, error) {
	for _, k := range keys {
		v, ok := podLabels[k]
		if !ok {
			continue
		}
		r, err := labels.NewRequirement(k, op, []string{v})
		if err != nil {
			return nil, fmt.Errorf("label key %q: %w", k, err)
		}
		sel = sel.Add(*r)
	}
	return sel, nil
}
