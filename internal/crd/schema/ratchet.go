package schema

import (
	"fmt"
	"reflect"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/kube-openapi/pkg/validation/spec"
	"k8s.io/kube-openapi/pkg/validation/strfmt"
	"k8s.io/kube-openapi/pkg/validation/validate"
)

// Validation ratcheting (upstream's CRDValidationRatcheting, on by default
// since 1.30 and GA in 1.33): on update, a value that breaks the schema is
// accepted when it is unchanged from the old object, so a CRD can tighten
// its schema without making every stored object unwritable. A value is
// paired with its old self through the object: a property with the same
// property, a list item with the item of the same index, or of the same
// keys in a map list; items of sets and atomic lists have no old self, and
// are judged by their list's. Errors of a value that is equal to its old
// self are dropped, also those raised below it.

// ValidateUpdate checks obj as Validate does, with the errors of values
// unchanged from old ratcheted away.
func (v *Validator) ValidateUpdate(obj, old map[string]any) field.ErrorList {
	if v == nil || v.schema == nil {
		return nil
	}
	if v.quick.valid(obj) {
		return nil
	}
	root := &ratchetNode{value: obj, old: old}
	res := root.validate(v.schema, v.schema, "")
	var errs field.ErrorList
	for _, e := range res.Errors {
		errs = append(errs, toFieldError(e))
	}
	return errs
}

// ratchetNode is a value paired with its old self during one validation.
type ratchetNode struct {
	value, old any
	schema     *spec.Schema
	// children are the nodes the validator reached below this one, by
	// property name or index.
	children map[any]*ratchetNode
	// byKey indexes an old map list by its items' keys (built on first use).
	byKey map[string]any
	same  *bool
}

// validate runs kube-openapi's validator over the node's value, with the
// nodes below correlated through its hooks.
func (n *ratchetNode) validate(s *spec.Schema, root any, path string) *validate.Result {
	n.schema = s
	res := validate.NewSchemaValidator(s, root, path, strfmt.Default, n.hooks).Validate(n.value)
	if res.IsValid() || !n.unchanged() {
		return res
	}
	out := &validate.Result{}
	out.MergeAsWarnings(res)
	return out
}

func (n *ratchetNode) hooks(o *validate.SchemaValidatorOptions) {
	o.NewValidatorForField = func(name string, s *spec.Schema, root any, path string, f strfmt.Registry, opts ...validate.Option) validate.ValueValidator {
		old, ok := n.old.(map[string]any)[name]
		if !ok {
			return validate.NewSchemaValidator(s, root, path, f, opts...)
		}
		return nodeValidator(func(v any) *validate.Result {
			child := &ratchetNode{value: v, old: old}
			n.child(name, child)
			return child.validate(s, root, path)
		})
	}
	o.NewValidatorForIndex = func(i int, s *spec.Schema, root any, path string, f strfmt.Registry, opts ...validate.Option) validate.ValueValidator {
		old, ok := n.oldItem(i)
		if !ok {
			return validate.NewSchemaValidator(s, root, path, f, opts...)
		}
		return nodeValidator(func(v any) *validate.Result {
			child := &ratchetNode{value: v, old: old}
			n.child(i, child)
			return child.validate(s, root, path)
		})
	}
}

func (n *ratchetNode) child(k any, c *ratchetNode) {
	if n.children == nil {
		n.children = map[any]*ratchetNode{}
	}
	n.children[k] = c
}

// oldItem is the old self of the list item at index i, if it has one.
func (n *ratchetNode) oldItem(i int) (any, bool) {
	items, ok := n.value.([]any)
	if !ok || i >= len(items) || n.schema == nil {
		return nil, false
	}
	listType, _ := n.schema.Extensions.GetString("x-kubernetes-list-type")
	return pairItem(listType, func() []string { return listMapKeys(n.schema) }, &n.byKey, n.old, items[i], i)
}

