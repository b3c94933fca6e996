package registry

import (
	"reflect"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

// TestApplyMerger: an apply configuration merges as server-side apply
// merges one: list items by their keys (a Deployment's containers, a
// custom map list), sets as unions, atomic lists replaced, maps by field.
func TestApplyMerger(t *testing.T) {
	s := runtime.NewScheme()
	clientgoscheme.AddToScheme(s)
	deploy := applyMerger(newTypeConverter(s), appsv1.SchemeGroupVersion.WithKind("Deployment"))
	obj := yamlMap(t, `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: app, image: app:1, env: [{name: A, value: "1"}]}
      - {name: sidecar, image: side:1}
`)
	cfg := yamlMap(t, `
metadata: {labels: {team: blue}}
spec:
  template:
    spec:
      containers:
      - {name: sidecar, image: side:2}
      - {name: extra, image: extra:1}
`)
	got, err := deploy(obj, cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := yamlMap(t, `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web, team: blue}}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: app, image: app:1, env: [{name: A, value: "1"}]}
      - {name: sidecar, image: side:2}
      - {name: extra, image: extra:1}
`)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("deployment:\n got %v\nwant %v", got, want)
	}
	if _, err := deploy(obj, yamlMap(t, `spec: {replicas: many}`)); err == nil {
		t.Error("an apply configuration of the wrong type merged")
	}

	props := &apiextensionsv1.JSONSchemaProps{}
	if err := yaml.Unmarshal([]byte(`
type: object
properties:
  spec:
    type: object
    properties:
      ports:
        type: array
        x-kubernetes-list-type: map
        x-kubernetes-list-map-keys: [name]
        items: {type: object, properties: {name: {type: string}, port: {type: integer}}}
      tags: {type: array, x-kubernetes-list-type: set, items: {type: string}}
      args: {type: array, items: {type: string}}
`), props); err != nil {
		t.Fatal(err)
	}
	gvk := schema.GroupVersionKind{Group: "stable.example.com", Version: "v1", Kind: "Widget"}
	r := &Resource{GVR: gvk.GroupVersion().WithResource("widgets"), Kind: gvk.Kind, Custom: &Custom{Schema: props}}
	tc, err := customTypeConverter(r)
	if err != nil {
		t.Fatal(err)
	}
	widget := applyMerger(tc, gvk)
	got, err = widget(yamlMap(t, `{apiVersion: stable.example.com/v1, kind: Widget, metadata: {name: w}, spec: {ports: [{name: a, port: 1}, {name: b, port: 2}], tags: [x], args: [one, two]}}`),
		yamlMap(t, `{spec: {ports: [{name: b, port: 3}], tags: [z], args: [three]}}`))
	if err != nil {
		t.Fatal(err)
	}
	want = yamlMap(t, `{apiVersion: stable.example.com/v1, kind: Widget, metadata: {name: w}, spec: {ports: [{name: a, port: 1}, {name: b, port: 3}], tags: [x, z], args: [three]}}`)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("custom object:\n got %v\nwant %v", got, want)
	}
}

func yamlMap(t *testing.T, y string) map[string]any {
	t.Helper()
	m := map[string]any{}
	if err := yaml.Unmarshal([]byte(y), &m); err != nil {
		t.Fatal(err)
	}
	return normalizeNumbers(m).(map[string]any)
}

// normalizeNumbers turns the float64s sigs.k8s.io/yaml gives into the
// int64s a JSON decode of an object gives.
func normalizeNumbers(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = normalizeNumbers(e)
		}
	case []any:
		for i, e := range v {
			v[i] = normalizeNumbers(e)
		}
	case float64:
		if v == float64(int64(v)) {
			return int64(v)
		}
	}
	return v
}
