package quota

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
)

// Scoped tells whether a quota has scopes (spec.scopes or a scope
// selector). A scoped quota counts only the pods its scopes match, and
// nothing else, as upstream's evaluators do.
func Scoped(spec corev1.ResourceQuotaSpec) bool {
	return len(spec.Scopes) > 0 || (spec.ScopeSelector != nil && len(spec.ScopeSelector.MatchExpressions) > 0)
}

// PodInScope tells whether pod matches every scope of the quota.
func PodInScope(spec corev1.ResourceQuotaSpec, pod *corev1.Pod) bool {
	for _, s := range spec.Scopes {
		if !scopeMatches(corev1.ScopedResourceSelectorRequirement{ScopeName: s, Operator: corev1.ScopeSelectorOpExists}, pod) {
			return false
		}
	}
	if spec.ScopeSelector != nil {
		for _, req := range spec.ScopeSelector.MatchExpressions {
			if !scopeMatches(req, pod) {
				return false
			}
		}
	}
	return true
}

// InScope keeps the pods a quota counts.
func InScope(spec corev1.ResourceQuotaSpec, pods []*corev1.Pod) []*corev1.Pod {
	if !Scoped(spec) {
		return pods
	}
	var out []*corev1.Pod
	for _, p := range pods {
		if PodInScope(spec, p) {
			out = append(out, p)
		}
	}
	return out
}

func scopeMatches(req corev1.ScopedResourceSelectorRequirement, pod *corev1.Pod) bool {
	switch req.ScopeName {
	case corev1.ResourceQuotaScopeTerminating:
		return isTerminating(pod)
	case corev1.ResourceQuotaScopeNotTerminating:
		return !isTerminating(pod)
	case corev1.ResourceQuotaScopeBestEffort:
		return isBestEffort(pod)
	case corev1.ResourceQuotaScopeNotBestEffort:
		return !isBestEffort(pod)
	case corev1.ResourceQuotaScopeCrossNamespacePodAffinity:
		return crossNamespaceAffinity(pod)
	case corev1.ResourceQuotaScopePriorityClass:
		name := pod.Spec.PriorityClassName
		switch req.Operator {
		case corev1.ScopeSelectorOpExists:
			return name != ""
		case corev1.ScopeSelectorOpDoesNotExist:
			return name == ""
		case corev1.ScopeSelectorOpIn:
			return slices.Contains(req.Values, name)
		case corev1.ScopeSelectorOpNotIn:
			return !slices.Contains(req.Values, name)
		}
	}
	return false
}

// isTerminating: the pod has an active deadline, so it ends on its own.
func isTerminating(p *corev1.Pod) bool {
	return p.Spec.ActiveDeadlineSeconds != nil && *p.Spec.ActiveDeadlineSeconds >= 0
}

// isBestEffort: no container requests or limits cpu or memory.
func isBestEffort(p *corev1.Pod) bool {
	for _, list := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for _, c := range list {
			for _, rl := range []corev1.ResourceList{c.Resources.Requests, c.Resources.Limits} {
				for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
					if q, ok := rl[name]; ok && !q.IsZero() {
						return false
					}
				}
			}
		}
	}
	return true
}

// crossNamespaceAffinity: a pod (anti-)affinity term reaches other
// namespaces.
func crossNamespaceAffinity(p *corev1.Pod) bool {
	a := p.Spec.Affinity
	if a == nil {
		return false
	}
	var terms []corev1.PodAffinityTerm
	if a.PodAffinity != nil {
		terms = append(terms, a.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution...)
		for _, w := range a.PodAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
			terms = append(terms, w.PodAffinityTerm)
		}
	}
	if a.PodAntiAffinity != nil {
		terms = append(terms, a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution...)
		for _, w := range a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
			terms = append(terms, w.PodAffinityTerm)
		}
	}
	for _, t := range terms {
		if len(t.Namespaces) > 0 || t.NamespaceSelector != nil {
			return true
		}
	}
	return false
}
