package registry

import (
	"context"
	"fmt"
	"slices"

	authnv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/auth"
	"github.com/skiff-sh/skiff/internal/authz"
)

// Authorization is what the registry asks of the API server's authorizers:
// decisions (the review APIs, escalation's escalate and bind checks) and
// the RBAC rules a user holds or a role grants.
type Authorization interface {
	Authorize(a authz.Attributes) (authz.Decision, string)
	RulesFor(u auth.User, namespace string) ([]rbacv1.PolicyRule, []error)
	RoleRules(kind, namespace, name string) ([]rbacv1.PolicyRule, bool)
}

// reviewResource is a create-only, never stored resource whose create
// answers a question (the review APIs).
func reviewResource(r *Resource, act func(ctx context.Context, g *Registry, ns string, in runtime.Object) (runtime.Object, error)) {
	r.Virtual = true
	r.Verbs = []string{"create"}
	addAction(r, "", &Action{Kind: r.GVK(), Verbs: r.Verbs, New: r.New, Created: true,
		Act: func(ctx context.Context, g *Registry, ns, _ string, body func(runtime.Object) (runtime.Object, error), _ WriteOptions) (runtime.Object, error) {
			in, err := body(nil)
			if err != nil {
				return nil, err
			}
			return act(ctx, g, ns, in)
		}})
}

// accessAttributes are the attributes a review's spec asks about.
func accessAttributes(u auth.User, res *authorizationv1.ResourceAttributes, nonRes *authorizationv1.NonResourceAttributes) (authz.Attributes, field.ErrorList) {
	spec := field.NewPath("spec")
	if (res == nil) == (nonRes == nil) {
		return authz.Attributes{}, field.ErrorList{field.Invalid(spec.Child("resourceAttributes"), res, `exactly one of nonResourceAttributes or resourceAttributes must be specified`)}
	}
	if nonRes != nil {
		return authz.Attributes{User: u, Verb: nonRes.Verb, Path: nonRes.Path}, nil
	}
	return authz.Attributes{User: u, Verb: res.Verb, IsResource: true, APIGroup: res.Group, APIVersion: res.Version,
		Resource: res.Resource, Subresource: res.Subresource, Namespace: res.Namespace, Name: res.Name}, nil
}

// ready refuses a review while the authorizers are not wired (a registry
// without an API server, in tests).
func ready(g *Registry) error {
	if g.Authz == nil {
		return apierrors.NewServiceUnavailable("authorization is not ready")
	}
	return nil
}

func accessStatus(d authz.Decision, reason string) authorizationv1.SubjectAccessReviewStatus {
	return authorizationv1.SubjectAccessReviewStatus{Allowed: d == authz.Allow, Denied: d == authz.Deny, Reason: reason}
}

func invalid(kind string, errs field.ErrorList) error {
	return apierrors.NewInvalid(authorizationv1.SchemeGroupVersion.WithKind(kind).GroupKind(), "", errs)
}

// selfSubjectAccessReview: may I? (kubectl auth can-i)
func selfSubjectAccessReview(ctx context.Context, g *Registry, _ string, in runtime.Object) (runtime.Object, error) {
	if err := ready(g); err != nil {
		return nil, err
	}
	r := in.(*authorizationv1.SelfSubjectAccessReview)
	u, _ := auth.UserFrom(ctx)
	a, errs := accessAttributes(u, r.Spec.ResourceAttributes, r.Spec.NonResourceAttributes)
	if len(errs) > 0 {
		return nil, invalid("SelfSubjectAccessReview", errs)
	}
	r.Status = accessStatus(g.Authz.Authorize(a))
	return r, nil
}

// subjectAccessReview: may this user? (webhooks, aggregated servers)
func subjectAccessReview(_ context.Context, g *Registry, _ string, in runtime.Object) (runtime.Object, error) {
	r := in.(*authorizationv1.SubjectAccessReview)
	status, err := reviewSubject(g, "SubjectAccessReview", r.Spec)
	r.Status = status
	return r, err
}

