package schema

import (
	"math"
	"regexp"
	"slices"
	"unicode/utf8"

	"k8s.io/kube-openapi/pkg/validation/spec"
	"k8s.io/kube-openapi/pkg/validation/strfmt"
)

// quick is one schema node compiled for the quick check: a walk over an
// object that answers "certainly valid" with no allocation, so that the
// common case, a valid object, skips kube-openapi's validator (which builds
// a validator per field per object and was the largest part of a custom
// object's create). Whenever the object is not certainly valid, or reaches a
// keyword this check does not know, the full validator runs and reports
// upstream's messages, so the two can differ only in speed. The rules below
// follow kube-openapi's validators one by one (validate/type.go, values.go,
// object_validator.go, slice_validator.go); TestQuickAgreesWithUpstream
// checks them against it.
type quick struct {
	// slow marks a node with a keyword the quick check does not handle
	// (allOf, anyOf, oneOf, not, multipleOf, uniqueItems, ...).
	slow bool
	// types are the node's types; none: any.
	types    []string
	nullable bool
	format   string
	// knownFormat is a string format the format registry checks.
	knownFormat bool
	enum        []any
	pattern     *regexp.Regexp
	minLength   *int64
	maxLength   *int64
	minimum     *float64
	maximum     *float64
	exclMinimum bool
	exclMaximum bool
	minItems    *int64
	maxItems    *int64
	items       *quick
	properties  map[string]*quick
	required    []string
	// additional validates keys properties does not name; nil with
	// denyAdditional false: any.
	additional     *quick
	denyAdditional bool
	minProperties  *int64
	maxProperties  *int64
}

// compileQuick compiles s (a schema prepared by forValidation).
func compileQuick(s *spec.Schema) *quick {
	if s == nil {
		return nil
	}
	q := &quick{
		types: s.Type, nullable: s.Nullable, format: s.Format, enum: s.Enum,
		minLength: s.MinLength, maxLength: s.MaxLength,
		minimum: s.Minimum, maximum: s.Maximum, exclMinimum: s.ExclusiveMinimum, exclMaximum: s.ExclusiveMaximum,
		minItems: s.MinItems, maxItems: s.MaxItems,
		required: s.Required, minProperties: s.MinProperties, maxProperties: s.MaxProperties,
	}
	q.knownFormat = s.Format != "" && strfmt.Default.ContainsName(s.Format)
	q.slow = len(s.AllOf) > 0 || len(s.AnyOf) > 0 || len(s.OneOf) > 0 || s.Not != nil ||
		len(s.Dependencies) > 0 || len(s.PatternProperties) > 0 || s.AdditionalItems != nil ||
		s.MultipleOf != nil || s.UniqueItems || slices.Contains(s.Type, "null") || s.Ref.String() != ""
	if s.Pattern != "" {
		re, err := regexp.Compile(s.Pattern)
		if err != nil {
			q.slow = true // the full validator words an invalid pattern
		}
		q.pattern = re
	}
	if s.Items != nil {
		if len(s.Items.Schemas) > 0 {
			q.slow = true
		}
		q.items = compileQuick(s.Items.Schema)
	}
	if len(s.Properties) > 0 {
		q.properties = make(map[string]*quick, len(s.Properties))
		for name, p := range s.Properties {
			q.properties[name] = compileQuick(&p)
		}
	}
	if s.AdditionalProperties != nil {
		q.denyAdditional = !s.AdditionalProperties.Allows
		q.additional = compileQuick(s.AdditionalProperties.Schema)
	}
	return q
}

// valid reports whether v certainly passes the node; false means "run the
// full validator", not "invalid".
func (q *quick) valid(v any) bool {
	if q == nil {
		return true
	}
	if q.slow {
		return false
	}
	switch v := v.(type) {
	case nil:
		return (len(q.types) == 0 || q.nullable) && len(q.enum) == 0
	case string:
		return q.validString(v)
	case bool:
		return q.format == "" && len(q.enum) == 0 && q.allows("boolean")
	case int64:
		return q.validInt(v)
	case float64:
		return q.validFloat(v)
	case map[string]any:
		return q.format == "" && len(q.enum) == 0 && q.allows("object") && q.validObject(v)
	case []any:
		return q.format == "" && len(q.enum) == 0 && q.allows("array") && q.validArray(v)
	}
	return false
}

