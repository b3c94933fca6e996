package schema

import (
	"bytes"
	"encoding/json"
)

// Default fills in obj the defaults its schema declares, top down, as
// upstream does after pruning: a missing field with a default gets it, and
// so does a null one that the schema does not allow to be null; a null
// field that is neither nullable nor defaulted is dropped.
func Default(obj map[string]any, s *Props) {
	defaultValue(obj, s)
}

func defaultValue(v any, s *Props) {
	if s == nil {
		return
	}
	switch v := v.(type) {
	case map[string]any:
		for k, p := range s.Properties {
			cur, present := v[k]
			switch {
			case present && cur == nil && !p.Nullable && p.Default != nil:
				v[k] = decodeDefault(p.Default.Raw)
			case present && cur == nil && !p.Nullable:
				delete(v, k)
			case !present && p.Default != nil:
				v[k] = decodeDefault(p.Default.Raw)
			}
			if next, ok := v[k]; ok {
				defaultValue(next, &p)
			}
		}
		if s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil {
			for k, next := range v {
				if _, known := s.Properties[k]; !known {
					defaultValue(next, s.AdditionalProperties.Schema)
				}
			}
		}
	case []any:
		if s.Items == nil || s.Items.Schema == nil {
			return
		}
		for i, item := range v {
			if item == nil && !s.Items.Schema.Nullable && s.Items.Schema.Default != nil {
				v[i] = decodeDefault(s.Items.Schema.Default.Raw)
			}
			defaultValue(v[i], s.Items.Schema)
		}
	}
}

// HasDefaults reports whether any node of s declares a default.
func HasDefaults(s *Props) bool {
	if s == nil {
		return false
	}
	if s.Default != nil {
		return true
	}
	for k := range s.Properties {
		p := s.Properties[k]
		if HasDefaults(&p) {
			return true
		}
	}
	if s.Items != nil && HasDefaults(s.Items.Schema) {
		return true
	}
	return s.AdditionalProperties != nil && HasDefaults(s.AdditionalProperties.Schema)
}

// decodeDefault is a default's value as a fresh copy in the object's JSON
// form (integers as int64, as the unstructured decoder makes them).
func decodeDefault(raw []byte) any {
	var out any
	if err := unmarshalNumbers(raw, &out); err != nil {
		return nil
	}
	return out
}

// unmarshalNumbers decodes JSON keeping integers as int64 and other numbers
// as float64, the shapes unstructured objects hold.
func unmarshalNumbers(raw []byte, out *any) error {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return err
	}
	*out = normalize(v)
	return nil
}

func normalize(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			v[k] = normalize(x)
		}
		return v
	case []any:
		for i, x := range v {
			v[i] = normalize(x)
		}
		return v
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		f, _ := v.Float64()
		return f
	}
	return v
}