// pairItem finds the old self of item, at index i of a list of listType
// whose old form is old; byKey caches a map list's old items by key.
func pairItem(listType string, keys func() []string, byKey *map[string]any, old, item any, i int) (any, bool) {
	oldList, ok := old.([]any)
	if !ok {
		return nil, false
	}
	switch listType {
	case "map":
		k := keys()
		if *byKey == nil {
			*byKey = make(map[string]any, len(oldList))
			for _, o := range oldList {
				(*byKey)[itemKey(o, k)] = o
			}
		}
		o, ok := (*byKey)[itemKey(item, k)]
		return o, ok
	case "set", "atomic":
		return nil, false
	}
	if i >= len(oldList) {
		return nil, false
	}
	return oldList[i], true
}

func listMapKeys(s *spec.Schema) []string {
	var keys []string
	if raw, ok := s.Extensions["x-kubernetes-list-map-keys"].([]any); ok {
		for _, k := range raw {
			if k, ok := k.(string); ok {
				keys = append(keys, k)
			}
		}
	}
	return keys
}

// itemKey is a map-list item's identity: the values of its keys.
func itemKey(item any, keys []string) string {
	m, _ := item.(map[string]any)
	var b strings.Builder
	for _, k := range keys {
		v, ok := m[k]
		if !ok {
			b.WriteString("\x00-")
			continue
		}
		fmt.Fprintf(&b, "\x00%T:%v", v, v)
	}
	return b.String()
}

// unchanged reports whether the node's value equals its old self, using
// the children's answers where the validator reached them all: a map list
// whose items only moved is unchanged.
func (n *ratchetNode) unchanged() bool {
	if n.same != nil {
		return *n.same
	}
	same := n.compare()
	n.same = &same
	return same
}

func (n *ratchetNode) compare() bool {
	switch v := n.value.(type) {
	case map[string]any:
		old, ok := n.old.(map[string]any)
		if !ok || len(old) != len(v) {
			return false
		}
		if len(n.children) != len(v) {
			return reflect.DeepEqual(v, old)
		}
		for k := range v {
			c, ok := n.children[k]
			if !ok || !c.unchanged() {
				return false
			}
		}
		return true
	case []any:
		old, ok := n.old.([]any)
		if !ok || len(old) != len(v) {
			return false
		}
		if len(n.children) != len(v) {
			return reflect.DeepEqual(v, old)
		}
		for i := range v {
			c, ok := n.children[i]
			if !ok || !c.unchanged() {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(n.value, n.old)
}

// ratchet is a value on the CEL rules' walk, paired with its old self
// when it has one (the same pairing as ratchetNode's); nil on create.
type ratchet struct {
	value, old any
	paired     bool
	parent     *ratchet
	byKey      map[string]any
	same       *bool
}

func (r *ratchet) field(k string, v any) *ratchet {
	if r == nil {
		return nil
	}
	c := &ratchet{value: v, parent: r}
	if r.paired {
		c.old, c.paired = r.old.(map[string]any)[k]
	}
	return c
}

func (r *ratchet) item(s *Props, i int, v any) *ratchet {
	if r == nil {
		return nil
	}
	c := &ratchet{value: v, parent: r}
	if r.paired {
		listType := ""
		if s.XListType != nil {
			listType = *s.XListType
		}
		c.old, c.paired = pairItem(listType, func() []string { return s.XListMapKeys }, &r.byKey, r.old, v, i)
	}
	return c
}

// unchanged reports whether the nearest paired value at or above r equals
// its old self: a rule's error there is ratcheted.
func (r *ratchet) unchanged() bool {
	for ; r != nil; r = r.parent {
		if r.paired {
			if r.same == nil {
				same := reflect.DeepEqual(r.value, r.old)
				r.same = &same
			}
			return *r.same
		}
	}
	return false
}

// nodeValidator validates any value with a function (kube-openapi's
// hooks return validators; this one is a ratcheting node's).
type nodeValidator func(any) *validate.Result

func (f nodeValidator) SetPath(string)                  {}
func (f nodeValidator) Applies(any, reflect.Kind) bool  { return true }
func (f nodeValidator) Validate(v any) *validate.Result { return f(v) }
