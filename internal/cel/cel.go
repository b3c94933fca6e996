// Package cel is the Common Expression Language environment the API server
// evaluates rules in: CRD validation rules (x-kubernetes-validations),
// admission policies and webhook match conditions. It has the libraries
// upstream gives those expressions (strings, lists, sets, regex, math,
// encoders, IP and CIDR, optionals, and Kubernetes' list, quantity, URL and
// format functions), and
// the same cost limits: a rule whose estimated cost is over budget is
// refused when it is written, and evaluation stops at the per-call limit.
package cel

import (
	"errors"
	"fmt"
	"math"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/ext"
)

// Limits, as upstream's apiserver/pkg/apis/cel config.
const (
	// PerCallLimit bounds the cost of one evaluation.
	PerCallLimit = 1000000
	// RuntimeCELCostBudget bounds the cost of all of an object's rules.
	RuntimeCELCostBudget = 10000000
	// StaticEstimatedCostLimit bounds one rule's worst-case cost estimate.
	StaticEstimatedCostLimit = 10000000
	// MaxRequestSizeBytes bounds the size of any value an estimate assumes.
	MaxRequestSizeBytes = 3 * 1024 * 1024
)

// Var is a variable an expression may use, of any type unless Type says.
type Var struct {
	Name string
	Type *cel.Type
}

// NewEnv is the base environment with vars declared.
func NewEnv(vars ...Var) (*cel.Env, error) { return newEnv(nil, vars) }

// NewEnvWith is NewEnv with more options (a rule's declared types).
func NewEnvWith(opts []cel.EnvOption, vars ...Var) (*cel.Env, error) { return newEnv(opts, vars) }

// NewMutationEnv is NewEnv where Object{...} and JSONPatch{...} values can
// be built (mutating admission policies).
func NewMutationEnv(vars ...Var) (*cel.Env, error) {
	return newEnv([]cel.EnvOption{WithObjectTypes()}, vars)
}

func newEnv(extra []cel.EnvOption, vars []Var) (*cel.Env, error) {
	opts := []cel.EnvOption{
		cel.HomogeneousAggregateLiterals(),
		cel.DefaultUTCTimeZone(true),
		cel.CrossTypeNumericComparisons(true),
		cel.OptionalTypes(),
		ext.Strings(ext.StringsVersion(2)),
		ext.Sets(),
		ext.Lists(),
		ext.Regex(),
		ext.Math(),
		ext.Encoders(),
		ext.Network(),
		listsLibrary(),
		kubeLibraries(),
	}
	opts = append(opts, extra...)
	for _, v := range vars {
		t := v.Type
		if t == nil {
			t = cel.DynType
		}
		opts = append(opts, cel.Variable(v.Name, t))
	}
	return cel.NewEnv(opts...)
}

// Program is a compiled, checked expression.
type Program struct {
	prg  cel.Program
	Cost uint64 // worst-case estimate
	Type *cel.Type
}

// Compile parses and checks expr; its estimated cost must be within limit
// given that inputs are at most maxSize elements (or bytes).
func Compile(env *cel.Env, expr string, limit uint64, maxSize uint64) (*Program, error) {
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, fmt.Errorf("compilation failed: %w", iss.Err())
	}
	est, err := env.EstimateCost(ast, sizeEstimator{max: maxSize})
	if err != nil {
		return nil, fmt.Errorf("cost estimation failed: %w", err)
	}
	if est.Max > limit {
		return nil, &CostError{Estimated: est.Max, Limit: limit}
	}
	prg, err := env.Program(ast, cel.CostLimit(PerCallLimit), cel.EvalOptions(cel.OptOptimize, cel.OptTrackCost), cel.InterruptCheckFrequency(100))
	if err != nil {
		return nil, fmt.Errorf("program construction failed: %w", err)
	}
	return &Program{prg: prg, Cost: est.Max, Type: ast.OutputType()}, nil
}

// CostError says a rule would cost more than allowed.
type CostError struct{ Estimated, Limit uint64 }

func (e *CostError) Error() string {
	return fmt.Sprintf("estimated rule cost exceeds budget by factor of %.1fx (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)",
		float64(e.Estimated)/float64(e.Limit))
}

// ErrCostLimit is an evaluation stopped at the per-call limit.
var ErrCostLimit = errors.New("operation cancelled: actual cost limit exceeded")

// Eval evaluates the program with vars; it returns the result and its
// actual cost.
func (p *Program) Eval(vars map[string]any) (ref.Val, uint64, error) {
	out, det, err := p.prg.Eval(vars)
	var cost uint64
	if det != nil && det.ActualCost() != nil {
		cost = *det.ActualCost()
	}
	if err != nil {
		if cost >= PerCallLimit {
			return nil, cost, ErrCostLimit
		}
		return nil, cost, err
	}
	return out, cost, nil
}

