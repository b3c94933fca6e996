package schema

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"
)

// testSchema is a structural schema in YAML, as a definition carries it.
const testSchema = `
type: object
properties:
  spec:
    type: object
    required: [name]
    properties:
      name: {type: string, minLength: 2, maxLength: 5, pattern: '^[a-z]+$'}
      replicas: {type: integer, minimum: 1, maximum: 3, default: 1}
      mode: {type: string, enum: [Up, Down], default: Up}
      ratio: {type: number, nullable: true}
      port: {x-kubernetes-int-or-string: true}
      email: {type: string, format: email}
      tags: {type: array, maxItems: 2, items: {type: string}}
      labels: {type: object, additionalProperties: {type: string}}
      free: {type: object, x-kubernetes-preserve-unknown-fields: true}
      items:
        type: array
        items:
          type: object
          properties:
            size: {type: integer, default: 10}
      template:
        type: object
        x-kubernetes-embedded-resource: true
        properties:
          spec: {type: object, properties: {x: {type: string}}}
  status:
    type: object
    properties:
      ready: {type: boolean}
`

func props(t *testing.T) *Props {
	t.Helper()
	p := &Props{}
	if err := yaml.Unmarshal([]byte(testSchema), p); err != nil {
		t.Fatal(err)
	}
	return p
}

func object(t *testing.T, y string) map[string]any {
	t.Helper()
	js, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := unmarshalNumbers(js, &out); err != nil {
		t.Fatal(err)
	}
	return out.(map[string]any)
}

func TestPrune(t *testing.T) {
	obj := object(t, `
apiVersion: example.com/v1
kind: Thing
metadata: {name: a, labels: {x: y}, bogus: 1}
spec:
  name: abc
  unknown: 1
  labels: {any: thing}
  free: {kept: {deep: true}}
  items: [{size: 1, extra: 2}]
  template: {apiVersion: v1, kind: Pod, metadata: {name: p}, spec: {x: a, z: b}, other: 1}
status: {ready: true, phase: Up}
extra: top
`)
	pruned := NewShape(props(t)).Prune(obj)
	want := []string{"extra", "metadata.bogus", "spec.items[0].extra", "spec.template.other", "spec.template.spec.z", "spec.unknown", "status.phase"}
	if diff := cmp.Diff(want, pruned); diff != "" {
		t.Errorf("pruned paths (-want +got):\n%s", diff)
	}
	wantObj := object(t, `
apiVersion: example.com/v1
kind: Thing
metadata: {name: a, labels: {x: y}}
spec:
  name: abc
  labels: {any: thing}
  free: {kept: {deep: true}}
  items: [{size: 1}]
  template: {apiVersion: v1, kind: Pod, metadata: {name: p}, spec: {x: a}}
status: {ready: true}
`)
	if diff := cmp.Diff(wantObj, obj); diff != "" {
		t.Errorf("pruned object (-want +got):\n%s", diff)
	}
}

