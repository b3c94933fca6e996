package schema

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"k8s.io/kube-openapi/pkg/validation/spec"
	"k8s.io/kube-openapi/pkg/validation/strfmt"
	"k8s.io/kube-openapi/pkg/validation/validate"
)

// TestQuickAgreesWithUpstream generates schemas and values at random and
// checks the one property the quick check must have: what it calls valid,
// kube-openapi's validator finds no error in. It also counts how often the
// quick check passes a value the validator passes, so that a check that
// gives up on everything (and makes creates slow again) fails too.
func TestQuickAgreesWithUpstream(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	// Counted over schemas without keywords left to the validator.
	var upstreamValid, quickValid int
	for i := range 20000 {
		s := randomSchema(r, 0)
		forValidation(s)
		q := compileQuick(s)
		sv := validate.NewSchemaValidator(s, nil, "", strfmt.Default)
		for range 5 {
			v := randomValue(r, s, 0)
			res := sv.Validate(v)
			passed := q.valid(v)
			if passed && len(res.Errors) > 0 {
				t.Fatalf("case %d: quick check passes %#v, the validator finds %v; schema %s", i, v, res.Errors, mustJSON(s))
			}
			if len(res.Errors) == 0 && !q.anySlow() {
				upstreamValid++
				if passed {
					quickValid++
				}
			}
		}
	}
	t.Logf("valid by the validator %d, passed by the quick check %d", upstreamValid, quickValid)
	if quickValid < upstreamValid*9/10 {
		t.Errorf("the quick check passes %d of %d valid values; most should not need the full validator", quickValid, upstreamValid)
	}
}

func TestQuickPassesBenchObject(t *testing.T) {
	v, o := benchObject(t)
	if !v.quick.valid(o) {
		t.Fatal("a valid 50-field object does not pass the quick check")
	}
	o["spec"].(map[string]any)["f3"] = 7
	if v.quick.valid(o) {
		t.Fatal("an int where a string belongs passes the quick check")
	}
}

// anySlow reports whether q or a node under it is left to the validator.
func (q *quick) anySlow() bool {
	if q == nil {
		return false
	}
	if q.slow || q.items.anySlow() || q.additional.anySlow() {
		return true
	}
	for _, p := range q.properties {
		if p.anySlow() {
			return true
		}
	}
	return false
}

func mustJSON(s *spec.Schema) string {
	b, _ := s.MarshalJSON()
	return string(b)
}

func ptrFloat(f float64) *float64 { return &f }

var (
	scalarTypes = []string{"string", "integer", "number", "boolean"}
	// formats are those a definition gives each type, and now and then
	// one that does not fit it.
	formats = map[string][]string{
		"string":  {"", "", "", "email", "uuid", "date-time", "byte", "unknown-format"},
		"integer": {"", "", "int32", "int64"},
		"number":  {"", "", "double", "float"},
		"boolean": {""},
	}
	patterns = []string{"", "", "^[a-z]+$", "^a", "[0-9]", "(bad"}
)

