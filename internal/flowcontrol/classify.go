// Package flowcontrol is API Priority and Fairness: every request is
// classified by the FlowSchemas (the first matching by precedence) into a
// priority level and a flow; a limited level has a share of the server's
// seats, and requests beyond them wait in per-level queues that flows are
// shuffle-sharded onto, served fairly across queues, or are refused with
// 429 when the queues are full.
package flowcontrol

import (
	"slices"
	"strings"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
)

// Request is what a FlowSchema matches on.
type Request struct {
	User        string
	Groups      []string
	Verb        string
	IsResource  bool
	APIGroup    string
	Resource    string
	Subresource string
	Namespace   string
	Path        string
}

// Matches says whether fs classifies r.
func Matches(fs *flowcontrolv1.FlowSchema, r Request) bool {
	for _, rule := range fs.Spec.Rules {
		if !slices.ContainsFunc(rule.Subjects, func(s flowcontrolv1.Subject) bool { return subjectMatches(s, r) }) {
			continue
		}
		if r.IsResource {
			if slices.ContainsFunc(rule.ResourceRules, func(rr flowcontrolv1.ResourcePolicyRule) bool { return resourceMatches(rr, r) }) {
				return true
			}
			continue
		}
		if slices.ContainsFunc(rule.NonResourceRules, func(nr flowcontrolv1.NonResourcePolicyRule) bool { return urlMatches(nr, r) }) {
			return true
		}
	}
	return false
}

func subjectMatches(s flowcontrolv1.Subject, r Request) bool {
	switch s.Kind {
	case flowcontrolv1.SubjectKindUser:
		return s.User != nil && (s.User.Name == "*" || s.User.Name == r.User)
	case flowcontrolv1.SubjectKindGroup:
		return s.Group != nil && (s.Group.Name == "*" || slices.Contains(r.Groups, s.Group.Name))
	case flowcontrolv1.SubjectKindServiceAccount:
		if s.ServiceAccount == nil {
			return false
		}
		ns, name, ok := strings.Cut(strings.TrimPrefix(r.User, "system:serviceaccount:"), ":")
		return ok && strings.HasPrefix(r.User, "system:serviceaccount:") && ns == s.ServiceAccount.Namespace &&
			(s.ServiceAccount.Name == "*" || s.ServiceAccount.Name == name)
	}
	return false
}

func has(list []string, v string) bool { return slices.Contains(list, "*") || slices.Contains(list, v) }

func resourceMatches(rr flowcontrolv1.ResourcePolicyRule, r Request) bool {
	res := r.Resource
	if r.Subresource != "" {
		res += "/" + r.Subresource
	}
	if !has(rr.Verbs, r.Verb) || !has(rr.APIGroups, r.APIGroup) || !has(rr.Resources, res) {
		return false
	}
	if r.Namespace == "" {
		return rr.ClusterScope
	}
	return has(rr.Namespaces, r.Namespace)
}

func urlMatches(nr flowcontrolv1.NonResourcePolicyRule, r Request) bool {
	if !has(nr.Verbs, r.Verb) {
		return false
	}
	for _, u := range nr.NonResourceURLs {
		if u == "*" || u == r.Path || strings.HasSuffix(u, "/*") && strings.HasPrefix(r.Path, strings.TrimSuffix(u, "*")) {
			return true
		}
	}
	return false
}

// FlowKey distinguishes a request's flow within its schema: by user or by
// namespace, as the schema says (none: one flow).
func FlowKey(fs *flowcontrolv1.FlowSchema, r Request) string {
	if d := fs.Spec.DistinguisherMethod; d != nil {
		switch d.Type {
		case flowcontrolv1.FlowDistinguisherMethodByUserType:
			return fs.Name + "\x00" + r.User
		case flowcontrolv1.FlowDistinguisherMethodByNamespaceType:
			return fs.Name + "\x00" + r.Namespace
		}
	}
	return fs.Name
}

// sortSchemas orders schemas as upstream matches them: by precedence,
// then by name.
func sortSchemas(fss []*flowcontrolv1.FlowSchema) {
	slices.SortFunc(fss, func(a, b *flowcontrolv1.FlowSchema) int {
		if a.Spec.MatchingPrecedence != b.Spec.MatchingPrecedence {
			return int(a.Spec.MatchingPrecedence - b.Spec.MatchingPrecedence)
		}
		return strings.Compare(a.Name, b.Name)
	})
}
