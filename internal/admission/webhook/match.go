// Package webhook is admission by webhooks: which of the Mutating- and
// ValidatingWebhookConfigurations' webhooks a request goes to (rules,
// scope, namespace and object selectors), the AdmissionReview each is sent
// and how its answer is read, and the calls themselves over HTTPS verified
// by the configuration's caBundle. Matching and reading answers are pure;
// only Client does I/O.
package webhook

import (
	"slices"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Hook is one webhook of a configuration, with what mutating and validating
// webhooks share.
type Hook struct {
	// Configuration names the configuration the webhook is in.
	Configuration string
	Name          string
	Mutating      bool
	ClientConfig  admissionregistrationv1.WebhookClientConfig
	Rules         []admissionregistrationv1.RuleWithOperations
	FailurePolicy admissionregistrationv1.FailurePolicyType
	// MatchPolicy is Exact or Equivalent (the default).
	MatchPolicy       admissionregistrationv1.MatchPolicyType
	NamespaceSelector *metav1.LabelSelector
	ObjectSelector    *metav1.LabelSelector
	SideEffects       admissionregistrationv1.SideEffectClass
	TimeoutSeconds    int32
	ReviewVersions    []string
	// Reinvoke is a mutating webhook's reinvocationPolicy IfNeeded.
	Reinvoke        bool
	MatchConditions []admissionregistrationv1.MatchCondition
}

// FromMutating lists a mutating configuration's webhooks in order.
func FromMutating(c *admissionregistrationv1.MutatingWebhookConfiguration) []Hook {
	out := make([]Hook, 0, len(c.Webhooks))
	for _, w := range c.Webhooks {
		out = append(out, Hook{
			Configuration: c.Name, Name: w.Name, Mutating: true, ClientConfig: w.ClientConfig, Rules: w.Rules,
			FailurePolicy: deref(w.FailurePolicy, admissionregistrationv1.Fail), MatchPolicy: deref(w.MatchPolicy, admissionregistrationv1.Equivalent),
			NamespaceSelector: w.NamespaceSelector, ObjectSelector: w.ObjectSelector, SideEffects: deref(w.SideEffects, ""),
			TimeoutSeconds: deref(w.TimeoutSeconds, 10), ReviewVersions: w.AdmissionReviewVersions,
			Reinvoke:        deref(w.ReinvocationPolicy, admissionregistrationv1.NeverReinvocationPolicy) == admissionregistrationv1.IfNeededReinvocationPolicy,
			MatchConditions: w.MatchConditions,
		})
	}
	return out
}

// FromValidating lists a validating configuration's webhooks in order.
func FromValidating(c *admissionregistrationv1.ValidatingWebhookConfiguration) []Hook {
	out := make([]Hook, 0, len(c.Webhooks))
	for _, w := range c.Webhooks {
		out = append(out, Hook{
			Configuration: c.Name, Name: w.Name, ClientConfig: w.ClientConfig, Rules: w.Rules,
			FailurePolicy: deref(w.FailurePolicy, admissionregistrationv1.Fail), MatchPolicy: deref(w.MatchPolicy, admissionregistrationv1.Equivalent),
			NamespaceSelector: w.NamespaceSelector, ObjectSelector: w.ObjectSelector, SideEffects: deref(w.SideEffects, ""),
			TimeoutSeconds: deref(w.TimeoutSeconds, 10), ReviewVersions: w.AdmissionReviewVersions, MatchConditions: w.MatchConditions,
		})
	}
	return out
}

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// Request is what matching looks at.
type Request struct {
	Operation admissionregistrationv1.OperationType
	// Name is the object's (a policy rule may name the objects it takes).
	Name        string
	Resource    schema.GroupVersionResource
	Subresource string
	Namespaced  bool
	Namespace   string
	// NamespaceLabels are the labels of the request's namespace (of the
	// namespace itself, for a Namespace); nil when there is none.
	NamespaceLabels map[string]string
	// ObjectLabels and OldObjectLabels are the labels of the object
	// written and of the stored one.
	ObjectLabels, OldObjectLabels map[string]string
	HasObject, HasOldObject       bool
}

// Matches says whether h is to be called for r. A selector that does not
// parse matches nothing (validation refuses such configurations).
func Matches(h Hook, r Request) bool {
	if !slices.ContainsFunc(h.Rules, func(rule admissionregistrationv1.RuleWithOperations) bool { return RuleMatches(rule, r) }) {
		return false
	}
	return NamespaceMatches(h.NamespaceSelector, r) && ObjectMatches(h.ObjectSelector, r)
}

// RuleMatches says whether a rule (operations, groups, versions,
// resources, scope) takes r; admission policies' rules read the same.
func RuleMatches(rule admissionregistrationv1.RuleWithOperations, r Request) bool {
	if !slices.ContainsFunc(rule.Operations, func(op admissionregistrationv1.OperationType) bool {
		return op == admissionregistrationv1.OperationAll || op == r.Operation
	}) {
		return false
	}
	if !matchesAny(rule.APIGroups, r.Resource.Group) || !matchesAny(rule.APIVersions, r.Resource.Version) {
		return false
	}
	if !slices.ContainsFunc(rule.Resources, func(res string) bool { return resourceMatches(res, r.Resource.Resource, r.Subresource) }) {
		return false
	}
	switch deref(rule.Scope, admissionregistrationv1.AllScopes) {
	case admissionregistrationv1.ClusterScope:
		return !r.Namespaced
	case admissionregistrationv1.NamespacedScope:
		// A Namespace is cluster-scoped but matches "Namespaced", as
		// upstream says of its rule scope.
		return r.Namespaced || (r.Resource.Group == "" && r.Resource.Resource == "namespaces")
	}
	return true
}

func matchesAny(list []string, v string) bool {
	return slices.ContainsFunc(list, func(s string) bool { return s == "*" || s == v })
}

// resourceMatches reads a rule's resource: "pods", "pods/status", "pods/*",
// "*/status", "*" (every resource, no subresource) or "*/*" (all).
func resourceMatches(rule, resource, sub string) bool {
	rr, rs, hasSub := strings.Cut(rule, "/")
	if !hasSub {
		return sub == "" && (rr == "*" || rr == resource)
	}
	return (rr == "*" || rr == resource) && (rs == "*" || rs == sub)
}

// NamespaceMatches says whether a namespace selector takes r (a
// cluster-scoped object other than a Namespace is always taken).
func NamespaceMatches(sel *metav1.LabelSelector, r Request) bool {
	if sel == nil || (len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0) {
		return true
	}
	isNamespace := r.Resource.Group == "" && r.Resource.Resource == "namespaces"
	if !r.Namespaced && !isNamespace {
		return true // cluster-scoped objects are not selected by namespace
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return false
	}
	return s.Matches(labels.Set(r.NamespaceLabels))
}

// ObjectMatches says whether an object selector takes r's object or the
// stored one.
func ObjectMatches(sel *metav1.LabelSelector, r Request) bool {
	if sel == nil || (len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0) {
		return true
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return false
	}
	return (r.HasObject && s.Matches(labels.Set(r.ObjectLabels))) || (r.HasOldObject && s.Matches(labels.Set(r.OldObjectLabels)))
}
