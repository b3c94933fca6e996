package schema

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/common/types"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	skiffcel "github.com/skiff-sh/skiff/internal/cel"
)

// Rules are a schema's compiled CEL validation rules
// (x-kubernetes-validations), arranged as the schema is.
type Rules struct {
	root *ruleNode
}

type ruleNode struct {
	schema *Props
	// escape: values reach this node's rules with escaped property names.
	escape     bool
	rules      []compiledRule
	props      map[string]*ruleNode
	items      *ruleNode
	additional *ruleNode
}

type compiledRule struct {
	rule        apiextensionsv1.ValidationRule
	prog        *skiffcel.Program
	message     *skiffcel.Program
	transition  bool // refers to oldSelf
	optionalOld bool
}

var oldSelfRef = regexp.MustCompile(`\boldSelf\b`)

// CompileRules compiles every rule of s, refusing rules that do not
// compile, whose messageExpression does not, or whose estimated cost is
// over budget; path is where s is in its definition.
func CompileRules(s *Props, path *field.Path) (*Rules, field.ErrorList) {
	var errs field.ErrorList
	n := compileNode(s, path, true, &errs)
	if len(errs) > 0 {
		return nil, errs
	}
	return &Rules{root: n}, nil
}

func compileNode(s *Props, path *field.Path, root bool, errs *field.ErrorList) *ruleNode {
	if s == nil {
		return nil
	}
	n := &ruleNode{schema: s, escape: len(s.XValidations) > 0 && needsEscaping(s)}
	has := false
	for i, r := range s.XValidations {
		rp := path.Child("x-kubernetes-validations").Index(i)
		cr, err := compileRule(s, r, path, root)
		if err != nil {
			*errs = append(*errs, field.Invalid(rp.Child("rule"), r.Rule, err.Error()))
			continue
		}
		if r.MessageExpression != "" {
			env, _ := ruleEnv(s, path, root, cr.optionalOld)
			if cr.message, err = skiffcel.Compile(env, r.MessageExpression, skiffcel.StaticEstimatedCostLimit, maxSizeOf(s)); err != nil {
				*errs = append(*errs, field.Invalid(rp.Child("messageExpression"), r.MessageExpression, err.Error()))
				continue
			}
		}
		if r.Reason != nil {
			switch *r.Reason {
			case apiextensionsv1.FieldValueInvalid, apiextensionsv1.FieldValueForbidden, apiextensionsv1.FieldValueRequired, apiextensionsv1.FieldValueDuplicate:
			default:
				*errs = append(*errs, field.NotSupported(rp.Child("reason"), *r.Reason, []string{"FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired", "FieldValueDuplicate"}))
			}
		}
		n.rules = append(n.rules, cr)
		has = true
	}
	for k := range s.Properties {
		p := s.Properties[k]
		if c := compileNode(&p, path.Child("properties").Key(k), false, errs); c != nil {
			if n.props == nil {
				n.props = map[string]*ruleNode{}
			}
			n.props[k] = c
			has = true
		}
	}
	if s.Items != nil && s.Items.Schema != nil {
		if n.items = compileNode(s.Items.Schema, path.Child("items"), false, errs); n.items != nil {
			has = true
		}
	}
	if s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil {
		if n.additional = compileNode(s.AdditionalProperties.Schema, path.Child("additionalProperties"), false, errs); n.additional != nil {
			has = true
		}
	}
	if !has {
		return nil
	}
	return n
}

// ruleEnv declares self and oldSelf (optional when optionalOldSelf says)
// with the type of s, the schema node at path (root: the object's).
func ruleEnv(s *Props, path *field.Path, root, optionalOld bool) (*cel.Env, error) {
	objects := map[string]map[string]*types.Type{}
	self := selfType(s, typeNameOf(path.String()), root, objects)
	old := skiffcel.Var{Name: "oldSelf", Type: self}
	if optionalOld {
		old.Type = cel.OptionalType(self)
	}
	return skiffcel.NewEnvWith([]cel.EnvOption{withSelfTypes(objects)}, skiffcel.Var{Name: "self", Type: self}, old)
}

func compileRule(s *Props, r apiextensionsv1.ValidationRule, path *field.Path, root bool) (compiledRule, error) {
	cr := compiledRule{rule: r, transition: oldSelfRef.MatchString(r.Rule), optionalOld: r.OptionalOldSelf != nil && *r.OptionalOldSelf}
	if cr.optionalOld && !cr.transition {
		return cr, fmt.Errorf("optionalOldSelf may only be set on rules that use oldSelf")
	}
	env, err := ruleEnv(s, path, root, cr.optionalOld)
	if err != nil {
		return cr, err
	}
	ast, iss := env.Compile(r.Rule)
	if iss.Err() != nil {
		return cr, fmt.Errorf("compilation failed: %w", iss.Err())
	}
	if t := ast.OutputType(); t != cel.BoolType && t != cel.DynType {
		return cr, fmt.Errorf("cel expression must evaluate to a bool")
	}
	est, err := env.EstimateCost(ast, schemaSizes{self: s})
	if err != nil {
		return cr, fmt.Errorf("cost estimation failed: %w", err)
	}
	if est.Max > skiffcel.StaticEstimatedCostLimit {
		return cr, &skiffcel.CostError{Estimated: est.Max, Limit: skiffcel.StaticEstimatedCostLimit}
	}
	if cr.prog, err = skiffcel.Compile(env, r.Rule, ^uint64(0), 0); err != nil {
		return cr, err
	}
	return cr, nil
}

