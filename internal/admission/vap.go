package admission

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/google/cel-go/common/types/ref"

	vapolicy "github.com/skiff-sh/skiff/internal/admission/policy"
	"github.com/skiff-sh/skiff/internal/auth"
	"github.com/skiff-sh/skiff/internal/authz"
	skiffcel "github.com/skiff-sh/skiff/internal/cel"
)

var (
	policiesGVR = admissionregistrationv1.SchemeGroupVersion.WithResource("validatingadmissionpolicies")
	bindingsGVR = admissionregistrationv1.SchemeGroupVersion.WithResource("validatingadmissionpolicybindings")
)

// validatingPolicies is upstream's ValidatingAdmissionPolicy plugin: each
// binding whose policy and match resources select the request evaluates the
// policy's CEL validations (with its params); a failed validation denies,
// warns or is audited as the binding's validationActions say.
type validatingPolicies struct {
	objects Objects
	// authorizer answers the authorizer library's checks.
	authorizer authz.Authorizer

	mu       sync.Mutex
	compiled map[types.UID]compiledPolicy
}

type compiledPolicy struct {
	generation int64
	c          *vapolicy.Compiled
}

func (*validatingPolicies) Handles(op Operation) bool {
	return op == Create || op == Update || op == Delete
}

func (p *validatingPolicies) program(vap *admissionregistrationv1.ValidatingAdmissionPolicy) *vapolicy.Compiled {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.compiled[vap.UID]; ok && c.generation == vap.Generation {
		return c.c
	}
	if p.compiled == nil {
		p.compiled = map[types.UID]compiledPolicy{}
	}
	c := vapolicy.Compile(vap.Spec)
	p.compiled[vap.UID] = compiledPolicy{generation: vap.Generation, c: c}
	return c
}

func (p *validatingPolicies) Validate(ctx context.Context, a *Attributes) error {
	if a.Resource.Group == admissionregistrationv1.GroupName {
		return nil // policies never judge their own configuration
	}
	bindings := p.objects.List(bindingsGVR, "")
	if len(bindings) == 0 {
		return nil
	}
	slices.SortFunc(bindings, func(x, y runtime.Object) int {
		return strings.Compare(x.(metav1.Object).GetName(), y.(metav1.Object).GetName())
	})
	req := matchRequest(ctx, p.objects, a)
	var input *vapolicy.Input
	for _, o := range bindings {
		b := o.(*admissionregistrationv1.ValidatingAdmissionPolicyBinding)
		po, err := p.objects.Get(ctx, policiesGVR, "", b.Spec.PolicyName)
		if err != nil {
			continue // a binding to a missing policy does nothing
		}
		vap := po.(*admissionregistrationv1.ValidatingAdmissionPolicy)
		if !vapolicy.Matches(vap.Spec.MatchConstraints, req) || !vapolicy.Matches(b.Spec.MatchResources, req) {
			continue
		}
		if input == nil {
			in, err := p.input(ctx, a)
			if err != nil {
				return apierrors.NewInternalError(err)
			}
			input = &in
		}
		if err := p.evaluate(ctx, a, vap, b, *input); err != nil {
			return err
		}
	}
	return nil
}