// sizeEstimator assumes every list, map and string is as large as max.
type sizeEstimator struct{ max uint64 }

func (s sizeEstimator) EstimateSize(checker.AstNode) *checker.SizeEstimate {
	return &checker.SizeEstimate{Min: 0, Max: s.max}
}

func (sizeEstimator) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil
}

// listsLibrary adds Kubernetes' list functions: isSorted, sum, min, max,
// indexOf and lastIndexOf.
func listsLibrary() cel.EnvOption {
	listDyn := cel.ListType(cel.DynType)
	return cel.Lib(listsLib{listDyn: listDyn})
}

type listsLib struct{ listDyn *cel.Type }

func (l listsLib) CompileOptions() []cel.EnvOption {
	return []cel.EnvOption{
		cel.Function("isSorted", cel.MemberOverload("list_is_sorted", []*cel.Type{l.listDyn}, cel.BoolType, cel.UnaryBinding(isSorted))),
		cel.Function("sum", cel.MemberOverload("list_sum", []*cel.Type{l.listDyn}, cel.DynType, cel.UnaryBinding(sum))),
		cel.Function("min", cel.MemberOverload("list_min", []*cel.Type{l.listDyn}, cel.DynType, cel.UnaryBinding(extreme(-1)))),
		cel.Function("max", cel.MemberOverload("list_max", []*cel.Type{l.listDyn}, cel.DynType, cel.UnaryBinding(extreme(1)))),
		cel.Function("indexOf", cel.MemberOverload("list_index_of", []*cel.Type{l.listDyn, cel.DynType}, cel.IntType, cel.BinaryBinding(indexOf(false)))),
		cel.Function("lastIndexOf", cel.MemberOverload("list_last_index_of", []*cel.Type{l.listDyn, cel.DynType}, cel.IntType, cel.BinaryBinding(indexOf(true)))),
	}
}

func (listsLib) ProgramOptions() []cel.ProgramOption { return nil }

func elements(v ref.Val) ([]ref.Val, ref.Val) {
	l, ok := v.(traits.Lister)
	if !ok {
		return nil, types.NewErr("not a list")
	}
	n := l.Size().(types.Int)
	out := make([]ref.Val, 0, int(n))
	for i := types.Int(0); i < n; i++ {
		out = append(out, l.Get(i))
	}
	return out, nil
}

func compare(a, b ref.Val) (int, ref.Val) {
	c, ok := a.(traits.Comparer)
	if !ok {
		return 0, types.NewErr("%s is not comparable", a.Type())
	}
	r := c.Compare(b)
	if types.IsError(r) {
		return 0, r
	}
	return int(r.(types.Int)), nil
}

func isSorted(v ref.Val) ref.Val {
	els, err := elements(v)
	if err != nil {
		return err
	}
	for i := 1; i < len(els); i++ {
		c, err := compare(els[i-1], els[i])
		if err != nil {
			return err
		}
		if c > 0 {
			return types.False
		}
	}
	return types.True
}

func sum(v ref.Val) ref.Val {
	els, err := elements(v)
	if err != nil {
		return err
	}
	if len(els) == 0 {
		return types.Int(0)
	}
	acc := els[0]
	for _, e := range els[1:] {
		a, ok := acc.(traits.Adder)
		if !ok {
			return types.NewErr("%s cannot be summed", acc.Type())
		}
		acc = a.Add(e)
		if types.IsError(acc) {
			return acc
		}
	}
	return acc
}

func extreme(sign int) func(ref.Val) ref.Val {
	return func(v ref.Val) ref.Val {
		els, err := elements(v)
		if err != nil {
			return err
		}
		if len(els) == 0 {
			return types.NewErr("%s called on empty list", map[int]string{-1: "min", 1: "max"}[sign])
		}
		best := els[0]
		for _, e := range els[1:] {
			c, err := compare(e, best)
			if err != nil {
				return err
			}
			if c*sign > 0 {
				best = e
			}
		}
		return best
	}
}

func indexOf(last bool) func(ref.Val, ref.Val) ref.Val {
	return func(v, x ref.Val) ref.Val {
		els, err := elements(v)
		if err != nil {
			return err
		}
		found := -1
		for i, e := range els {
			if e.Equal(x) == types.True {
				found = i
				if !last {
					break
				}
			}
		}
		return types.Int(found)
	}
}

// MaxSize is a conservative element count for an estimate, from a byte
// bound and the smallest encoding of an element.
func MaxSize(maxBytes, minElementBytes uint64) uint64 {
	if minElementBytes == 0 {
		return math.MaxUint32
	}
	return maxBytes / minElementBytes
}
