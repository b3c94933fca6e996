// Package configfile decodes the configuration files the server reads at
// start (encryption, audit policy, admission configuration) strictly, and
// places each error at the line of the field it names, so an operator
// reads "file: line 9: resources[0].providers[0].aescbc.keys[0].secret:
// ..." rather than hunting for the field.
package configfile

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Error is a problem with one field of a configuration file.
type Error struct {
	// Path is the field as field.Path prints it: "rules[0].level".
	Path string
	// Msg says what is wrong with it.
	Msg string
	// Line is the field's line in the file (0: unknown).
	Line int
}

func (e *Error) Error() string {
	at := e.Path + ": "
	if e.Path == "" {
		at = ""
	}
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s%s", e.Line, at, e.Msg)
	}
	return at + e.Msg
}

// Errorf is an error about the field at path.
func Errorf(path, format string, args ...any) *Error {
	return &Error{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// Decode decodes YAML (or JSON) data into out, refusing unknown and
// duplicate fields (a typo must not silently leave a setting at its
// default); an unknown field is an *Error for Locate to place (the
// caller knows where data sits in the file).
func Decode(data []byte, out any) error {
	j, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		// The YAML parser's messages carry their own line (a key given
		// twice in one map is one of them).
		return fmt.Errorf("not valid YAML: %w", err)
	}
	strict, err := kjson.UnmarshalStrict(j, out)
	if err != nil {
		return &Error{Msg: err.Error()}
	}
	if len(strict) > 0 {
		return strictError(strict[0])
	}
	return nil
}

// strictError turns sigs.k8s.io/json's `unknown field "a.b[0].c"` and
// `duplicate field "a.b"` into an Error at that path.
func strictError(err error) *Error {
	msg := err.Error()
	for _, kind := range []string{"unknown field", "duplicate field"} {
		if rest, ok := strings.CutPrefix(msg, kind+" "); ok {
			if path, err := strconv.Unquote(rest); err == nil {
				return &Error{Path: path, Msg: kind}
			}
		}
	}
	return &Error{Msg: msg}
}

// Locate gives err, when it is an *Error about a field, the line of that
// field in data; prefix is where the document the error is about sits in
// data (a configuration embedded at "plugins[0].configuration"), and
// becomes part of the error's path. Other errors are returned as they are.
func Locate(data []byte, prefix string, err error) error {
	var ce *Error
	if !errors.As(err, &ce) || ce.Line > 0 || ce.Path == "" && prefix == "" {
		return err
	}
	switch {
	case prefix != "" && ce.Path != "":
		ce.Path = prefix + "." + ce.Path
	case prefix != "":
		ce.Path = prefix
	}
	ce.Line = Line(data, ce.Path)
	return err
}

// Line is the line of the field at path in the YAML data: the line of its
// key, or of the list item an index names; 0 when there is no such field.
// An empty path is the document's first line.
func Line(data []byte, path string) int {
	var doc yamlv3.Node
	if err := yamlv3.Unmarshal(data, &doc); err != nil || len(doc.Content) == 0 {
		return 0
	}
	n, line := doc.Content[0], doc.Content[0].Line
	for _, step := range steps(path) {
		switch {
		case step.index >= 0:
			if n.Kind != yamlv3.SequenceNode || step.index >= len(n.Content) {
				return 0
			}
			n = n.Content[step.index]
			line = n.Line
		default:
			if n.Kind != yamlv3.MappingNode {
				return 0
			}
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == step.name {
					line, n, found = n.Content[i].Line, n.Content[i+1], true
					break
				}
			}
			if !found {
				return 0
			}
		}
	}
	return line
}

// step is one element of a field path: a name, or an index (>= 0).
type step struct {
	name  string
	index int
}

// steps splits "a.b[0].c" into a, b, [0], c.
func steps(path string) []step {
	var out []step
	for part := range strings.SplitSeq(path, ".") {
		if part == "" {
			continue
		}
		name, rest, _ := strings.Cut(part, "[")
		if name != "" {
			out = append(out, step{name: name, index: -1})
		}
		for rest != "" {
			idx, after, ok := strings.Cut(rest, "]")
			if !ok {
				break
			}
			if i, err := strconv.Atoi(idx); err == nil {
				out = append(out, step{index: i})
			}
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return out
}
