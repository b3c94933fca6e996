package authz

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/skiff-sh/skiff/internal/auth"
)

// RBAC holds the cluster's Roles, ClusterRoles and their bindings, indexed
// by subject so a decision reads only the bindings of the request's user,
// groups and namespace, however many others exist.
type RBAC struct {
	mu           sync.RWMutex
	roles        map[string][]rbacv1.PolicyRule // namespace/name
	clusterRoles map[string][]rbacv1.PolicyRule // name
	// cluster: subject key → ClusterRoleBindings naming it;
	// namespaced: namespace → subject key → RoleBindings naming it.
	cluster    map[string][]*binding
	namespaced map[string]map[string][]*binding
	// bindings by kind/namespace/name, to unindex on update or delete.
	byName map[string]*binding
}

// binding is one (Cluster)RoleBinding reduced to what a decision needs.
type binding struct {
	id        string
	namespace string // "" for a ClusterRoleBinding
	roleKind  string // Role or ClusterRole
	roleName  string
	subjects  []string // subject keys
}

// NewRBAC returns an empty policy.
func NewRBAC() *RBAC {
	return &RBAC{roles: map[string][]rbacv1.PolicyRule{}, clusterRoles: map[string][]rbacv1.PolicyRule{},
		cluster: map[string][]*binding{}, namespaced: map[string]map[string][]*binding{}, byName: map[string]*binding{}}
}

// subjectKeys are the index keys a subject matches: users and service
// accounts by user name, groups by group name.
func subjectKey(s rbacv1.Subject, bindingNamespace string) string {
	switch s.Kind {
	case rbacv1.UserKind:
		return "u:" + s.Name
	case rbacv1.GroupKind:
		return "g:" + s.Name
	case rbacv1.ServiceAccountKind:
		ns := s.Namespace
		if ns == "" {
			ns = bindingNamespace
		}
		return "u:" + ServiceAccountUser(ns, s.Name)
	}
	return ""
}

// ServiceAccountUser is the user name of a service account's tokens.
func ServiceAccountUser(namespace, name string) string {
	return "system:serviceaccount:" + namespace + ":" + name
}

func userKeys(u auth.User) []string {
	keys := make([]string, 0, 1+len(u.Groups))
	keys = append(keys, "u:"+u.Name)
	for _, g := range u.Groups {
		keys = append(keys, "g:"+g)
	}
	return keys
}

// SetRole adds or replaces a Role.
func (r *RBAC) SetRole(o *rbacv1.Role) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.roles[o.Namespace+"/"+o.Name] = o.Rules
}

// DeleteRole removes a Role.
func (r *RBAC) DeleteRole(namespace, name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.roles, namespace+"/"+name)
}

// SetClusterRole adds or replaces a ClusterRole.
func (r *RBAC) SetClusterRole(o *rbacv1.ClusterRole) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clusterRoles[o.Name] = o.Rules
}

// DeleteClusterRole removes a ClusterRole.
func (r *RBAC) DeleteClusterRole(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.clusterRoles, name)
}

// SetRoleBinding adds or replaces a RoleBinding.
func (r *RBAC) SetRoleBinding(o *rbacv1.RoleBinding) {
	r.setBinding(&binding{id: "rb/" + o.Namespace + "/" + o.Name, namespace: o.Namespace, roleKind: o.RoleRef.Kind, roleName: o.RoleRef.Name}, o.Subjects)
}

// DeleteRoleBinding removes a RoleBinding.
func (r *RBAC) DeleteRoleBinding(namespace, name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unindexLocked("rb/" + namespace + "/" + name)
}

// SetClusterRoleBinding adds or replaces a ClusterRoleBinding.
func (r *RBAC) SetClusterRoleBinding(o *rbacv1.ClusterRoleBinding) {
	r.setBinding(&binding{id: "crb/" + o.Name, roleKind: o.RoleRef.Kind, roleName: o.RoleRef.Name}, o.Subjects)
}

// DeleteClusterRoleBinding removes a ClusterRoleBinding.
func (r *RBAC) DeleteClusterRoleBinding(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unindexLocked("crb/" + name)
}

