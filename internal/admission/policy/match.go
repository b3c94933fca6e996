// Package policy is admission by ValidatingAdmissionPolicies: which
// bindings and policies a request falls under (matchConstraints and the
// binding's matchResources), and the policies' CEL programs (match
// conditions, variables, validations, audit annotations) compiled once per
// policy generation and evaluated against the request.
package policy

import (
	"slices"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Request is what matching looks at.
type Request struct {
	Operation       admissionregistrationv1.OperationType
	Resource        schema.GroupVersionResource
	Subresource     string
	Name            string
	Namespaced      bool
	NamespaceLabels map[string]string
	ObjectLabels    map[string]string
	OldObjectLabels map[string]string
	HasObject       bool
	HasOldObject    bool
}

// Matches says whether m (a policy's matchConstraints or a binding's
// matchResources; nil matches everything) selects r.
func Matches(m *admissionregistrationv1.MatchResources, r Request) bool {
	if m == nil {
		return true
	}
	if !selects(m.NamespaceSelector, r.NamespaceLabels, !r.Namespaced && !isNamespace(r)) {
		return false
	}
	if m.ObjectSelector != nil && !selectsObject(m.ObjectSelector, r) {
		return false
	}
	if len(m.ResourceRules) > 0 && !slices.ContainsFunc(m.ResourceRules, func(rule admissionregistrationv1.NamedRuleWithOperations) bool { return ruleMatches(rule, r) }) {
		return false
	}
	return !slices.ContainsFunc(m.ExcludeResourceRules, func(rule admissionregistrationv1.NamedRuleWithOperations) bool { return ruleMatches(rule, r) })
}

func isNamespace(r Request) bool {
	return r.Resource.Group == "" && r.Resource.Resource == "namespaces"
}

func selects(sel *metav1.LabelSelector, lbls map[string]string, clusterScoped bool) bool {
	if sel == nil || (len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0) || clusterScoped {
		return true
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && s.Matches(labels.Set(lbls))
}

func selectsObject(sel *metav1.LabelSelector, r Request) bool {
	if len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0 {
		return true
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return false
	}
	return (r.HasObject && s.Matches(labels.Set(r.ObjectLabels))) || (r.HasOldObject && s.Matches(labels.Set(r.OldObjectLabels)))
}

func ruleMatches(rule admissionregistrationv1.NamedRuleWithOperations, r Request) bool {
	if len(rule.ResourceNames) > 0 && !slices.Contains(rule.ResourceNames, r.Name) {
		return false
	}
	if !slices.ContainsFunc(rule.Operations, func(op admissionregistrationv1.OperationType) bool {
		return op == admissionregistrationv1.OperationAll || op == r.Operation
	}) {
		return false
	}
	any := func(list []string, v string) bool {
		return slices.ContainsFunc(list, func(s string) bool { return s == "*" || s == v })
	}
	if !any(rule.APIGroups, r.Resource.Group) || !any(rule.APIVersions, r.Resource.Version) {
		return false
	}
	if !slices.ContainsFunc(rule.Resources, func(res string) bool { return resourceMatches(res, r.Resource.Resource, r.Subresource) }) {
		return false
	}
	if rule.Scope != nil {
		switch *rule.Scope {
		case admissionregistrationv1.ClusterScope:
			return !r.Namespaced
		case admissionregistrationv1.NamespacedScope:
			return r.Namespaced || isNamespace(r)
		}
	}
	return true
}

func resourceMatches(rule, resource, sub string) bool {
	rr, rs, hasSub := cut(rule)
	if !hasSub {
		return sub == "" && (rr == "*" || rr == resource)
	}
	return (rr == "*" || rr == resource) && (rs == "*" || rs == sub)
}

func cut(s string) (string, string, bool) {
	for i := range len(s) {
		if s[i] == '/' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