// randomSchema makes a schema node of the structural kind definitions use,
// with now and then a keyword the quick check leaves to the validator.
func randomSchema(r *rand.Rand, depth int) *spec.Schema {
	s := &spec.Schema{}
	kind := r.IntN(8)
	if depth >= 2 && kind >= 5 {
		kind = r.IntN(5)
	}
	switch kind {
	case 0, 1, 2, 3:
		s.Type = spec.StringOrArray{scalarTypes[kind]}
		fs := formats[s.Type[0]]
		if r.IntN(20) == 0 {
			fs = formats["string"]
		}
		s.Format = fs[r.IntN(len(fs))]
	case 4:
		if r.IntN(2) == 0 {
			s.Extensions = spec.Extensions{"x-kubernetes-int-or-string": true}
		} // else no type at all
	case 5, 6:
		s.Type = spec.StringOrArray{"object"}
		if r.IntN(3) == 0 {
			s.AdditionalProperties = &spec.SchemaOrBool{Allows: true, Schema: randomSchema(r, depth+1)}
		} else {
			s.Properties = map[string]spec.Schema{}
			for i := range 1 + r.IntN(4) {
				s.Properties[fmt.Sprintf("p%d", i)] = *randomSchema(r, depth+1)
			}
			if r.IntN(3) == 0 {
				s.Required = []string{"p0"}
			}
		}
		if r.IntN(6) == 0 {
			s.MaxProperties = ptrInt(int64(r.IntN(3)))
		}
		if r.IntN(6) == 0 {
			s.MinProperties = ptrInt(int64(r.IntN(3)))
		}
	case 7:
		s.Type = spec.StringOrArray{"array"}
		s.Items = &spec.SchemaOrArray{Schema: randomSchema(r, depth+1)}
		if r.IntN(3) == 0 {
			s.MaxItems = ptrInt(int64(r.IntN(3)))
		}
		if r.IntN(3) == 0 {
			s.MinItems = ptrInt(int64(r.IntN(3)))
		}
		s.UniqueItems = r.IntN(8) == 0
	}
	s.Nullable = r.IntN(4) == 0
	if r.IntN(4) == 0 {
		s.Pattern = patterns[r.IntN(len(patterns))]
	}
	if r.IntN(4) == 0 {
		s.MaxLength = ptrInt(int64(r.IntN(6)))
	}
	if r.IntN(4) == 0 {
		s.MinLength = ptrInt(int64(r.IntN(4)))
	}
	bounds := []float64{-3, 0, 2, 2.5, 1e6, math.MaxInt32, 1 << 60}
	if r.IntN(3) == 0 {
		s.Maximum = ptrFloat(bounds[r.IntN(len(bounds))])
		s.ExclusiveMaximum = r.IntN(2) == 0
	}
	if r.IntN(3) == 0 {
		s.Minimum = ptrFloat(bounds[r.IntN(len(bounds))])
		s.ExclusiveMinimum = r.IntN(2) == 0
	}
	if r.IntN(10) == 0 {
		s.MultipleOf = ptrFloat(2)
	}
	if r.IntN(5) == 0 {
		s.Enum = []any{"a", "bb", int64(64), 1.5, true, nil}[r.IntN(3):][:2+r.IntN(2)]
	}
	if r.IntN(15) == 0 {
		s.AnyOf = []spec.Schema{{SchemaProps: spec.SchemaProps{MaxLength: ptrInt(1)}}}
	}
	return s
}

var strs = []string{"", "a", "bb", "abc", "ABC", "héllo", "a@b.co", "64", "@", "0a", "f47ac10b-58cc-4372-a567-0e02b2c3d479", "2024-01-02T03:04:05Z", "aGVsbG8="}

// randomValue makes a value that mostly fits s and sometimes does not.
func randomValue(r *rand.Rand, s *spec.Schema, depth int) any {
	if r.IntN(12) == 0 || depth > 4 {
		return anyScalar(r)
	}
	switch {
	case s.Type.Contains("object"):
		m := map[string]any{}
		for name, p := range s.Properties {
			if r.IntN(5) > 0 {
				m[name] = randomValue(r, &p, depth+1)
			}
		}
		if s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil {
			for i := range r.IntN(3) {
				m[fmt.Sprintf("k%d", i)] = randomValue(r, s.AdditionalProperties.Schema, depth+1)
			}
		}
		if r.IntN(8) == 0 {
			m["extra"] = anyScalar(r)
		}
		return m
	case s.Type.Contains("array"):
		a := []any{}
		for range r.IntN(4) {
			a = append(a, randomValue(r, s.Items.Schema, depth+1))
		}
		return a
	}
	return anyScalar(r)
}

func anyScalar(r *rand.Rand) any {
	switch r.IntN(9) {
	case 0:
		return nil
	case 1, 2, 3:
		return strs[r.IntN(len(strs))]
	case 4, 5:
		return []int64{-4, -3, 0, 1, 2, 3, 64, math.MaxInt32 + 1, 1e6, 1 << 55, math.MinInt64}[r.IntN(11)]
	case 6:
		return []float64{-3.5, 0, 2, 2.5, 1e6, 1e300, 3.25}[r.IntN(7)]
	case 7:
		return r.IntN(2) == 0
	}
	return map[string]any{"x": int64(1)}
}