// localSubjectAccessReview: may this user, in this namespace?
func localSubjectAccessReview(_ context.Context, g *Registry, ns string, in runtime.Object) (runtime.Object, error) {
	r := in.(*authorizationv1.LocalSubjectAccessReview)
	if r.Spec.ResourceAttributes == nil || r.Spec.ResourceAttributes.Namespace != ns {
		return nil, invalid("LocalSubjectAccessReview", field.ErrorList{field.Invalid(field.NewPath("spec", "resourceAttributes", "namespace"), ns, "must match metadata.namespace")})
	}
	r.Namespace = ns
	status, err := reviewSubject(g, "LocalSubjectAccessReview", r.Spec)
	r.Status = status
	return r, err
}

// reviewSubject decides a SubjectAccessReview's spec: a user or groups,
// and exactly one of resource or non-resource attributes.
func reviewSubject(g *Registry, kind string, spec authorizationv1.SubjectAccessReviewSpec) (authorizationv1.SubjectAccessReviewStatus, error) {
	if err := ready(g); err != nil {
		return authorizationv1.SubjectAccessReviewStatus{}, err
	}
	if spec.User == "" && len(spec.Groups) == 0 {
		return authorizationv1.SubjectAccessReviewStatus{}, invalid(kind, field.ErrorList{field.Invalid(field.NewPath("spec", "user"), spec.User, `at least one of user or group must be specified`)})
	}
	a, errs := accessAttributes(auth.User{Name: spec.User, UID: spec.UID, Groups: spec.Groups}, spec.ResourceAttributes, spec.NonResourceAttributes)
	if len(errs) > 0 {
		return authorizationv1.SubjectAccessReviewStatus{}, invalid(kind, errs)
	}
	return accessStatus(g.Authz.Authorize(a)), nil
}

// selfSubjectRulesReview: what may I do in this namespace? (kubectl auth
// can-i --list)
func selfSubjectRulesReview(ctx context.Context, g *Registry, _ string, in runtime.Object) (runtime.Object, error) {
	if err := ready(g); err != nil {
		return nil, err
	}
	r := in.(*authorizationv1.SelfSubjectRulesReview)
	if r.Spec.Namespace == "" {
		return nil, invalid("SelfSubjectRulesReview", field.ErrorList{field.Required(field.NewPath("spec", "namespace"), "")})
	}
	u, _ := auth.UserFrom(ctx)
	rules, errs := g.Authz.RulesFor(u, r.Spec.Namespace)
	var status authorizationv1.SubjectRulesReviewStatus
	for _, rule := range rules {
		if len(rule.NonResourceURLs) > 0 {
			status.NonResourceRules = append(status.NonResourceRules, authorizationv1.NonResourceRule{Verbs: rule.Verbs, NonResourceURLs: rule.NonResourceURLs})
			continue
		}
		status.ResourceRules = append(status.ResourceRules, authorizationv1.ResourceRule{Verbs: rule.Verbs, APIGroups: rule.APIGroups, Resources: rule.Resources, ResourceNames: rule.ResourceNames})
	}
	if len(errs) > 0 {
		status.EvaluationError = fmt.Sprint(errs)
	}
	// A node's and the masters' powers come from their authorizers, not
	// from rules: say the list is not the whole story, as upstream does.
	status.Incomplete = slices.Contains(u.Groups, authz.NodesGroup)
	r.Status = status
	return r, nil
}

// selfSubjectReview: who am I? (kubectl auth whoami)
func selfSubjectReview(ctx context.Context, _ *Registry, _ string, in runtime.Object) (runtime.Object, error) {
	r := in.(*authnv1.SelfSubjectReview)
	u, _ := auth.UserFrom(ctx)
	r.Status.UserInfo = authnv1.UserInfo{Username: u.Name, UID: u.UID, Groups: u.Groups}
	return r, nil
}
