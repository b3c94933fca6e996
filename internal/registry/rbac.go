package registry

import (
	"context"
	"errors"
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/auth"
	"github.com/skiff-sh/skiff/internal/authz"
)

func roleBindingTable() ([]metav1.TableColumnDefinition, func(runtime.Object, bool) []any) {
	return []metav1.TableColumnDefinition{nameCol, col("Role", "string", 0, ""), ageCol, col("Users", "string", 1, ""), col("Groups", "string", 1, ""), col("ServiceAccounts", "string", 1, "")}, func(o runtime.Object, _ bool) []any {
		var ref rbacv1.RoleRef
		var subjects []rbacv1.Subject
		switch b := o.(type) {
		case *rbacv1.RoleBinding:
			ref, subjects = b.RoleRef, b.Subjects
		case *rbacv1.ClusterRoleBinding:
			ref, subjects = b.RoleRef, b.Subjects
		}
		var users, groups, sas []string
		for _, s := range subjects {
			switch s.Kind {
			case rbacv1.UserKind:
				users = append(users, s.Name)
			case rbacv1.GroupKind:
				groups = append(groups, s.Name)
			case rbacv1.ServiceAccountKind:
				sas = append(sas, s.Namespace+"/"+s.Name)
			}
		}
		return []any{nameOf(o), ref.Kind + "/" + ref.Name, ageOf(o), strings.Join(users, ", "), strings.Join(groups, ", "), strings.Join(sas, ", ")}
	}
}

// Escalation prevention, as upstream's RBAC storage: a user may write a
// role only with rules they hold, unless they may "escalate" on it; and
// bind a role only if they hold its rules, unless they may "bind" it. The
// system:masters group, and the server's own writes (no user), may do both.

func rbacGroupResource(resource string) schema.GroupResource {
	return schema.GroupResource{Group: rbacv1.GroupName, Resource: resource}
}

// privileged: the server itself, or a member of system:masters.
func privileged(ctx context.Context) (auth.User, bool) {
	u, ok := auth.UserFrom(ctx)
	return u, !ok || slices.Contains(u.Groups, authz.Masters)
}

// may asks the authorizers whether u may verb (escalate, bind, approve,
// sign) the named object of group/resource.
func may(g *Registry, u auth.User, verb, group, resource, ns, name string) bool {
	if g.Authz == nil {
		return false
	}
	d, _ := g.Authz.Authorize(authz.Attributes{User: u, Verb: verb, IsResource: true, APIGroup: group, Resource: resource, Namespace: ns, Name: name})
	return d == authz.Allow
}

func guardRole(ctx context.Context, g *Registry, obj, _ runtime.Object) error {
	u, ok := privileged(ctx)
	if ok {
		return nil
	}
	var ns, name, resource string
	var rules []rbacv1.PolicyRule
	switch o := obj.(type) {
	case *rbacv1.Role:
		ns, name, resource, rules = o.Namespace, o.Name, "roles", o.Rules
	case *rbacv1.ClusterRole:
		name, resource, rules = o.Name, "clusterroles", o.Rules
		if o.AggregationRule != nil && !may(g, u, "escalate", rbacv1.GroupName, resource, "", name) {
			return apierrors.NewForbidden(rbacGroupResource(resource), name, errors.New("must have cluster-admin privileges to use the aggregationRule"))
		}
	}
	if may(g, u, "escalate", rbacv1.GroupName, resource, ns, name) {
		return nil
	}
	if g.Authz == nil {
		return apierrors.NewForbidden(rbacGroupResource(resource), name, errors.New("authorization is not ready"))
	}
	owner, _ := g.Authz.RulesFor(u, ns)
	if covered, missing := authz.Covers(owner, rules); !covered {
		return apierrors.NewForbidden(rbacGroupResource(resource), name, authz.EscalationError(u, missing))
	}
	return nil
}

func guardBinding(ctx context.Context, g *Registry, obj, _ runtime.Object) error {
	u, ok := privileged(ctx)
	if ok {
		return nil
	}
	var ns, name, resource string
	var ref rbacv1.RoleRef
	switch b := obj.(type) {
	case *rbacv1.RoleBinding:
		ns, name, resource, ref = b.Namespace, b.Name, "rolebindings", b.RoleRef
	case *rbacv1.ClusterRoleBinding:
		name, resource, ref = b.Name, "clusterrolebindings", b.RoleRef
	}
	roleResource := map[string]string{"Role": "roles", "ClusterRole": "clusterroles"}[ref.Kind]
	roleNS := ns
	if ref.Kind == "ClusterRole" {
		roleNS = ""
	}
	// Binding in a namespace: "bind" is asked there, even for a
	// ClusterRole, as upstream.
	if may(g, u, "bind", rbacv1.GroupName, roleResource, ns, ref.Name) {
		return nil
	}
	if g.Authz == nil {
		return apierrors.NewForbidden(rbacGroupResource(resource), name, errors.New("authorization is not ready"))
	}
	rules, found := g.Authz.RoleRules(ref.Kind, roleNS, ref.Name)
	if !found {
		return apierrors.NewNotFound(rbacGroupResource(roleResource), ref.Name)
	}
	owner, _ := g.Authz.RulesFor(u, ns)
	if covered, missing := authz.Covers(owner, rules); !covered {
		return apierrors.NewForbidden(rbacGroupResource(resource), name, authz.EscalationError(u, missing))
	}
	return nil
}

