package admission

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	ktypes "k8s.io/apimachinery/pkg/types"

	vapolicy "github.com/skiff-sh/skiff/internal/admission/policy"
	skiffcel "github.com/skiff-sh/skiff/internal/cel"
)

var (
	mutatingPoliciesGVR = admissionregistrationv1.SchemeGroupVersion.WithResource("mutatingadmissionpolicies")
	mutatingBindingsGVR = admissionregistrationv1.SchemeGroupVersion.WithResource("mutatingadmissionpolicybindings")
)

// mutatingPolicies is upstream's MutatingAdmissionPolicy plugin: each
// binding whose policy selects the request applies the policy's mutations,
// in order: an apply configuration (Object{...}) merged into the object,
// or a list of JSON patches (JSONPatch{...}).
type mutatingPolicies struct {
	objects Objects
	vap     *validatingPolicies // params, match requests and inputs are shared

	mu       sync.Mutex
	compiled map[ktypes.UID]compiledMutations
}

type compiledMutations struct {
	generation int64
	conditions []*skiffcel.Program
	variables  []namedProgram
	mutations  []mutation
	err        error
}

type namedProgram struct {
	name string
	prog *skiffcel.Program
}

type mutation struct {
	patchType admissionregistrationv1.PatchType
	prog      *skiffcel.Program
}

func (*mutatingPolicies) Handles(op Operation) bool { return op == Create || op == Update }

func (p *mutatingPolicies) program(m *admissionregistrationv1.MutatingAdmissionPolicy) compiledMutations {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.compiled[m.UID]; ok && c.generation == m.Generation {
		return c
	}
	c := compiledMutations{generation: m.Generation}
	env, err := skiffcel.NewMutationEnv(append([]skiffcel.Var{
		{Name: "object"}, {Name: "oldObject"}, {Name: "request"},
		{Name: "params"}, {Name: "namespaceObject"},
		{Name: "variables", Type: cel.MapType(cel.StringType, cel.DynType)}}, skiffcel.AuthorizerVars()...)...)
	compile := func(what, expr string) *skiffcel.Program {
		if err != nil {
			return nil
		}
		var prog *skiffcel.Program
		if prog, err = skiffcel.Compile(env, expr, skiffcel.StaticEstimatedCostLimit, skiffcel.MaxRequestSizeBytes); err != nil {
			err = fmt.Errorf("%s %q: %w", what, expr, err)
		}
		return prog
	}
	for _, mc := range m.Spec.MatchConditions {
		c.conditions = append(c.conditions, compile("matchCondition", mc.Expression))
	}
	for _, v := range m.Spec.Variables {
		c.variables = append(c.variables, namedProgram{v.Name, compile("variable", v.Expression)})
	}
	for _, mu := range m.Spec.Mutations {
		expr := ""
		switch {
		case mu.ApplyConfiguration != nil:
			expr = mu.ApplyConfiguration.Expression
		case mu.JSONPatch != nil:
			expr = mu.JSONPatch.Expression
		}
		c.mutations = append(c.mutations, mutation{patchType: mu.PatchType, prog: compile("mutation", expr)})
	}
	c.err = err
	if p.compiled == nil {
		p.compiled = map[ktypes.UID]compiledMutations{}
	}
	p.compiled[m.UID] = c
	return c
}

func (p *mutatingPolicies) Admit(ctx context.Context, a *Attributes) error {
	if a.Resource.Group == admissionregistrationv1.GroupName {
		return nil
	}
	bindings := p.objects.List(mutatingBindingsGVR, "")
	if len(bindings) == 0 {
		return nil
	}
	slices.SortFunc(bindings, func(x, y runtime.Object) int {
		return strings.Compare(x.(metav1.Object).GetName(), y.(metav1.Object).GetName())
	})
	req := matchRequest(ctx, p.objects, a)
	for _, o := range bindings {
		b := o.(*admissionregistrationv1.MutatingAdmissionPolicyBinding)
		po, err := p.objects.Get(ctx, mutatingPoliciesGVR, "", b.Spec.PolicyName)
		if err != nil {
			continue
		}
		m := po.(*admissionregistrationv1.MutatingAdmissionPolicy)
		if !vapolicy.Matches(m.Spec.MatchConstraints, req) || !vapolicy.Matches(b.Spec.MatchResources, req) {
			continue
		}
		if err := p.apply(ctx, a, m, b); err != nil {
			if m.Spec.FailurePolicy != nil && *m.Spec.FailurePolicy == admissionregistrationv1.Ignore {
				continue
			}
			return &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: 403, Reason: metav1.StatusReasonForbidden,
				Message: fmt.Sprintf("policy '%s' with binding '%s' denied request: %v", m.Name, b.Name, err)}}
		}
	}
	return nil
}

