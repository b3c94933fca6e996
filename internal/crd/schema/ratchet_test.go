package schema

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"
)

// A schema tightened after objects were stored: names are now at most 3
// long, ports at most 1000, tags at most 2 long, and spec needs an owner.
const ratchetSchema = `
type: object
properties:
  spec:
    type: object
    required: [owner]
    properties:
      owner: {type: string}
      name: {type: string, maxLength: 3}
      size: {type: integer}
      ports:
        type: array
        x-kubernetes-list-type: map
        x-kubernetes-list-map-keys: [name]
        items:
          type: object
          properties:
            name: {type: string}
            port: {type: integer, maximum: 1000}
      tags:
        type: array
        x-kubernetes-list-type: set
        items: {type: string, maxLength: 2}
      steps:
        type: array
        items: {type: string, maxLength: 2}
      whole:
        type: array
        x-kubernetes-list-type: atomic
        items: {type: string, maxLength: 2}
      label:
        type: string
        x-kubernetes-validations:
        - {rule: self.startsWith('x'), message: label must start with x}
        - {rule: self != oldSelf || self.size() < 4, message: a long label must change}
`

func TestValidationRatcheting(t *testing.T) {
	p := &Props{}
	if err := yaml.Unmarshal([]byte(ratchetSchema), p); err != nil {
		t.Fatal(err)
	}
	v, err := NewValidator(p)
	if err != nil {
		t.Fatal(err)
	}
	rules, errs := CompileRules(p, nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	old := `spec: {owner: a, name: long, size: 1, ports: [{name: a, port: 2000}, {name: b, port: 3000}], tags: [long, x], steps: [long, q], label: bad}`
	for _, tc := range []struct {
		name, obj, old string
		want           []string
		warnings       []string
	}{
		{"create is not ratcheted", old, "", []string{
			`spec.name: Too long: may not be more than 3 bytes`,
			`spec.ports[0].port: Invalid value: 2000: spec.ports[0].port in body should be less than or equal to 1000`,
			`spec.ports[1].port: Invalid value: 3000: spec.ports[1].port in body should be less than or equal to 1000`,
			`spec.steps[0]: Too long: may not be more than 2 bytes`,
			`spec.tags[0]: Too long: may not be more than 2 bytes`,
		}, nil},
		{"unchanged invalid values pass when others change",
			`spec: {owner: a, name: long, size: 2, ports: [{name: a, port: 2000}, {name: b, port: 3000}], tags: [long, x], steps: [long, q], label: bad}`, old, nil,
			[]string{`spec.label: Invalid value: "string": label must start with x`}},
		{"a changed value is validated",
			`spec: {owner: a, name: longer, size: 1, ports: [{name: a, port: 2000}, {name: b, port: 3000}], tags: [long, x], steps: [long, q], label: xa}`, old,
			[]string{`spec.name: Too long: may not be more than 3 bytes`}, nil},
		{"map list items pair by key, moved or not",
			`spec: {owner: a, name: long, size: 1, ports: [{name: b, port: 3000}, {name: a, port: 2001}], tags: [long, x], steps: [long, q], label: xa}`, old,
			[]string{`spec.ports[1].port: Invalid value: 2001: spec.ports[1].port in body should be less than or equal to 1000`}, nil},
		{"set items have no old self",
			`spec: {owner: a, name: long, size: 1, ports: [{name: a, port: 2000}, {name: b, port: 3000}], tags: [long, x, z], steps: [long, q], label: xa}`, old,
			[]string{`spec.tags[0]: Too long: may not be more than 2 bytes`}, nil},
		{"plain list items pair by index",
			`spec: {owner: a, name: long, size: 1, ports: [{name: a, port: 2000}, {name: b, port: 3000}], tags: [long, x], steps: [long, z], label: xa}`, old, nil, nil},
		{"plain list items out of place are validated",
			`spec: {owner: a, name: long, size: 1, ports: [{name: a, port: 2000}, {name: b, port: 3000}], tags: [long, x], steps: [q, long], label: xa}`, old,
			[]string{`spec.steps[1]: Too long: may not be more than 2 bytes`}, nil},
		{"atomic list items have no old self",
			`spec: {owner: a, whole: [long, q, z]}`, `spec: {owner: a, whole: [long, q]}`,
			[]string{`spec.whole[0]: Too long: may not be more than 2 bytes`}, nil},
		{"an unchanged atomic list passes",
			`spec: {owner: b, whole: [long, q]}`, `spec: {owner: a, whole: [long, q]}`, nil, nil},
		{"a missing required field of an unchanged object passes",
			`spec: {name: long}`, `spec: {name: long}`, nil, nil},
		{"a missing required field of a changed object does not",
			`spec: {name: abc}`, `spec: {name: long}`, []string{`spec.owner: Required value`}, nil},
		{"transition rules are not ratcheted",
			`spec: {owner: a, label: xlong}`, `spec: {owner: a, label: xlong}`, []string{`spec.label: Invalid value: "string": a long label must change`}, nil},
		{"a changed value breaking a rule fails",
			`spec: {owner: a, label: worse}`, `spec: {owner: a, label: bad}`, []string{`spec.label: Invalid value: "string": label must start with x`}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj := object(t, tc.obj)
			var oldObj map[string]any
			if tc.old != "" {
				oldObj = object(t, tc.old)
			}
			var got, warned []string
			schemaErrs := v.Validate(obj)
			if oldObj != nil {
				schemaErrs = v.ValidateUpdate(obj, oldObj)
			}
			for _, e := range schemaErrs {
				got = append(got, e.Error())
			}
			if len(schemaErrs) == 0 {
				for _, e := range rules.Validate(obj, oldObj, func(m string) { warned = append(warned, m) }) {
					got = append(got, e.Error())
				}
			}
			slices.Sort(got)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.warnings, warned); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}