func (r *RBAC) setBinding(b *binding, subjects []rbacv1.Subject) {
	for _, s := range subjects {
		if k := subjectKey(s, b.namespace); k != "" && !slices.Contains(b.subjects, k) {
			b.subjects = append(b.subjects, k)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unindexLocked(b.id)
	r.byName[b.id] = b
	idx := r.cluster
	if b.namespace != "" {
		idx = r.namespaced[b.namespace]
		if idx == nil {
			idx = map[string][]*binding{}
			r.namespaced[b.namespace] = idx
		}
	}
	for _, k := range b.subjects {
		idx[k] = append(idx[k], b)
	}
}

func (r *RBAC) unindexLocked(id string) {
	old := r.byName[id]
	if old == nil {
		return
	}
	delete(r.byName, id)
	idx := r.cluster
	if old.namespace != "" {
		idx = r.namespaced[old.namespace]
	}
	for _, k := range old.subjects {
		idx[k] = slices.DeleteFunc(idx[k], func(b *binding) bool { return b == old })
		if len(idx[k]) == 0 {
			delete(idx, k)
		}
	}
	if old.namespace != "" && len(idx) == 0 {
		delete(r.namespaced, old.namespace)
	}
}

// rulesLocked are the rules a binding grants, or why it grants none.
func (r *RBAC) rulesLocked(b *binding) ([]rbacv1.PolicyRule, error) {
	switch b.roleKind {
	case "ClusterRole":
		rules, ok := r.clusterRoles[b.roleName]
		if !ok {
			return nil, fmt.Errorf("clusterrole.rbac.authorization.k8s.io %q not found", b.roleName)
		}
		return rules, nil
	case "Role":
		rules, ok := r.roles[b.namespace+"/"+b.roleName]
		if !ok {
			return nil, fmt.Errorf("role.rbac.authorization.k8s.io %q not found", b.roleName)
		}
		return rules, nil
	}
	return nil, nil
}

// visit calls fn with the rules of every binding that applies to u in
// namespace ("" for cluster scope), ClusterRoleBindings first, until fn
// returns false; missing roles are collected as errors.
func (r *RBAC) visitLocked(u auth.User, namespace string, fn func(rules []rbacv1.PolicyRule) bool) []error {
	var errs []error
	keys := userKeys(u)
	scopes := []map[string][]*binding{r.cluster}
	if namespace != "" {
		scopes = append(scopes, r.namespaced[namespace])
	}
	for _, idx := range scopes {
		for _, k := range keys {
			for _, b := range idx[k] {
				rules, err := r.rulesLocked(b)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				if !fn(rules) {
					return errs
				}
			}
		}
	}
	return errs
}

// Authorize allows a request a binding's rules allow; otherwise it has no
// opinion (RBAC never denies), with the roles it could not find as reason.
func (r *RBAC) Authorize(a Attributes) (Decision, string) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	allowed := false
	errs := r.visitLocked(a.User, a.Namespace, func(rules []rbacv1.PolicyRule) bool {
		for i := range rules {
			if RuleAllows(&rules[i], a) {
				allowed = true
				return false
			}
		}
		return true
	})
	if allowed {
		return Allow, ""
	}
	if len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Error()
		}
		if len(msgs) == 1 {
			return NoOpinion, "RBAC: " + msgs[0]
		}
		return NoOpinion, "RBAC: [" + strings.Join(msgs, ", ") + "]"
	}
	return NoOpinion, ""
}

// RulesFor are the rules that apply to u in namespace ("" for cluster
// scope only): what SelfSubjectRulesReview and `kubectl auth can-i --list`
// show.
func (r *RBAC) RulesFor(u auth.User, namespace string) ([]rbacv1.PolicyRule, []error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []rbacv1.PolicyRule
	errs := r.visitLocked(u, namespace, func(rules []rbacv1.PolicyRule) bool {
		out = append(out, rules...)
		return true
	})
	return out, errs
}

// RuleAllows is upstream's RBAC rule match.
func RuleAllows(rule *rbacv1.PolicyRule, a Attributes) bool {
	if !has(rule.Verbs, a.Verb) {
		return false
	}
	if !a.IsResource {
		return nonResourceURLMatches(rule.NonResourceURLs, a.Path)
	}
	if !has(rule.APIGroups, a.APIGroup) {
		return false
	}
	if !resourceMatches(rule.Resources, a.Resource, a.Subresource) {
		return false
	}
	return len(rule.ResourceNames) == 0 || (a.Name != "" && slices.Contains(rule.ResourceNames, a.Name))
}

func has(list []string, v string) bool {
	for _, x := range list {
		if x == rbacv1.VerbAll || x == v {
			return true
		}
	}
	return false
}

// resourceMatches: "*" is everything; "pods" is the resource without a
// subresource; "pods/log" exactly that; "*/scale" any resource's scale.
func resourceMatches(resources []string, resource, sub string) bool {
	combined := resource
	if sub != "" {
		combined += "/" + sub
	}
	for _, r := range resources {
		switch {
		case r == rbacv1.ResourceAll, r == combined:
			return true
		case sub != "" && r == "*/"+sub:
			return true
		}
	}
	return false
}

// nonResourceURLMatches: "*" is every path; a trailing "*" is a prefix.
func nonResourceURLMatches(urls []string, path string) bool {
	for _, u := range urls {
		switch {
		case u == rbacv1.NonResourceAll, u == path:
			return true
		case strings.HasSuffix(u, "*") && strings.HasPrefix(path, strings.TrimSuffix(u, "*")):
			return true
		}
	}
	return false
}

// Forget drops every object of one resource (roles, clusterroles,
// rolebindings, clusterrolebindings), before a full reload.
func (r *RBAC) Forget(resource string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch resource {
	case "roles":
		r.roles = map[string][]rbacv1.PolicyRule{}
	case "clusterroles":
		r.clusterRoles = map[string][]rbacv1.PolicyRule{}
	case "rolebindings", "clusterrolebindings":
		prefix := map[string]string{"rolebindings": "rb/", "clusterrolebindings": "crb/"}[resource]
		for id := range r.byName {
			if strings.HasPrefix(id, prefix) {
				r.unindexLocked(id)
			}
		}
	}
}

// RoleRules are the rules of the Role (in namespace) or ClusterRole a
// binding refers to, and whether it exists.
func (r *RBAC) RoleRules(kind, namespace, name string) ([]rbacv1.PolicyRule, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if kind == "ClusterRole" {
		rules, ok := r.clusterRoles[name]
		return rules, ok
	}
	rules, ok := r.roles[namespace+"/"+name]
	return rules, ok
}