// apply runs one policy's mutations for one binding, for each of its
// params.
func (p *mutatingPolicies) apply(ctx context.Context, a *Attributes, m *admissionregistrationv1.MutatingAdmissionPolicy, b *admissionregistrationv1.MutatingAdmissionPolicyBinding) error {
	c := p.program(m)
	if c.err != nil {
		return c.err
	}
	params := []any{nil}
	if m.Spec.ParamKind != nil {
		vb := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{ObjectMeta: b.ObjectMeta,
			Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: b.Spec.PolicyName, ParamRef: b.Spec.ParamRef}}
		vp := &admissionregistrationv1.ValidatingAdmissionPolicy{ObjectMeta: m.ObjectMeta, Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{ParamKind: m.Spec.ParamKind}}
		var err error
		if params, err = p.vap.params(ctx, a, vp, vb); err != nil {
			return err
		}
	}
	for _, param := range params {
		in, err := p.vap.input(ctx, a)
		if err != nil {
			return err
		}
		vars := map[string]any{"object": in.Object, "oldObject": in.OldObject, "request": in.Request, "params": param, "namespaceObject": in.Namespace}
		if in.Authorizer != nil {
			vars["authorizer"], vars["authorizer.requestResource"] = in.Authorizer, in.RequestResource
		}
		variables := map[string]any{}
		vars["variables"] = variables
		matched := true
		for _, cond := range c.conditions {
			out, _, err := cond.Eval(vars)
			if err != nil {
				return err
			}
			if bv, ok := out.(types.Bool); ok && !bool(bv) {
				matched = false
				break
			}
		}
		if !matched {
			continue
		}
		for _, v := range c.variables {
			out, _, err := v.prog.Eval(vars)
			if err != nil {
				return fmt.Errorf("variable %q: %w", v.name, err)
			}
			variables[v.name] = out
		}
		for _, mu := range c.mutations {
			out, _, err := mu.prog.Eval(vars)
			if err != nil {
				return err
			}
			obj, _ := vars["object"].(map[string]any)
			next, err := mutate(obj, mu.patchType, skiffcel.Native(out), a.ApplyMerge)
			if err != nil {
				return err
			}
			if err := setObject(a, next); err != nil {
				return err
			}
			vars["object"] = next
		}
	}
	return nil
}

// mutate applies one mutation's value to obj (its JSON form); merge, when
// set, merges apply configurations by the kind's schema.
func mutate(obj map[string]any, pt admissionregistrationv1.PatchType, value any, merge func(obj, cfg map[string]any) (map[string]any, error)) (map[string]any, error) {
	switch pt {
	case admissionregistrationv1.PatchTypeApplyConfiguration:
		cfg, ok := value.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("apply configuration must be an Object, got %T", value)
		}
		if merge != nil {
			return merge(obj, cfg)
		}
		return mergeApply(runtime.DeepCopyJSON(obj), cfg), nil
	case admissionregistrationv1.PatchTypeJSONPatch:
		ops, err := json.Marshal(value)
		if err != nil {
			return nil, err
		}
		patch, err := jsonpatch.DecodePatch(ops)
		if err != nil {
			return nil, fmt.Errorf("JSON patch: %w", err)
		}
		doc, err := json.Marshal(obj)
		if err != nil {
			return nil, err
		}
		out, err := patch.Apply(doc)
		if err != nil {
			return nil, fmt.Errorf("JSON patch: %w", err)
		}
		next := &unstructured.Unstructured{}
		if err := next.UnmarshalJSON(out); err != nil {
			return nil, err
		}
		return next.Object, nil
	}
	return nil, fmt.Errorf("unsupported patchType %q", pt)
}

// mergeApply merges an apply configuration into obj as server-side apply
// merges a configuration of one manager: maps field by field, other
// values (lists included) replaced.
func mergeApply(obj, cfg map[string]any) map[string]any {
	for k, v := range cfg {
		if vm, ok := v.(map[string]any); ok {
			if om, ok := obj[k].(map[string]any); ok {
				obj[k] = mergeApply(om, vm)
				continue
			}
		}
		obj[k] = v
	}
	return obj
}

// setObject replaces a's object with next (its JSON form).
func setObject(a *Attributes, next map[string]any) error {
	if u, ok := a.Object.(*unstructured.Unstructured); ok {
		u.Object = next
		a.Mutated = true
		return nil
	}
	v := reflect.New(reflect.TypeOf(a.Object).Elem())
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(next, v.Interface()); err != nil {
		return fmt.Errorf("decode the mutated object: %w", err)
	}
	reflect.ValueOf(a.Object).Elem().Set(v.Elem())
	a.Mutated = true
	return nil
}