func (p *validatingPolicies) evaluate(ctx context.Context, a *Attributes, vap *admissionregistrationv1.ValidatingAdmissionPolicy, b *admissionregistrationv1.ValidatingAdmissionPolicyBinding, in vapolicy.Input) error {
	fail := vap.Spec.FailurePolicy == nil || *vap.Spec.FailurePolicy == admissionregistrationv1.Fail
	failed := func(err error) error {
		if !fail {
			return nil
		}
		return &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: http.StatusForbidden, Reason: metav1.StatusReasonForbidden,
			Message: fmt.Sprintf("policy '%s' with binding '%s' denied request: %v", vap.Name, b.Name, err)}}
	}
	params, err := p.params(ctx, a, vap, b)
	if err != nil {
		return failed(err)
	}
	c := p.program(vap)
	for _, param := range params {
		in.Params = param
		res, err := c.Evaluate(in)
		if err != nil {
			return failed(err)
		}
		for k, v := range res.Audit {
			Annotate(ctx, vap.Name+"/"+k, v)
		}
		for _, v := range res.Violations {
			if err := act(ctx, vap.Name, b, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// act carries out a binding's validationActions for one violation.
func act(ctx context.Context, policyName string, b *admissionregistrationv1.ValidatingAdmissionPolicyBinding, v vapolicy.Violation) error {
	for _, action := range b.Spec.ValidationActions {
		switch action {
		case admissionregistrationv1.Warn:
			Warn(ctx, fmt.Sprintf("Validation failed for ValidatingAdmissionPolicy '%s' with binding '%s': %s", policyName, b.Name, v.Message))
		case admissionregistrationv1.Audit:
			Annotate(ctx, "validation.policy.admission.k8s.io/validation_failure",
				fmt.Sprintf(`[{"message":%q,"policy":%q,"binding":%q,"expressionIndex":0,"validationActions":["Audit"]}]`, v.Message, policyName, b.Name))
		}
	}
	if !slices.Contains(b.Spec.ValidationActions, admissionregistrationv1.Deny) {
		return nil
	}
	code := map[string]int32{"Unauthorized": 401, "Forbidden": 403, "Invalid": 422, "RequestEntityTooLarge": 413}[v.Reason]
	if code == 0 {
		code = 422
	}
	return &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: code, Reason: metav1.StatusReason(v.Reason),
		Message: fmt.Sprintf("ValidatingAdmissionPolicy '%s' with binding '%s' denied request: %s", policyName, b.Name, v.Message)}}
}

// params are the param objects a binding names (one nil without a
// paramKind); none found is an error unless the binding allows it.
func (p *validatingPolicies) params(ctx context.Context, a *Attributes, vap *admissionregistrationv1.ValidatingAdmissionPolicy, b *admissionregistrationv1.ValidatingAdmissionPolicyBinding) ([]any, error) {
	if vap.Spec.ParamKind == nil {
		return []any{nil}, nil
	}
	ref := b.Spec.ParamRef
	if ref == nil {
		return nil, fmt.Errorf("policy %s has a paramKind but binding %s has no paramRef", vap.Name, b.Name)
	}
	gv, err := schema.ParseGroupVersion(vap.Spec.ParamKind.APIVersion)
	if err != nil {
		return nil, err
	}
	gvr, namespaced, ok := p.objects.ResourceFor(gv.WithKind(vap.Spec.ParamKind.Kind))
	if !ok {
		return nil, fmt.Errorf("failed to find resource for param kind %s", vap.Spec.ParamKind.Kind)
	}
	ns := ""
	if namespaced {
		ns = ref.Namespace
		if ns == "" {
			ns = a.Namespace
		}
	}
	var found []runtime.Object
	if ref.Name != "" {
		if o, err := p.objects.Get(ctx, gvr, ns, ref.Name); err == nil {
			found = append(found, o)
		}
	} else {
		sel := labels.Everything()
		if ref.Selector != nil {
			if sel, err = metav1.LabelSelectorAsSelector(ref.Selector); err != nil {
				return nil, err
			}
		}
		for _, o := range p.objects.List(gvr, ns) {
			if acc, err := meta.Accessor(o); err == nil && sel.Matches(labels.Set(acc.GetLabels())) {
				found = append(found, o)
			}
		}
	}
	if len(found) == 0 {
		if ref.ParameterNotFoundAction != nil && *ref.ParameterNotFoundAction == admissionregistrationv1.AllowAction {
			return nil, nil
		}
		return nil, fmt.Errorf("no params found for policy binding with `Deny` parameterNotFoundAction")
	}
	out := make([]any, 0, len(found))
	for _, o := range found {
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// input is the request as expressions see it: objects in their JSON form.
func (p *validatingPolicies) input(ctx context.Context, a *Attributes) (vapolicy.Input, error) {
	var in vapolicy.Input
	var err error
	if in.Object, err = jsonForm(a.Object, a); err != nil {
		return in, err
	}
	if in.OldObject, err = jsonForm(a.OldObject, a); err != nil {
		return in, err
	}
	if a.Namespace != "" {
		if ns, err := p.objects.Get(ctx, namespacesGVR, "", a.Namespace); err == nil {
			in.Namespace, _ = jsonForm(ns, &Attributes{Kind: corev1.SchemeGroupVersion.WithKind("Namespace")})
		}
	}
	in.Request = requestVars(a)
	if p.authorizer != nil {
		in.Authorizer, in.RequestResource = authorizerValues(p.authorizer, a)
	}
	return in, nil
}

// authorizerValues are the authorizer library's `authorizer` and
// `authorizer.requestResource` for a's user and resource.
func authorizerValues(z authz.Authorizer, a *Attributes) (authorizer, requestResource ref.Val) {
	ask := authorizeAs(z, a.User)
	return skiffcel.NewAuthorizer(ask), skiffcel.NewResourceCheck(ask, a.Resource.Group, a.Resource.Resource, a.Subresource, a.Namespace, a.Name)
}

// authorizeAs answers the authorizer library's checks for user (or the
// ServiceAccount a check names) with the server's authorizer, as upstream
// does: allowed only on Allow, with the authorizer's reason.
func authorizeAs(z authz.Authorizer, user auth.User) skiffcel.Authorize {
	return func(c skiffcel.AuthzCheck) (bool, string, error) {
		u := user
		if ns, name, ok := strings.Cut(c.ServiceAccount, "/"); ok {
			u = auth.User{Name: "system:serviceaccount:" + ns + ":" + name,
				Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}}
		}
		d, reason := z.Authorize(authz.Attributes{User: u, Verb: c.Verb, IsResource: c.Path == "", APIGroup: c.Group,
			Resource: c.Resource, Subresource: c.Subresource, Namespace: c.Namespace, Name: c.Name, Path: c.Path})
		return d == authz.Allow, reason, nil
	}
}

func stringsAny(in []string) []any {
	out := make([]any, len(in))
	for i, s := range in {
		out[i] = s
	}
	return out
}

// jsonForm is obj as unstructured JSON values (nil stays nil).
func jsonForm(obj runtime.Object, a *Attributes) (any, error) {
	if obj == nil {
		return nil, nil
	}
	c := obj.DeepCopyObject()
	c.GetObjectKind().SetGroupVersionKind(a.Kind)
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(c)
	if err != nil {
		return nil, err
	}
	return u, nil
}
