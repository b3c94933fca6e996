package schema

import (
	"slices"

	"k8s.io/apimachinery/pkg/runtime"
)

// Shape is what pruning and defaulting read of a schema, compiled once per
// served version. Walking the JSONSchemaProps themselves copies each
// property's kilobyte-sized struct out of its map at every field of every
// object written, which made pruning cost more than validating.
type Shape struct {
	props      map[string]*Shape
	items      *Shape
	additional *Shape
	// allowAny is additionalProperties: true without a schema.
	allowAny bool
	preserve bool
	embedded bool
	nullable bool
	// def is the default, decoded once and copied into each object.
	def    any
	hasDef bool
	// defaults: this node or one below it declares a default.
	defaults bool
}

// NewShape compiles s; nil for no schema.
func NewShape(s *Props) *Shape {
	if s == nil {
		return nil
	}
	sh := &Shape{
		preserve: s.XPreserveUnknownFields != nil && *s.XPreserveUnknownFields,
		embedded: s.XEmbeddedResource,
		nullable: s.Nullable,
	}
	if s.Default != nil {
		sh.def, sh.hasDef = decodeDefault(s.Default.Raw), true
		sh.defaults = true
	}
	if len(s.Properties) > 0 {
		sh.props = make(map[string]*Shape, len(s.Properties))
		for k := range s.Properties {
			p := s.Properties[k]
			c := NewShape(&p)
			sh.props[k] = c
			sh.defaults = sh.defaults || c.defaults
		}
	}
	if s.Items != nil && s.Items.Schema != nil {
		sh.items = NewShape(s.Items.Schema)
		sh.defaults = sh.defaults || sh.items.defaults
	}
	if a := s.AdditionalProperties; a != nil {
		sh.additional = NewShape(a.Schema)
		sh.allowAny = a.Schema == nil && a.Allows
		sh.defaults = sh.defaults || (sh.additional != nil && sh.additional.defaults)
	}
	return sh
}

// HasDefaults reports whether any node declares a default.
func (sh *Shape) HasDefaults() bool { return sh != nil && sh.defaults }

// Prune removes from obj, a custom object's JSON form, every field its
// schema does not describe, as upstream does on every write, and returns
// the removed fields' paths (for fieldValidation's warnings and errors) in
// a stable order. At the root, and in embedded resources, apiVersion, kind
// and metadata are the object's own and always kept.
func (sh *Shape) Prune(obj map[string]any) []string {
	if sh == nil {
		return nil
	}
	w := pruneWalk{}
	w.object(obj, sh, true)
	slices.Sort(w.pruned)
	return w.pruned
}

// pruneWalk carries the path to the current node as segments, joined into
// a string only for a field that is removed.
type pruneWalk struct {
	segs   []segment
	pruned []string
}

// segment is a key, or an index when key is "" and index >= 0.
type segment struct {
	key   string
	index int
}

func (w *pruneWalk) path(k string) string {
	p := ""
	for _, s := range w.segs {
		if s.index >= 0 {
			p += "[" + itoa(s.index) + "]"
		} else {
			p = join(p, s.key)
		}
	}
	return join(p, k)
}

func (w *pruneWalk) value(v any, sh *Shape) {
	switch v := v.(type) {
	case map[string]any:
		w.object(v, sh, sh.embedded)
	case []any:
		if sh.items == nil {
			return
		}
		for i, item := range v {
			w.segs = append(w.segs, segment{index: i})
			w.value(item, sh.items)
			w.segs = w.segs[:len(w.segs)-1]
		}
	}
}

func (w *pruneWalk) object(obj map[string]any, sh *Shape, resource bool) {
	for k, v := range obj {
		if resource && (k == "apiVersion" || k == "kind" || k == "metadata") {
			if m, ok := v.(map[string]any); ok && k == "metadata" {
				w.metadata(m)
			}
			continue
		}
		next := sh.props[k]
		if next == nil {
			next = sh.additional
		}
		if next != nil {
			w.segs = append(w.segs, segment{key: k, index: -1})
			w.value(v, next)
			w.segs = w.segs[:len(w.segs)-1]
			continue
		}
		if sh.preserve || sh.allowAny {
			continue
		}
		delete(obj, k)
		w.pruned = append(w.pruned, w.path(k))
	}
}

func (w *pruneWalk) metadata(m map[string]any) {
	w.segs = append(w.segs, segment{key: "metadata", index: -1})
	for k := range m {
		if !metadataFields[k] {
			delete(m, k)
			w.pruned = append(w.pruned, w.path(k))
		}
	}
	w.segs = w.segs[:len(w.segs)-1]
}

// Default fills in obj the defaults its schema declares, top down, as
// upstream does after pruning: a missing field with a default gets it, and
// so does a null one that the schema does not allow to be null; a null
// field that is neither nullable nor defaulted is dropped.
func (sh *Shape) Default(obj map[string]any) {
	if sh != nil {
		sh.defaultValue(obj)
	}
}

func (sh *Shape) defaultValue(v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, p := range sh.props {
			cur, present := v[k]
			switch {
			case present && cur == nil && !p.nullable && p.hasDef:
				v[k] = runtime.DeepCopyJSONValue(p.def)
			case present && cur == nil && !p.nullable:
				delete(v, k)
			case !present && p.hasDef:
				v[k] = runtime.DeepCopyJSONValue(p.def)
			}
			if next, ok := v[k]; ok && (p.defaults || p.props != nil || p.items != nil || p.additional != nil) {
				p.defaultValue(next)
			}
		}
		if sh.additional != nil {
			for k, next := range v {
				if _, known := sh.props[k]; !known {
					sh.additional.defaultValue(next)
				}
			}
		}
	case []any:
		it := sh.items
		if it == nil {
			return
		}
		for i, item := range v {
			if item == nil && !it.nullable && it.hasDef {
				v[i] = runtime.DeepCopyJSONValue(it.def)
			}
			it.defaultValue(v[i])
		}
	}
}
