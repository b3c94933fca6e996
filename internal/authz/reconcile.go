package authz

import (
	"slices"

	rbacv1 "k8s.io/api/rbac/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Reconciliation at start, as upstream's: a default object that is missing
// is created; one whose autoupdate annotation is not "false" gets back what
// the default has and it lacks (rules, aggregation selectors, subjects,
// labels, annotations) while what a user added stays; one marked "false" is
// left alone. A binding whose roleRef changed is recreated.

// ReconcileClusterRole is the ClusterRole to write given the stored one
// (nil: none), or nil when the stored one is already right.
func ReconcileClusterRole(stored *rbacv1.ClusterRole, want rbacv1.ClusterRole) *rbacv1.ClusterRole {
	if stored == nil {
		return &want
	}
	if stored.Annotations[AutoUpdate] == "false" {
		return nil
	}
	next := stored.DeepCopy()
	mergeMeta(&next.ObjectMeta, want.ObjectMeta)
	for _, rule := range want.Rules {
		if ok, _ := Covers(next.Rules, []rbacv1.PolicyRule{rule}); !ok {
			next.Rules = append(next.Rules, rule)
		}
	}
	if want.AggregationRule != nil {
		if next.AggregationRule == nil {
			next.AggregationRule = &rbacv1.AggregationRule{}
		}
		for _, sel := range want.AggregationRule.ClusterRoleSelectors {
			if !slices.ContainsFunc(next.AggregationRule.ClusterRoleSelectors, func(s metav1.LabelSelector) bool { return apiequality.Semantic.DeepEqual(s, sel) }) {
				next.AggregationRule.ClusterRoleSelectors = append(next.AggregationRule.ClusterRoleSelectors, sel)
			}
		}
	}
	if apiequality.Semantic.DeepEqual(next, stored) {
		return nil
	}
	return next
}

// ReconcileClusterRoleBinding is the binding to write given the stored one
// (nil: none), or nil when it is right; recreate says the roleRef differs,
// which only a delete and create can change.
func ReconcileClusterRoleBinding(stored *rbacv1.ClusterRoleBinding, want rbacv1.ClusterRoleBinding) (next *rbacv1.ClusterRoleBinding, recreate bool) {
	if stored == nil {
		return &want, false
	}
	if stored.Annotations[AutoUpdate] == "false" {
		return nil, false
	}
	if stored.RoleRef != want.RoleRef {
		n := want.DeepCopy()
		for _, s := range stored.Subjects {
			if !slices.Contains(n.Subjects, s) {
				n.Subjects = append(n.Subjects, s)
			}
		}
		return n, true
	}
	n := stored.DeepCopy()
	mergeMeta(&n.ObjectMeta, want.ObjectMeta)
	for _, s := range want.Subjects {
		if !slices.Contains(n.Subjects, s) {
			n.Subjects = append(n.Subjects, s)
		}
	}
	if apiequality.Semantic.DeepEqual(n, stored) {
		return nil, false
	}
	return n, false
}

func mergeMeta(m *metav1.ObjectMeta, want metav1.ObjectMeta) {
	for k, v := range want.Labels {
		if m.Labels == nil {
			m.Labels = map[string]string{}
		}
		if _, ok := m.Labels[k]; !ok {
			m.Labels[k] = v
		}
	}
	for k, v := range want.Annotations {
		if m.Annotations == nil {
			m.Annotations = map[string]string{}
		}
		if _, ok := m.Annotations[k]; !ok {
			m.Annotations[k] = v
		}
	}
}

// Aggregate is the rules of an aggregated ClusterRole: the union, in name
// order, of the rules of the roles its selectors pick (never itself),
// without repeats. The clusterrole-aggregation controller writes it; the
// start-up reconciliation does too, so the default roles are whole before
// any controller runs.
func Aggregate(role *rbacv1.ClusterRole, all []*rbacv1.ClusterRole, matches func(sel metav1.LabelSelector, labels map[string]string) bool) []rbacv1.PolicyRule {
	if role.AggregationRule == nil {
		return role.Rules
	}
	sorted := slices.Clone(all)
	slices.SortFunc(sorted, func(a, b *rbacv1.ClusterRole) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	var rules []rbacv1.PolicyRule
	for _, c := range sorted {
		if c.Name == role.Name {
			continue
		}
		picked := slices.ContainsFunc(role.AggregationRule.ClusterRoleSelectors, func(sel metav1.LabelSelector) bool { return matches(sel, c.Labels) })
		if !picked {
			continue
		}
		for _, rule := range c.Rules {
			if !slices.ContainsFunc(rules, func(x rbacv1.PolicyRule) bool { return apiequality.Semantic.DeepEqual(x, rule) }) {
				rules = append(rules, rule)
			}
		}
	}
	return rules
}

// ReconcileRole is ReconcileClusterRole for a namespaced Role.
func ReconcileRole(stored *rbacv1.Role, want rbacv1.Role) *rbacv1.Role {
	var s *rbacv1.ClusterRole
	if stored != nil {
		s = &rbacv1.ClusterRole{TypeMeta: stored.TypeMeta, ObjectMeta: stored.ObjectMeta, Rules: stored.Rules}
	}
	next := ReconcileClusterRole(s, rbacv1.ClusterRole{TypeMeta: want.TypeMeta, ObjectMeta: want.ObjectMeta, Rules: want.Rules})
	if next == nil {
		return nil
	}
	return &rbacv1.Role{TypeMeta: want.TypeMeta, ObjectMeta: next.ObjectMeta, Rules: next.Rules}
}

// ReconcileRoleBinding is ReconcileClusterRoleBinding for a RoleBinding.
func ReconcileRoleBinding(stored *rbacv1.RoleBinding, want rbacv1.RoleBinding) (*rbacv1.RoleBinding, bool) {
	var s *rbacv1.ClusterRoleBinding
	if stored != nil {
		s = &rbacv1.ClusterRoleBinding{TypeMeta: stored.TypeMeta, ObjectMeta: stored.ObjectMeta, RoleRef: stored.RoleRef, Subjects: stored.Subjects}
	}
	next, recreate := ReconcileClusterRoleBinding(s, rbacv1.ClusterRoleBinding{TypeMeta: want.TypeMeta, ObjectMeta: want.ObjectMeta, RoleRef: want.RoleRef, Subjects: want.Subjects})
	if next == nil {
		return nil, false
	}
	return &rbacv1.RoleBinding{TypeMeta: want.TypeMeta, ObjectMeta: next.ObjectMeta, RoleRef: next.RoleRef, Subjects: next.Subjects}, recreate
}
