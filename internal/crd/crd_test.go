package crd

import (
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

func parse(t *testing.T, y string) *CRD {
	t.Helper()
	c := &CRD{}
	if err := yaml.Unmarshal([]byte(y), c); err != nil {
		t.Fatal(err)
	}
	apiextensionsv1.SetObjectDefaults_CustomResourceDefinition(c)
	return c
}

const validCRD = `
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              ports:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [name]
                items: {type: object, required: [name], properties: {name: {type: string}}}
`

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		edit   func(c *CRD)
		causes []string
	}{
		{"valid", func(*CRD) {}, nil},
		{"name is plural.group", func(c *CRD) { c.Name = "other.example.com" }, []string{`metadata.name: Invalid value: "other.example.com": must be spec.names.plural+"."+spec.group`}},
		{"group needs a dot", func(c *CRD) { c.Spec.Group, c.Name = "example", "widgets.example" }, []string{`spec.group: Invalid value: "example": should be a domain with at least one dot`}},
		{"scope", func(c *CRD) { c.Spec.Scope = "Global" }, []string{`spec.scope: Unsupported value: "Global"`}},
		{"kind required", func(c *CRD) { c.Spec.Names.Kind = "" }, []string{"spec.names.kind: Required value"}},
		{"bad short name", func(c *CRD) { c.Spec.Names.ShortNames = []string{"Bad_Name"} }, []string{`spec.names.shortNames[0]: Invalid value: "Bad_Name"`}},
		{"no storage version", func(c *CRD) { c.Spec.Versions[0].Storage = false }, []string{"spec.versions: Invalid value", "must have exactly one version marked as storage version"}},
		{"none served", func(c *CRD) { c.Spec.Versions[0].Served = false }, []string{"must have at least one served version"}},
		{"duplicate version", func(c *CRD) {
			v := c.Spec.Versions[0]
			v.Storage = false
			c.Spec.Versions = append(c.Spec.Versions, v)
		}, []string{`spec.versions[1].name: Invalid value: "v1": must be unique`}},
		{"schema required", func(c *CRD) { c.Spec.Versions[0].Schema = nil }, []string{"spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required"}},
		{"root type", func(c *CRD) { c.Spec.Versions[0].Schema.OpenAPIV3Schema.Type = "string" }, []string{`spec.versions[0].schema.openAPIV3Schema.type: Invalid value: "string": must be object at the root`}},
		{"field type", func(c *CRD) {
			p := c.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
			p.Type = ""
			c.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"] = p
		}, []string{"spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields"}},
		{"list-map keys must be properties", func(c *CRD) {
			spec := c.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
			ports := spec.Properties["ports"]
			ports.XListMapKeys = []string{"port"}
			spec.Properties["ports"] = ports
		}, []string{`properties[ports].x-kubernetes-list-map-keys[0]: Invalid value: "port": entries must all be names of item properties`}},
		{"metadata may only constrain name", func(c *CRD) {
			c.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["metadata"] = apiextensionsv1.JSONSchemaProps{Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{"labels": {Type: "object"}}}
		}, []string{"properties[metadata]: Forbidden: must not specify anything other than name and generateName"}},
		{"webhook conversion needs a client", func(c *CRD) {
			c.Spec.Conversion = &apiextensionsv1.CustomResourceConversion{Strategy: apiextensionsv1.WebhookConverter}
		}, []string{"spec.conversion.webhook.clientConfig: Required value"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := parse(t, validCRD)
			tc.edit(c)
			errs := Validate(c)
			if len(tc.causes) == 0 && len(errs) > 0 {
				t.Fatalf("unexpected errors: %v", errs)
			}
			msg := errs.ToAggregate()
			for _, cause := range tc.causes {
				if msg == nil || !strings.Contains(msg.Error(), cause) {
					t.Errorf("want %q in %v", cause, msg)
				}
			}
		})
	}
}

func TestValidateUpdate(t *testing.T) {
	old := parse(t, validCRD)
	c := old.DeepCopy()
	c.Spec.Scope = apiextensionsv1.ClusterScoped
	old.Status.Conditions = []apiextensionsv1.CustomResourceDefinitionCondition{{Type: apiextensionsv1.Established, Status: apiextensionsv1.ConditionTrue}}
	if errs := ValidateUpdate(c, old); len(errs) != 1 || !strings.Contains(errs[0].Error(), "spec.scope: Invalid value: \"Cluster\": field is immutable") {
		t.Errorf("scope change of an established definition: %v", errs)
	}
}

func TestStatus(t *testing.T) {
	now := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	widgets := parse(t, validCRD)
	first := Status(widgets, nil, now)
	widgets.Status = first
	if !Established(widgets) || first.AcceptedNames.Kind != "Widget" || first.AcceptedNames.Singular != "widget" || first.AcceptedNames.ListKind != "WidgetList" {
		t.Fatalf("first definition: %+v", first)
	}
	if len(first.StoredVersions) != 1 || first.StoredVersions[0] != "v1" {
		t.Errorf("stored versions %v", first.StoredVersions)
	}
	for _, tc := range []struct {
		name, plural, kind, singular string
		short                        []string
		reason                       string
	}{
		{"kind taken", "gadgets", "Widget", "gadget", nil, "KindConflict"},
		{"list kind taken", "gadgets", "WidgetList", "gadget", nil, "KindConflict"},
		{"plural taken as a singular", "widget", "Gadget", "gadgetone", nil, "PluralConflict"},
		{"short name taken", "gadgets", "Gadget", "gadget", []string{"widgets"}, "ShortNamesConflict"},
		{"no conflict", "gadgets", "Gadget", "gadget", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := parse(t, validCRD)
			c.Name = tc.plural + ".example.com"
			c.Spec.Names = apiextensionsv1.CustomResourceDefinitionNames{Plural: tc.plural, Kind: tc.kind, Singular: tc.singular, ShortNames: tc.short, ListKind: tc.kind + "List"}
			st := Status(c, []*CRD{widgets}, now)
			c.Status = st
			accepted := Condition(c, apiextensionsv1.NamesAccepted)
			if tc.reason == "" {
				if accepted.Status != apiextensionsv1.ConditionTrue || !Established(c) {
					t.Errorf("conditions %+v", st.Conditions)
				}
				return
			}
			if accepted.Status != apiextensionsv1.ConditionFalse || accepted.Reason != tc.reason {
				t.Errorf("NamesAccepted %+v, want False %s", accepted, tc.reason)
			}
			if Established(c) || Condition(c, apiextensionsv1.Established).Reason != "NotAccepted" {
				t.Errorf("a definition with refused names is established: %+v", st.Conditions)
			}
			if st.AcceptedNames.Plural != "" {
				t.Errorf("refused names were accepted: %+v", st.AcceptedNames)
			}
		})
	}
	// Another group may use the same names.
	other := parse(t, validCRD)
	other.Name, other.Spec.Group = "widgets.other.io", "other.io"
	if st := Status(other, []*CRD{widgets}, now); st.Conditions[0].Status != apiextensionsv1.ConditionTrue {
		t.Errorf("same names in another group: %+v", st.Conditions)
	}
	// Terminating says so and keeps the names.
	dying := widgets.DeepCopy()
	dying.DeletionTimestamp = &now
	if st := Status(dying, nil, now); Condition(&CRD{Status: st}, apiextensionsv1.Terminating) == nil || st.AcceptedNames.Kind != "Widget" {
		t.Errorf("terminating: %+v", st)
	}
}
