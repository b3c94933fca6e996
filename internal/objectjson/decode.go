package objectjson

import (
	"strconv"
	"sync"
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
	d := decoders.Get().(*decoder)
	defer d.release()
	d.data, d.str, d.off = data, string(data), 0
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

// decoders keeps decoders' stacks between calls.
var decoders = sync.Pool{New: func() any { return new(decoder) }}

// release clears what the decoder still refers to and returns it to the
// pool; stacks grown past a large object's needs are dropped.
func (d *decoder) release() {
	clear(d.members[:cap(d.members)])
	clear(d.elements[:cap(d.elements)])
	d.members, d.elements = d.members[:0], d.elements[:0]
	if cap(d.members) > 1024 || cap(d.elements) > 1024 {
		return
	}
	d.data, d.str = nil, ""
	decoders.Put(d)
}

type decoder struct {
	data []byte
	str  string
	off  int
	// members and elements hold the parts of the objects and arrays being
	// read, innermost last, so each map and slice is made once at its final
	// size: growing a map of fifty fields rehashes it four times, the larger
	// part of decoding a custom object before this.
	members  []member
	elements []any
}

type member struct {
	key   string
	value any
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
	d.space()
	if d.off < len(d.data) && d.data[d.off] == '}' {
		d.off++
		return map[string]any{}, true
	}
	start := len(d.members)
	for {
		d.space()
		if d.off >= len(d.data) || d.data[d.off] != '"' {
			return nil, false
		}
		k, ok := d.string()
		if !ok {
			return nil, false
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
		d.members = append(d.members, member{k, v})
		more, ok := d.separator('}')
		if !ok {
			return nil, false
		}
		if !more {
			break
		}
	}
	parts := d.members[start:]
	m := make(map[string]any, len(parts))
	for _, p := range parts {
		m[p.key] = p.value
	}
	d.members = d.members[:start]
	if len(m) != len(parts) {
		return nil, false // a duplicate key: the strict decoder reports it
	}
	return m, true
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
	d.space()
	if d.off < len(d.data) && d.data[d.off] == ']' {
		d.off++
		return []any{}, true
	}
	start := len(d.elements)
	for {
		v, ok := d.value(depth)
		if !ok {
			return nil, false
		}
		d.elements = append(d.elements, v)
		more, ok := d.separator(']')
		if !ok {
			return nil, false
		}
		if !more {
			break
		}
	}
	a := append([]any(nil), d.elements[start:]...)
	d.elements = d.elements[:start]
	return a, true
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
