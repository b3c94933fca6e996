package authz

import (
	"fmt"
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/skiff-sh/skiff/internal/auth"
)

// Covers reports whether owner's rules grant everything requested's do,
// and if not the first rule they miss: a user may create or change a role
// only with rules they hold themselves (unless they may "escalate"), and
// bind a role only if they hold its rules (unless they may "bind"), as
// upstream's escalation check. A requested rule is broken into single
// (verb, group, resource, name) grants; a wildcard requested is covered
// only by the same wildcard held.
func Covers(owner, requested []rbacv1.PolicyRule) (bool, []rbacv1.PolicyRule) {
	var missing []rbacv1.PolicyRule
	for _, req := range requested {
		for _, atom := range atoms(req) {
			if !slices.ContainsFunc(owner, func(o rbacv1.PolicyRule) bool { return ruleCovers(&o, &atom) }) {
				missing = append(missing, atom)
			}
		}
	}
	return len(missing) == 0, missing
}

// atoms breaks a rule into rules of one verb, one group, one resource and
// at most one name (or one verb and one non-resource URL).
func atoms(r rbacv1.PolicyRule) []rbacv1.PolicyRule {
	var out []rbacv1.PolicyRule
	for _, verb := range r.Verbs {
		for _, url := range r.NonResourceURLs {
			out = append(out, rbacv1.PolicyRule{Verbs: []string{verb}, NonResourceURLs: []string{url}})
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				if len(r.ResourceNames) == 0 {
					out = append(out, rbacv1.PolicyRule{Verbs: []string{verb}, APIGroups: []string{g}, Resources: []string{res}})
					continue
				}
				for _, n := range r.ResourceNames {
					out = append(out, rbacv1.PolicyRule{Verbs: []string{verb}, APIGroups: []string{g}, Resources: []string{res}, ResourceNames: []string{n}})
				}
			}
		}
	}
	return out
}

// ruleCovers: owner grants the single grant atom.
func ruleCovers(owner, atom *rbacv1.PolicyRule) bool {
	if !has(owner.Verbs, atom.Verbs[0]) {
		return false
	}
	if len(atom.NonResourceURLs) > 0 {
		return nonResourceURLMatches(owner.NonResourceURLs, atom.NonResourceURLs[0])
	}
	if !has(owner.APIGroups, atom.APIGroups[0]) {
		return false
	}
	res := atom.Resources[0]
	_, sub, _ := strings.Cut(res, "/")
	if !slices.Contains(owner.Resources, rbacv1.ResourceAll) && !slices.Contains(owner.Resources, res) &&
		!(sub != "" && slices.Contains(owner.Resources, "*/"+sub)) {
		return false
	}
	if len(owner.ResourceNames) == 0 {
		return true
	}
	return len(atom.ResourceNames) == 1 && slices.Contains(owner.ResourceNames, atom.ResourceNames[0])
}

// EscalationError is upstream's wording of a role or binding that grants
// more than its author holds (the API server wraps it in a 403).
func EscalationError(u auth.User, missing []rbacv1.PolicyRule) error {
	lines := make([]string, len(missing))
	for i, m := range missing {
		lines[i] = describeRule(m)
	}
	return fmt.Errorf("user %q (groups=%q) is attempting to grant RBAC permissions not currently held:\n%s", u.Name, u.Groups, strings.Join(lines, "\n"))
}

func describeRule(r rbacv1.PolicyRule) string {
	var parts []string
	if len(r.APIGroups) > 0 {
		parts = append(parts, fmt.Sprintf("APIGroups:%q", r.APIGroups))
	}
	if len(r.Resources) > 0 {
		parts = append(parts, fmt.Sprintf("Resources:%q", r.Resources))
	}
	if len(r.ResourceNames) > 0 {
		parts = append(parts, fmt.Sprintf("ResourceNames:%q", r.ResourceNames))
	}
	if len(r.NonResourceURLs) > 0 {
		parts = append(parts, fmt.Sprintf("NonResourceURLs:%q", r.NonResourceURLs))
	}
	parts = append(parts, fmt.Sprintf("Verbs:%q", r.Verbs))
	return "{" + strings.Join(parts, ", ") + "}"
}
