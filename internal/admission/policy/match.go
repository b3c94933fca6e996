// Package policy is admission by ValidatingAdmissionPolicies: which
// bindings and policies a request falls under (matchConstraints and the
// binding's matchResources, read with the webhooks' rule and selector
// matching), and the policies' CEL programs (match conditions, variables,
// validations, audit annotations) compiled once per policy generation and
// evaluated against the request.
package policy

import (
	"slices"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"

	"github.com/skiff-sh/skiff/internal/admission/webhook"
)

// Request is what matching looks at, as for webhooks.
type Request = webhook.Request

// Matches says whether m (a policy's matchConstraints or a binding's
// matchResources; nil matches everything) selects r.
func Matches(m *admissionregistrationv1.MatchResources, r Request) bool {
	if m == nil {
		return true
	}
	if !webhook.NamespaceMatches(m.NamespaceSelector, r) || !webhook.ObjectMatches(m.ObjectSelector, r) {
		return false
	}
	if len(m.ResourceRules) > 0 && !slices.ContainsFunc(m.ResourceRules, func(rule admissionregistrationv1.NamedRuleWithOperations) bool { return ruleMatches(rule, r) }) {
		return false
	}
	return !slices.ContainsFunc(m.ExcludeResourceRules, func(rule admissionregistrationv1.NamedRuleWithOperations) bool { return ruleMatches(rule, r) })
}

// ruleMatches is a webhook rule's match, narrowed by resourceNames.
func ruleMatches(rule admissionregistrationv1.NamedRuleWithOperations, r Request) bool {
	if len(rule.ResourceNames) > 0 && !slices.Contains(rule.ResourceNames, r.Name) {
		return false
	}
	return webhook.RuleMatches(rule.RuleWithOperations, r)
}
