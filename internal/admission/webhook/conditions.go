package webhook

import (
	"fmt"
	"sync"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"

	skiffcel "github.com/skiff-sh/skiff/internal/cel"
)

// conditionEnv declares what match conditions see.
var conditionEnv = sync.OnceValues(func() (*cel.Env, error) {
	vars := append([]skiffcel.Var{{Name: "object"}, {Name: "oldObject"}, {Name: "request"}}, skiffcel.AuthorizerVars()...)
	return skiffcel.NewEnv(vars...)
})

var compiled sync.Map // expression → *skiffcel.Program

// CompileCondition checks a match condition's expression: it must compile
// to a bool within the cost budget.
func CompileCondition(expr string) (*skiffcel.Program, error) {
	if p, ok := compiled.Load(expr); ok {
		return p.(*skiffcel.Program), nil
	}
	env, err := conditionEnv()
	if err != nil {
		return nil, err
	}
	p, err := skiffcel.Compile(env, expr, skiffcel.StaticEstimatedCostLimit, skiffcel.MaxRequestSizeBytes)
	if err != nil {
		return nil, err
	}
	if p.Type != cel.BoolType && p.Type != cel.DynType {
		return nil, fmt.Errorf("must evaluate to bool")
	}
	compiled.Store(expr, p)
	return p, nil
}

// ConditionsMet evaluates a webhook's match conditions in order: false at
// the first that is false; an error for one that cannot be evaluated.
func ConditionsMet(conds []admissionregistrationv1.MatchCondition, vars map[string]any) (bool, error) {
	for _, c := range conds {
		p, err := CompileCondition(c.Expression)
		if err != nil {
			return false, fmt.Errorf("match condition %q: %w", c.Name, err)
		}
		out, _, err := p.Eval(vars)
		if err != nil {
			return false, fmt.Errorf("match condition %q: %w", c.Name, err)
		}
		if b, ok := out.(types.Bool); ok && !bool(b) {
			return false, nil
		}
	}
	return true, nil
}
