package schema

import (
	"bytes"
	"encoding/json"
)

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