func TestDefault(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"missing fields get defaults", `spec: {name: ab}`, `spec: {name: ab, replicas: 1, mode: Up}`},
		{"set fields are kept", `spec: {name: ab, replicas: 3, mode: Down}`, `spec: {name: ab, replicas: 3, mode: Down}`},
		{"null non-nullable field with a default is defaulted", `spec: {name: ab, replicas: null}`, `spec: {name: ab, replicas: 1, mode: Up}`},
		{"null non-nullable field without a default is dropped", `spec: {name: null}`, `spec: {replicas: 1, mode: Up}`},
		{"nullable null stays", `spec: {name: ab, ratio: null}`, `spec: {name: ab, ratio: null, replicas: 1, mode: Up}`},
		{"array items are defaulted", `spec: {name: ab, items: [{}, {size: 2}]}`, `spec: {name: ab, replicas: 1, mode: Up, items: [{size: 10}, {size: 2}]}`},
		{"absent parent is not created", `{}`, `{}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj := object(t, tc.in)
			NewShape(props(t)).Default(obj)
			if diff := cmp.Diff(object(t, tc.want), obj); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	v, err := NewValidator(props(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		in   string
		want []string // each error as field error text
	}{
		{"valid", `spec: {name: abc, replicas: 2, port: 80, email: a@b.co, tags: [x]}`, nil},
		{"int-or-string takes a string", `spec: {name: abc, port: http}`, nil},
		{"required", `spec: {replicas: 2}`, []string{"spec.name: Required value"}},
		{"bounds and pattern", `spec: {name: ABC, replicas: 9}`, []string{
			`spec.name: Invalid value: "ABC": spec.name in body should match '^[a-z]+$'`,
			`spec.replicas: Invalid value: 9: spec.replicas in body should be less than or equal to 3`,
		}},
		{"length", `spec: {name: abcdefg}`, []string{`spec.name: Too long: may not be more than 5 bytes`}},
		{"enum", `spec: {name: abc, mode: Maybe}`, []string{`spec.mode: Unsupported value: "Maybe": supported values: "Up", "Down"`}},
		{"type", `spec: {name: abc, replicas: two}`, []string{`spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"`}},
		{"int-or-string refuses a bool", `spec: {name: abc, port: true}`, []string{`spec.port: Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean"`}},
		{"too many items", `spec: {name: abc, tags: [a, b, c]}`, []string{"spec.tags: Too many: 3: must have at most 2 items"}},
		{"format", `spec: {name: abc, email: not-an-email}`, []string{`spec.email: Invalid value: "not-an-email": spec.email in body must be of type email: "not-an-email"`}},
		{"map values", `spec: {name: abc, labels: {a: 1}}`, []string{`spec.labels.a: Invalid value: "integer": spec.labels.a in body must be of type string: "integer"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, e := range v.Validate(object(t, tc.in)) {
				got = append(got, e.Error())
			}
			if len(got) != len(tc.want) {
				t.Fatalf("errors %q, want %q", got, tc.want)
			}
			for _, w := range tc.want {
				if !containsString(got, w) {
					t.Errorf("missing %q in %q", w, got)
				}
			}
		})
	}
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if strings.Contains(v, s) {
			return true
		}
	}
	return false
}

func TestToOpenAPIKeepsExtensions(t *testing.T) {
	s, err := ToOpenAPI(props(t))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(s)
	for _, want := range []string{`"x-kubernetes-int-or-string":true`, `"x-kubernetes-preserve-unknown-fields":true`, `"x-kubernetes-embedded-resource":true`, `"nullable":true`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("converted schema lacks %s", want)
		}
	}
}

const rulesSchema = `
type: object
properties:
  spec:
    type: object
    x-kubernetes-validations:
    - rule: self.min <= self.max
      message: min must not exceed max
    - rule: "!has(self.name) || self.name.startsWith('x-')"
      messageExpression: "'name ' + self.name + ' must start with x-'"
      fieldPath: .name
    - rule: self.tags.all(t, t.size() <= 3)
      reason: FieldValueForbidden
    properties:
      min: {type: integer}
      max: {type: integer}
      name: {type: string}
      id:
        type: string
        x-kubernetes-validations: [{rule: self == oldSelf, message: id is immutable}]
      tags: {type: array, maxItems: 10, items: {type: string, maxLength: 10}}
      ports:
        type: array
        x-kubernetes-list-type: map
        x-kubernetes-list-map-keys: [name]
        maxItems: 5
        items:
          type: object
          properties:
            name: {type: string, maxLength: 10}
            port: {type: integer, x-kubernetes-validations: [{rule: self >= oldSelf, message: ports only grow}]}
`

func TestRules(t *testing.T) {
	p := &Props{}
	if err := yaml.Unmarshal([]byte(rulesSchema), p); err != nil {
		t.Fatal(err)
	}
	rules, errs := CompileRules(p, nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	base := `spec: {min: 1, max: 2, name: x-a, id: one, tags: [a], ports: [{name: http, port: 80}]}`
	for _, tc := range []struct {
		name, obj, old string
		want           []string
	}{
		{"valid create", base, "", nil},
		{"rule with message", `spec: {min: 3, max: 2, tags: []}`, "", []string{`spec: Invalid value: "object": min must not exceed max`}},
		{"messageExpression and fieldPath", `spec: {min: 1, max: 2, name: bad, tags: []}`, "", []string{`spec.name: Invalid value: "object": name bad must start with x-`}},
		{"reason", `spec: {min: 1, max: 2, tags: [long]}`, "", []string{`spec: Forbidden: failed rule: self.tags.all(t, t.size() <= 3)`}},
		{"transition rule holds", base, base, nil},
		{"transition rule breaks", `spec: {min: 1, max: 2, name: x-a, id: two, tags: [a], ports: [{name: http, port: 80}]}`, base, []string{`spec.id: Invalid value: "string": id is immutable`}},
		{"list items correlate by key", `spec: {min: 1, max: 2, name: x-a, id: one, tags: [a], ports: [{name: web, port: 1}, {name: http, port: 79}]}`, base,
			[]string{`spec.ports[1].port: Invalid value: "integer": ports only grow`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var old map[string]any
			if tc.old != "" {
				old = object(t, tc.old)
			}
			var got []string
			for _, e := range rules.Validate(object(t, tc.obj), old, nil) {
				got = append(got, e.Error())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestRulesRefusedWhenWritten(t *testing.T) {
	for _, tc := range []struct{ name, schema, want string }{
		{"does not compile", `{type: object, x-kubernetes-validations: [{rule: "self.a +"}]}`, "compilation failed"},
		{"not a bool", `{type: object, x-kubernetes-validations: [{rule: "1 + 2"}]}`, "must evaluate to a bool"},
		{"over the cost budget", `{type: object, properties: {l: {type: array, items: {type: string}}}, x-kubernetes-validations: [{rule: "self.l.all(a, self.l.all(b, a.size() == b.size()))"}]}`, "estimated rule cost exceeds budget"},
		{"bad messageExpression", `{type: object, x-kubernetes-validations: [{rule: "true", messageExpression: "self.("}]}`, "messageExpression"},
		{"a field the schema lacks", `{type: object, properties: {spec: {type: object, properties: {size: {type: integer}}, x-kubernetes-validations: [{rule: "self.sise > 0"}]}}}`, "undefined field 'sise'"},
		{"a string compared with a number", `{type: object, properties: {name: {type: string}}, x-kubernetes-validations: [{rule: "self.name > 3"}]}`, "no matching overload"},
		{"a list item's missing field", `{type: object, properties: {l: {type: array, maxItems: 3, items: {type: object, properties: {a: {type: string}}}}}, x-kubernetes-validations: [{rule: "self.l.all(i, i.b == 'x')"}]}`, "undefined field 'b'"},
		{"oldSelf is typed too", `{type: object, properties: {count: {type: integer}}, x-kubernetes-validations: [{rule: "self.count >= oldSelf.cnt"}]}`, "undefined field 'cnt'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &Props{}
			if err := yaml.Unmarshal([]byte(tc.schema), p); err != nil {
				t.Fatal(err)
			}
			_, errs := CompileRules(p, nil)
			if len(errs) == 0 || !strings.Contains(errs.ToAggregate().Error(), tc.want) {
				t.Errorf("errors %v, want %q", errs, tc.want)
			}
		})
	}
}

// TestTypedRulesAccepted: rules upstream accepts still compile with the
// schema's types: metadata at the root, maps, lists of objects, optional
// oldSelf, and the values whose run-time type can differ (numbers, times,
// int-or-string, preserved fields, properties with escaped names) as dyn.
func TestTypedRulesAccepted(t *testing.T) {
	schema := `
type: object
x-kubernetes-validations:
- rule: "self.metadata.name.startsWith('a') && self.kind == 'K' && self.spec.size >= 0"
- rule: "!has(oldSelf.spec) || self.spec.size >= oldSelf.spec.size"
  optionalOldSelf: false
properties:
  spec:
    type: object
    x-kubernetes-validations:
    - {rule: "self.ratio > 0.5 && self.ratio < 2"}
    - {rule: "self.port == 80 || self.port == 'http'"}
    - {rule: "timestamp(self.at) > timestamp('2020-01-01T00:00:00Z')"}
    - {rule: "self.labels.all(k, self.labels[k].size() < 10) && self.items.exists(i, i.name == 'x')"}
    - {rule: "self.extra.anything == 1 || true"}
    - {rule: "self.odd.foo__dash__bar == 'x' || true"}
    - {rule: "self.?maybe.orValue('') == ''"}
    - {rule: "oldSelf.hasValue() ? self.size >= oldSelf.value().size : true", optionalOldSelf: true}
    properties:
      size: {type: integer}
      ratio: {type: number}
      port: {x-kubernetes-int-or-string: true}
      at: {type: string, format: date-time}
      maybe: {type: string}
      labels: {type: object, maxProperties: 5, additionalProperties: {type: string, maxLength: 10}}
      items: {type: array, maxItems: 5, items: {type: object, properties: {name: {type: string, maxLength: 10}}}}
      extra: {type: object, x-kubernetes-preserve-unknown-fields: true}
      odd: {type: object, properties: {foo-bar: {type: string}}}
`
	p := &Props{}
	if err := yaml.Unmarshal([]byte(schema), p); err != nil {
		t.Fatal(err)
	}
	if _, errs := CompileRules(p, nil); len(errs) > 0 {
		t.Fatal(errs)
	}
}

// TestEscapedPropertyNames: rules reach properties whose names are not CEL
// identifiers by upstream's escaped names, when checked and when run.
func TestEscapedPropertyNames(t *testing.T) {
	p := &Props{}
	if err := yaml.Unmarshal([]byte(`
type: object
properties:
  spec:
    type: object
    x-kubernetes-validations:
    - {rule: "self.foo__dash__bar == 'ok'", message: foo-bar}
    - {rule: "self.__namespace__ != 'kube-system'", message: namespace}
    - {rule: "self.a__dot__b__slash__c.all(i, i.x__underscores__y > 0)", message: nested}
    - {rule: "self.labels.all(k, k != 'bad-key')", message: map keys stay}
    properties:
      foo-bar: {type: string}
      namespace: {type: string}
      a.b/c: {type: array, maxItems: 3, items: {type: object, properties: {x__y: {type: integer}}}}
      labels: {type: object, maxProperties: 3, additionalProperties: {type: string, maxLength: 5}}
`), p); err != nil {
		t.Fatal(err)
	}
	rules, errs := CompileRules(p, nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	good := `spec: {foo-bar: ok, namespace: default, a.b/c: [{x__y: 1}], labels: {good-key: v}}`
	for _, tc := range []struct{ obj, want string }{
		{good, ""},
		{`spec: {foo-bar: no, namespace: default, a.b/c: [{x__y: 1}], labels: {good-key: v}}`, "foo-bar"},
		{`spec: {foo-bar: ok, namespace: kube-system, a.b/c: [{x__y: 1}], labels: {good-key: v}}`, "namespace"},
		{`spec: {foo-bar: ok, namespace: default, a.b/c: [{x__y: 0}], labels: {good-key: v}}`, "nested"},
		{`spec: {foo-bar: ok, namespace: default, a.b/c: [{x__y: 1}], labels: {bad-key: v}}`, "map keys stay"},
	} {
		var got []string
		for _, e := range rules.Validate(object(t, tc.obj), nil, nil) {
			got = append(got, e.Detail)
		}
		if want := []string{tc.want}; (tc.want == "" && len(got) != 0) || (tc.want != "" && !cmp.Equal(got, want)) {
			t.Errorf("%s: errors %q, want %q", tc.obj, got, tc.want)
		}
	}
}

// benchObject is a validator of a 50-field spec and a valid object of it.
func benchObject(tb testing.TB) (*Validator, map[string]any) {
	props := map[string]Props{}
	obj := map[string]any{}
	for i := range 50 {
		props["f"+itoa(i)] = Props{Type: "string", MaxLength: ptrInt(64)}
		obj["f"+itoa(i)] = "value"
	}
	v, err := NewValidator(&Props{Type: "object", Properties: map[string]Props{"spec": {Type: "object", Properties: props}}})
	if err != nil {
		tb.Fatal(err)
	}
	return v, map[string]any{"apiVersion": "x/v1", "kind": "X", "spec": obj}
}

// BenchmarkValidate is one custom object of a 50-field spec validated.
func BenchmarkValidate(b *testing.B) {
	v, o := benchObject(b)
	b.ReportAllocs()
	for b.Loop() {
		if errs := v.Validate(o); len(errs) > 0 {
			b.Fatal(errs)
		}
	}
}

func ptrInt(i int64) *int64 { return &i }