// schemaSizes estimates the sizes of values by where they are in the
// schema: maxItems, maxLength and maxProperties where declared, else as
// many as the largest request could hold.
type schemaSizes struct{ self *Props }

func (e schemaSizes) EstimateSize(n checker.AstNode) *checker.SizeEstimate {
	path := n.Path()
	if len(path) == 0 || (path[0] != "self" && path[0] != "oldSelf") {
		return nil
	}
	s := e.self
	for _, p := range path[1:] {
		if s == nil {
			return nil
		}
		switch p {
		case "@items":
			if s.Items == nil {
				return nil
			}
			s = s.Items.Schema
		case "@values":
			if s.AdditionalProperties == nil {
				return nil
			}
			s = s.AdditionalProperties.Schema
		case "@keys":
			return &checker.SizeEstimate{Min: 0, Max: skiffcel.MaxRequestSizeBytes}
		default:
			next, ok := propertyByCELName(s, p)
			if !ok {
				return nil
			}
			s = next
		}
	}
	if s == nil {
		return nil
	}
	return &checker.SizeEstimate{Min: 0, Max: maxSizeOf(s)}
}

// propertyByCELName is the property of s a rule names name (its escaped
// name where it has one).
func propertyByCELName(s *Props, name string) (*Props, bool) {
	if p, ok := s.Properties[name]; ok {
		if n, _ := celFieldName(name); n == name {
			return &p, true
		}
	}
	for k, p := range s.Properties {
		if n, ok := celFieldName(k); ok && n == name {
			return &p, true
		}
	}
	return nil, false
}

func (schemaSizes) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil
}

// maxSizeOf is the most elements (or bytes) a value of s can have.
func maxSizeOf(s *Props) uint64 {
	const max = skiffcel.MaxRequestSizeBytes
	switch s.Type {
	case "string":
		if s.MaxLength != nil {
			return uint64(*s.MaxLength)
		}
		return max - 2
	case "array":
		if s.MaxItems != nil {
			return uint64(*s.MaxItems)
		}
		return skiffcel.MaxSize(max, minSerialized(s.Items)+1)
	case "object":
		if s.MaxProperties != nil {
			return uint64(*s.MaxProperties)
		}
		return skiffcel.MaxSize(max, 4+1)
	}
	return max
}

// minSerialized is the fewest bytes an item of items takes in JSON.
func minSerialized(items *apiextensionsv1.JSONSchemaPropsOrArray) uint64 {
	if items == nil || items.Schema == nil {
		return 1
	}
	switch items.Schema.Type {
	case "string", "object", "array":
		return 2 // "", {} or []
	case "boolean":
		return 4
	}
	return 1
}

// Validate evaluates the rules over obj (and, on update, old): each rule
// that does not hold is a field error at its value's path (and fieldPath),
// with its message. On update a rule without oldSelf that fails on a value
// unchanged from old is ratcheted: warn gets the error instead.
func (r *Rules) Validate(obj, old map[string]any, warn func(string)) field.ErrorList {
	if r == nil || r.root == nil {
		return nil
	}
	var errs field.ErrorList
	budget := int64(skiffcel.RuntimeCELCostBudget)
	var oldV any
	var rc *ratchet
	if old != nil {
		oldV = old
		rc = &ratchet{value: obj, old: old, paired: true}
	}
	w := walk{errs: &errs, budget: &budget, warn: warn}
	r.root.validate(w, obj, oldV, old != nil, nil, rc)
	return errs
}

// Empty reports whether there are no rules.
func (r *Rules) Empty() bool { return r == nil || r.root == nil }

// walk is what one validation carries down the object.
type walk struct {
	errs   *field.ErrorList
	budget *int64
	warn   func(string)
}

func (n *ruleNode) validate(w walk, v, old any, hasOld bool, path *field.Path, rc *ratchet) {
	if n == nil || v == nil {
		return
	}
	self, oldSelf := v, old
	if n.escape {
		self, oldSelf = escapedValue(v, n.schema), escapedValue(old, n.schema)
	}
	for _, cr := range n.rules {
		if *w.budget <= 0 {
			*w.errs = append(*w.errs, field.Invalid(path, typeName(n.schema), "validation failed due to running out of cost budget, no further validation rules will be run"))
			return
		}
		n.evalRule(w, cr, self, oldSelf, hasOld, path, rc)
	}
	switch v := v.(type) {
	case map[string]any:
		oldMap, _ := old.(map[string]any)
		for k, c := range n.props {
			child, ok := v[k]
			if !ok {
				continue
			}
			ov, hasOV := oldMap[k]
			c.validate(w, child, ov, hasOld && hasOV, childPath(path, k), rc.field(k, child))
		}
		if n.additional != nil {
			for k, child := range v {
				if _, known := n.props[k]; known {
					continue
				}
				ov, hasOV := oldMap[k]
				n.additional.validate(w, child, ov, hasOld && hasOV, path.Key(k), rc.field(k, child))
			}
		}
	case []any:
		if n.items == nil {
			return
		}
		oldItems := correlate(n.schema, v, old)
		for i, item := range v {
			ov, hasOV := oldItems[i]
			n.items.validate(w, item, ov, hasOld && hasOV, path.Index(i), rc.item(n.schema, i, item))
		}
	}
}