// validateRoleRef: a binding's roleRef names a Role or ClusterRole of the
// RBAC group (a ClusterRoleBinding only a ClusterRole), and never changes.
func validateRoleRef(ref rbacv1.RoleRef, cluster bool) field.ErrorList {
	p := field.NewPath("roleRef")
	var errs field.ErrorList
	if ref.APIGroup != rbacv1.GroupName {
		errs = append(errs, field.NotSupported(p.Child("apiGroup"), ref.APIGroup, []string{rbacv1.GroupName}))
	}
	kinds := []string{"Role", "ClusterRole"}
	if cluster {
		kinds = []string{"ClusterRole"}
	}
	if !slices.Contains(kinds, ref.Kind) {
		errs = append(errs, field.NotSupported(p.Child("kind"), ref.Kind, kinds))
	}
	if ref.Name == "" {
		errs = append(errs, field.Required(p.Child("name"), ""))
	}
	return errs
}

func validateSubjects(subjects []rbacv1.Subject, cluster bool) field.ErrorList {
	var errs field.ErrorList
	for i, s := range subjects {
		p := field.NewPath("subjects").Index(i)
		if s.Name == "" {
			errs = append(errs, field.Required(p.Child("name"), ""))
		}
		switch s.Kind {
		case rbacv1.ServiceAccountKind:
			if s.APIGroup != "" {
				errs = append(errs, field.NotSupported(p.Child("apiGroup"), s.APIGroup, []string{""}))
			}
			if cluster && s.Namespace == "" {
				errs = append(errs, field.Required(p.Child("namespace"), ""))
			}
		case rbacv1.UserKind, rbacv1.GroupKind:
			if s.APIGroup != rbacv1.GroupName {
				errs = append(errs, field.NotSupported(p.Child("apiGroup"), s.APIGroup, []string{rbacv1.GroupName}))
			}
		default:
			errs = append(errs, field.NotSupported(p.Child("kind"), s.Kind, []string{rbacv1.ServiceAccountKind, rbacv1.UserKind, rbacv1.GroupKind}))
		}
	}
	return errs
}

// defaultBinding is upstream's rbac/v1 defaulting: an empty roleRef
// apiGroup is RBAC's, as is a User's or Group's subject apiGroup.
func defaultBinding(ref *rbacv1.RoleRef, subjects []rbacv1.Subject) {
	if ref.APIGroup == "" {
		ref.APIGroup = rbacv1.GroupName
	}
	for i := range subjects {
		if s := &subjects[i]; s.APIGroup == "" && (s.Kind == rbacv1.UserKind || s.Kind == rbacv1.GroupKind) {
			s.APIGroup = rbacv1.GroupName
		}
	}
}

func roleBindingStrategy(r *Resource) {
	r.Guard = guardBinding
	r.Default = asDefault(func(b *rbacv1.RoleBinding) { defaultBinding(&b.RoleRef, b.Subjects) })
	r.Validate = asValidate(func(b *rbacv1.RoleBinding) field.ErrorList {
		return append(validateRoleRef(b.RoleRef, false), validateSubjects(b.Subjects, false)...)
	})
	r.ValidateUpdate = asValidateUpdate(func(b, old *rbacv1.RoleBinding) field.ErrorList {
		if b.RoleRef != old.RoleRef {
			return field.ErrorList{field.Invalid(field.NewPath("roleRef"), b.RoleRef, "cannot change roleRef")}
		}
		return nil
	})
}

func clusterRoleBindingStrategy(r *Resource) {
	r.Guard = guardBinding
	r.Default = asDefault(func(b *rbacv1.ClusterRoleBinding) { defaultBinding(&b.RoleRef, b.Subjects) })
	r.Validate = asValidate(func(b *rbacv1.ClusterRoleBinding) field.ErrorList {
		return append(validateRoleRef(b.RoleRef, true), validateSubjects(b.Subjects, true)...)
	})
	r.ValidateUpdate = asValidateUpdate(func(b, old *rbacv1.ClusterRoleBinding) field.ErrorList {
		if b.RoleRef != old.RoleRef {
			return field.ErrorList{field.Invalid(field.NewPath("roleRef"), b.RoleRef, "cannot change roleRef")}
		}
		return nil
	})
}
