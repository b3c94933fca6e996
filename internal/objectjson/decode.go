package objectjson

import (
	"strconv"
	"unicode/utf8"
)

// maxDepth is encoding/json's nesting limit; deeper input is left to it.
const maxDepth = 10000

// Decode parses data, a JSON object, into the form unstructured objects
// take (integers without a fraction as int64, other numbers as float64), as
// sigs.k8s.io/json's UnmarshalCaseSensitivePreserveInts does. It answers
// false for anything it does not decode exactly as that decoder would, or
// that the API server must report on (malformed input, a duplicate key, a
// surrogate escape, invalid UTF-8, extreme nesting): the caller then
// decodes with the standard decoder, which words the error. Valid objects,
// the common case, are decoded without reflection.
func Decode(data []byte) (map[string]any, bool) {
	// One copy of the input as a string: plain strings, most of an object,
	// are then slices of it rather than an allocation each.
	d := decoder{data: data, str: string(data)}
	d.space()
	if d.off >= len(d.data) || d.data[d.off] != '{' {
		return nil, false
	}
	v, ok := d.object(0)
	if !ok {
		return nil, false
	}
	d.space()
	if d.off != len(d.data) {
		return nil, false
	}
	return v, true
}

type decoder struct {
	data []byte
	str  string
	off  int
}

func (d *decoder) space() {
	for d.off < len(d.data) {
		switch d.data[d.off] {
		case ' ', '\t', '\n', '\r':
			d.off++
		default:
			return
		}
	}
}

func (d *decoder) value(depth int) (any, bool) {
	d.space()
	if d.off >= len(d.data) {
		return nil, false
	}
	switch c := d.data[d.off]; {
	case c == '{':
		m, ok := d.object(depth + 1)
		return m, ok
	case c == '[':
		return d.array(depth + 1)
	case c == '"':
		return d.string()
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		return d.number()
	}
	return nil, false
}

func (d *decoder) literal(word string) bool {
	if len(d.data)-d.off < len(word) || string(d.data[d.off:d.off+len(word)]) != word {
		return false
	}
	d.off += len(word)
	return true
}

func (d *decoder) object(depth int) (map[string]any, bool) {
	if depth > maxDepth {
		return nil, false
	}
	d.off++ // '{'
	m := map[string]any{}
	d.space()
	if d.off < len(d.data) && d.data[d.off] == '}' {
		d.off++
		return m, true
	}
	for {
		d.space()
		if d.off >= len(d.data) || d.data[d.off] != '"' {
			return nil, false
		}
		k, ok := d.string()
		if !ok {
			return nil, false
		}
		if _, dup := m[k]; dup {
			return nil, false // the strict decoder reports duplicates
		}
		d.space()
		if d.off >= len(d.data) || d.data[d.off] != ':' {
			return nil, false
		}
		d.off++
		v, ok := d.value(depth)
		if !ok {
			return nil, false
		}
		m[k] = v
		if more, ok := d.separator('}'); !ok || !more {
			return m, ok
		}
	}
}

// separator reads what follows a member or element: a comma (more to come)
// or the closing bracket.
func (d *decoder) separator(closing byte) (more, ok bool) {
	d.space()
	if d.off >= len(d.data) {
		return false, false
	}
	switch d.data[d.off] {
	case ',':
		d.off++
		return true, true
	case closing:
		d.off++
		return false, true
	}
	return false, false
}

func (d *decoder) array(depth int) ([]any, bool) {
	if depth > maxDepth {
		return nil, false
	}
	d.off++ // '['
	a := []any{}
	d.space()
	if d.off < len(d.data) && d.data[d.off] == ']' {
		d.off++
		return a, true
	}
	for {
		v, ok := d.value(depth)
		if !ok {
			return nil, false
		}
		a = append(a, v)
		if more, ok := d.separator(']'); !ok || !more {
			return a, ok
		}
	}
}

// string reads a quoted string. Plain strings are sliced out as they are;
// escapes other than \u surrogates are decoded; anything else is left to
// the standard decoder.
func (d *decoder) string() (string, bool) {
	d.off++ // '"'
	start := d.off
	ascii := true
	for d.off < len(d.data) {
		switch c := d.data[d.off]; {
		case c == '"':
			s := d.str[start:d.off]
			d.off++
			if !ascii && !utf8.ValidString(s) {
				return "", false // the decoder replaces invalid bytes
			}
			return s, true
		case c == '\\':
			return d.escaped(start)
		case c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
		d.off++
	}
	return "", false
}

// escaped finishes a string that holds an escape, from its start.
func (d *decoder) escaped(start int) (string, bool) {
	buf := append([]byte(nil), d.data[start:d.off]...)
	for d.off < len(d.data) {
		c := d.data[d.off]
		switch {
		case c == '"':
			d.off++
			if !utf8.Valid(buf) {
				return "", false
			}
			return string(buf), true
		case c < 0x20:
			return "", false
		case c != '\\':
			buf = append(buf, c)
			d.off++
			continue
		}
		if d.off+1 >= len(d.data) {
			return "", false
		}
		e := d.data[d.off+1]
		d.off += 2
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			if d.off+4 > len(d.data) {
				return "", false
			}
			r, err := strconv.ParseUint(string(d.data[d.off:d.off+4]), 16, 32)
			if err != nil || r >= 0xD800 && r < 0xE000 {
				return "", false // a surrogate: left to the decoder
			}
			buf = utf8.AppendRune(buf, rune(r))
			d.off += 4
		default:
			return "", false
		}
	}
	return "", false
}

// number reads a JSON number: an int64 when it has no fraction point and
// fits, else a float64, as the unstructured decoder keeps them.
func (d *decoder) number() (any, bool) {
	start := d.off
	if d.data[d.off] == '-' {
		d.off++
	}
	first := d.off
	if n := d.digits(); n == 0 || d.data[first] == '0' && n > 1 {
		return nil, false // no digits, or a leading zero
	}
	frac := false
	if d.off < len(d.data) && d.data[d.off] == '.' {
		frac = true
		d.off++
		if d.digits() == 0 {
			return nil, false
		}
	}
	if d.off < len(d.data) && (d.data[d.off] == 'e' || d.data[d.off] == 'E') {
		d.off++
		if d.off < len(d.data) && (d.data[d.off] == '+' || d.data[d.off] == '-') {
			d.off++
		}
		if d.digits() == 0 {
			return nil, false
		}
	}
	s := d.str[start:d.off]
	if !frac {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return i, true
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil, false
	}
	return f, true
}

// digits skips a run of decimal digits and says how long it was.
func (d *decoder) digits() int {
	start := d.off
	for d.off < len(d.data) && d.data[d.off] >= '0' && d.data[d.off] <= '9' {
		d.off++
	}
	return d.off - start
}