// allows reports whether the node's types admit t.
func (q *quick) allows(t string) bool {
	return len(q.types) == 0 || slices.Contains(q.types, t)
}

func (q *quick) validString(s string) bool {
	if !q.allows("string") {
		return false
	}
	if q.minLength != nil || q.maxLength != nil {
		n := int64(utf8.RuneCountInString(s))
		if q.minLength != nil && n < *q.minLength || q.maxLength != nil && n > *q.maxLength {
			return false
		}
	}
	if q.pattern != nil && !q.pattern.MatchString(s) {
		return false
	}
	if q.knownFormat && !strfmt.Default.Validates(q.format, s) {
		return false
	}
	if len(q.enum) > 0 {
		// Only a string entry equals a string: nothing converts from one.
		for _, e := range q.enum {
			if e, ok := e.(string); ok && e == s {
				return true
			}
		}
		return false
	}
	return true
}

// exactFloat bounds the integers a float64 holds exactly, where comparing
// an integer as a float is comparing it as an integer.
const exactFloat = 1 << 53

func (q *quick) validInt(i int64) bool {
	if len(q.enum) > 0 || !(q.allows("integer") || q.allows("number")) {
		return false
	}
	switch q.format {
	case "", "int64":
	case "double", "float": // a number's formats: any integer a JSON decoder gives fits
		if !q.allows("number") {
			return false
		}
	case "int32":
		if !slices.Equal(q.types, []string{"integer"}) || i < math.MinInt32 || i > math.MaxInt32 {
			return false
		}
	default:
		return false
	}
	if q.minimum == nil && q.maximum == nil {
		return true
	}
	// The validator compares an integer with a bound cut to an integer;
	// a fractional bound or a huge value is left to it.
	if i <= -exactFloat || i >= exactFloat {
		return false
	}
	return q.inBounds(float64(i), true)
}

func (q *quick) validFloat(f float64) bool {
	if len(q.enum) > 0 || !q.allows("number") {
		return false
	}
	switch q.format {
	case "", "double":
	case "float": // the validator parses it as a float32
		if a := math.Abs(f); a != 0 && (a < 1e-30 || a > math.MaxFloat32) {
			return false
		}
	default:
		return false
	}
	return q.inBounds(f, false)
}

// inBounds checks minimum and maximum; integral demands integral bounds.
func (q *quick) inBounds(f float64, integral bool) bool {
	if b := q.maximum; b != nil {
		if integral && (*b != math.Trunc(*b) || math.Abs(*b) >= exactFloat) {
			return false
		}
		if f > *b || q.exclMaximum && f >= *b {
			return false
		}
	}
	if b := q.minimum; b != nil {
		if integral && (*b != math.Trunc(*b) || math.Abs(*b) >= exactFloat) {
			return false
		}
		if f < *b || q.exclMinimum && f <= *b {
			return false
		}
	}
	return true
}

func (q *quick) validObject(m map[string]any) bool {
	n := int64(len(m))
	if q.minProperties != nil && n < *q.minProperties || q.maxProperties != nil && n > *q.maxProperties {
		return false
	}
	for _, r := range q.required {
		if _, ok := m[r]; !ok {
			return false
		}
	}
	for k, v := range m {
		if p, ok := q.properties[k]; ok {
			if !p.valid(v) {
				return false
			}
			continue
		}
		if q.denyAdditional || (q.additional != nil && !q.additional.valid(v)) {
			return false
		}
	}
	return true
}

func (q *quick) validArray(a []any) bool {
	n := int64(len(a))
	if q.minItems != nil && n < *q.minItems || q.maxItems != nil && n > *q.maxItems {
		return false
	}
	for _, v := range a {
		if !q.items.valid(v) {
			return false
		}
	}
	return true
}
