package policy

import (
	"fmt"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"

	skiffcel "github.com/skiff-sh/skiff/internal/cel"
)

// Compiled is a policy's programs.
type Compiled struct {
	Conditions  []named
	Variables   []named
	Validations []validation
	Audit       []named
	// Err is why the policy cannot be used (a program that does not
	// compile): the binding's failure policy decides.
	Err error
}

type named struct {
	name string
	prog *skiffcel.Program
}

type validation struct {
	v       admissionregistrationv1.Validation
	prog    *skiffcel.Program
	message *skiffcel.Program
}

// env declares what policy expressions see.
func env() (*cel.Env, error) {
	vars := append([]skiffcel.Var{
		{Name: "object"}, {Name: "oldObject"}, {Name: "request"},
		{Name: "params"}, {Name: "namespaceObject"},
		{Name: "variables", Type: cel.MapType(cel.StringType, cel.DynType)},
	}, skiffcel.AuthorizerVars()...)
	return skiffcel.NewEnv(vars...)
}

// Compile compiles a policy's expressions.
func Compile(spec admissionregistrationv1.ValidatingAdmissionPolicySpec) *Compiled {
	c := &Compiled{}
	e, err := env()
	if err != nil {
		c.Err = err
		return c
	}
	compile := func(what, expr string) *skiffcel.Program {
		if c.Err != nil {
			return nil
		}
		p, err := skiffcel.Compile(e, expr, skiffcel.StaticEstimatedCostLimit, skiffcel.MaxRequestSizeBytes)
		if err != nil {
			c.Err = fmt.Errorf("%s %q: %w", what, expr, err)
		}
		return p
	}
	for _, m := range spec.MatchConditions {
		c.Conditions = append(c.Conditions, named{m.Name, compile("matchCondition", m.Expression)})
	}
	for _, v := range spec.Variables {
		c.Variables = append(c.Variables, named{v.Name, compile("variable", v.Expression)})
	}
	for _, v := range spec.Validations {
		val := validation{v: v, prog: compile("validation", v.Expression)}
		if v.MessageExpression != "" {
			val.message = compile("messageExpression", v.MessageExpression)
		}
		c.Validations = append(c.Validations, val)
	}
	for _, a := range spec.AuditAnnotations {
		c.Audit = append(c.Audit, named{a.Key, compile("auditAnnotation", a.ValueExpression)})
	}
	return c
}

// Input is what expressions see.
type Input struct {
	Object, OldObject, Request, Params, Namespace any
	// Authorizer and RequestResource are the authorizer library's values
	// for the request's user (nil: expressions that use them fail).
	Authorizer, RequestResource any
}

// Violation is one failed validation.
type Violation struct {
	Message string
	Reason  string
}

// Result is a policy's verdict on one request with one param.
type Result struct {
	Matched    bool
	Violations []Violation
	Audit      map[string]string
}

// Evaluate runs the programs: match conditions first (any false: the
// policy does not apply), then variables in order, then validations and
// audit annotations. An evaluation error is returned for the failure
// policy to decide.
func (c *Compiled) Evaluate(in Input) (Result, error) {
	if c.Err != nil {
		return Result{}, c.Err
	}
	vars := map[string]any{"object": in.Object, "oldObject": in.OldObject, "request": in.Request, "params": in.Params, "namespaceObject": in.Namespace}
	if in.Authorizer != nil {
		vars["authorizer"], vars["authorizer.requestResource"] = in.Authorizer, in.RequestResource
	}
	variables := map[string]any{}
	vars["variables"] = variables
	for _, m := range c.Conditions {
		out, _, err := m.prog.Eval(vars)
		if err != nil {
			return Result{}, fmt.Errorf("matchCondition %q: %w", m.name, err)
		}
		if b, ok := out.(types.Bool); ok && !bool(b) {
			return Result{}, nil
		}
	}
	for _, v := range c.Variables {
		out, _, err := v.prog.Eval(vars)
		if err != nil {
			return Result{}, fmt.Errorf("variable %q: %w", v.name, err)
		}
		variables[v.name] = out
	}
	res := Result{Matched: true}
	for _, v := range c.Validations {
		out, _, err := v.prog.Eval(vars)
		if err != nil {
			return Result{}, fmt.Errorf("expression %q: %w", v.v.Expression, err)
		}
		if b, ok := out.(types.Bool); ok && bool(b) {
			continue
		}
		msg := v.v.Message
		if v.message != nil {
			if m, _, err := v.message.Eval(vars); err == nil {
				if s, ok := m.(types.String); ok && strings.TrimSpace(string(s)) != "" {
					msg = string(s)
				}
			}
		}
		if msg == "" {
			msg = "failed expression: " + strings.TrimSpace(v.v.Expression)
		}
		reason := "Invalid"
		if v.v.Reason != nil {
			reason = string(*v.v.Reason)
		}
		res.Violations = append(res.Violations, Violation{Message: msg, Reason: reason})
	}
	for _, a := range c.Audit {
		out, _, err := a.prog.Eval(vars)
		if err != nil {
			return Result{}, fmt.Errorf("auditAnnotation %q: %w", a.name, err)
		}
		if s, ok := out.(types.String); ok {
			if res.Audit == nil {
				res.Audit = map[string]string{}
			}
			res.Audit[a.name] = string(s)
		}
	}
	return res, nil
}