func childPath(p *field.Path, k string) *field.Path {
	if p == nil {
		return field.NewPath(k)
	}
	return p.Child(k)
}

// correlate pairs list items with their old selves where the list type
// says how: by key for a map list, by value for a set.
func correlate(s *Props, items []any, old any) map[int]any {
	oldList, ok := old.([]any)
	if !ok || s.XListType == nil {
		return nil
	}
	out := map[int]any{}
	switch *s.XListType {
	case "map":
		key := func(x any) string {
			m, _ := x.(map[string]any)
			parts := make([]string, 0, len(s.XListMapKeys))
			for _, k := range s.XListMapKeys {
				parts = append(parts, fmt.Sprint(m[k]))
			}
			return strings.Join(parts, "\x00")
		}
		byKey := map[string]any{}
		for _, o := range oldList {
			byKey[key(o)] = o
		}
		for i, it := range items {
			if o, ok := byKey[key(it)]; ok {
				out[i] = o
			}
		}
	case "set":
		for i, it := range items {
			for _, o := range oldList {
				if fmt.Sprint(o) == fmt.Sprint(it) {
					out[i] = o
				}
			}
		}
	}
	return out
}

func (n *ruleNode) evalRule(w walk, cr compiledRule, v, old any, hasOld bool, path *field.Path, rc *ratchet) {
	vars := map[string]any{"self": v}
	if cr.transition {
		switch {
		case hasOld && cr.optionalOld:
			vars["oldSelf"] = types.OptionalOf(types.DefaultTypeAdapter.NativeToValue(old))
		case hasOld:
			vars["oldSelf"] = old
		case cr.optionalOld:
			vars["oldSelf"] = types.OptionalNone
		default:
			return // a transition rule is checked only against an old value
		}
	}
	out, cost, err := cr.prog.Eval(vars)
	*w.budget -= int64(cost)
	p := path
	if cr.rule.FieldPath != "" {
		p = appendFieldPath(path, cr.rule.FieldPath)
	}
	if err != nil {
		*w.errs = append(*w.errs, field.Invalid(p, typeName(n.schema), fmt.Sprintf("%s: %v", ruleOrMessage(cr.rule), err)))
		return
	}
	if b, ok := out.(types.Bool); ok && bool(b) {
		return
	}
	msg := ruleMessage(cr, vars)
	var e *field.Error
	switch reason := cr.rule.Reason; {
	case reason != nil && *reason == apiextensionsv1.FieldValueForbidden:
		e = field.Forbidden(p, msg)
	case reason != nil && *reason == apiextensionsv1.FieldValueRequired:
		e = field.Required(p, msg)
	case reason != nil && *reason == apiextensionsv1.FieldValueDuplicate:
		e = field.Duplicate(p, msg)
	default:
		e = field.Invalid(p, typeName(n.schema), msg)
	}
	if !cr.transition && rc.unchanged() {
		if w.warn != nil {
			w.warn(e.Error())
		}
		return
	}
	*w.errs = append(*w.errs, e)
}

// ruleMessage is the message of a broken rule: its messageExpression's
// value, else its message, else "failed rule: <rule>".
func ruleMessage(cr compiledRule, vars map[string]any) string {
	if cr.message != nil {
		out, _, err := cr.message.Eval(vars)
		if err == nil {
			if s, ok := out.(types.String); ok && strings.TrimSpace(string(s)) != "" && !strings.Contains(string(s), "\n") {
				return string(s)
			}
		}
	}
	return ruleOrMessage(cr.rule)
}

func ruleOrMessage(r apiextensionsv1.ValidationRule) string {
	if r.Message != "" {
		return r.Message
	}
	return "failed rule: " + strings.TrimSpace(r.Rule)
}

// appendFieldPath adds a rule's fieldPath (".spec.x", "['key']", "[0]")
// to path.
func appendFieldPath(path *field.Path, fp string) *field.Path {
	for _, part := range strings.FieldsFunc(fp, func(r rune) bool { return r == '.' }) {
		name, rest, _ := strings.Cut(part, "[")
		if name != "" {
			path = childPath(path, name)
		}
		for rest != "" {
			key, after, _ := strings.Cut(rest, "]")
			key = strings.Trim(key, `'"`)
			path = childPath(path, key)
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return path
}

// typeName is what an error shows as the value: the schema's type.
func typeName(s *Props) string {
	if s.Type != "" {
		return s.Type
	}
	return "object"
}
