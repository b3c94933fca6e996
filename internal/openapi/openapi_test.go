package openapi

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	openapiv2 "github.com/google/gnostic-models/openapiv2"
	"google.golang.org/protobuf/proto"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"github.com/skiff-sh/skiff/internal/registry"
)

func testSpec(t *testing.T) (*Spec, *registry.Registry) {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := metav1.AddMetaToScheme(s); err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(nil, s, nil, registry.AllocatorConfig{ServiceCIDR: "10.43.0.0/16", NodePortMin: 30000, NodePortMax: 32767}, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	return New(reg), reg
}

// TestV2DryRunForEveryKind reads /openapi/v2 (protobuf) as kubectl 1.20-1.25
// does before a server-side dry run: every kind must have a PATCH operation
// tagged with its group-version-kind that lists the dryRun parameter, or
// `kubectl apply --dry-run=server` and `kubectl diff` refuse it.
func TestV2DryRunForEveryKind(t *testing.T) {
	spec, reg := testSpec(t)
	b, err := spec.V2Proto()
	if err != nil {
		t.Fatal(err)
	}
	doc := &openapiv2.Document{}
	if err := proto.Unmarshal(b, doc); err != nil {
		t.Fatal(err)
	}
	dryRun := map[string]bool{}
	for _, p := range doc.GetPaths().GetPath() {
		patch := p.GetValue().GetPatch()
		var gvk map[string]string
		for _, ext := range patch.GetVendorExtension() {
			if ext.GetName() == "x-kubernetes-group-version-kind" {
				_ = yaml.Unmarshal([]byte(ext.GetValue().GetYaml()), &gvk)
			}
		}
		for _, param := range patch.GetParameters() {
			if param.GetParameter().GetNonBodyParameter().GetQueryParameterSubSchema().GetName() == "dryRun" {
				dryRun[gvk["group"]+"/"+gvk["version"]+"/"+gvk["kind"]] = true
			}
		}
	}
	for _, r := range reg.Resources() {
		k := r.GVK()
		if !dryRun[k.Group+"/"+k.Version+"/"+k.Kind] {
			t.Errorf("%s: no PATCH operation with dryRun in /openapi/v2", k)
		}
	}
}

// TestV2RefsWithoutAllOf: kubectl before 1.27 builds its strategic-merge
// schema from /openapi/v2 and knows no allOf; a wrapped reference there
// made it crash in `kubectl apply` and `kubectl diff`.
func TestV2RefsWithoutAllOf(t *testing.T) {
	spec, _ := testSpec(t)
	v2, err := spec.V2()
	if err != nil {
		t.Fatal(err)
	}
	// (JSONSchemaProps has a property named allOf: a wrapper is a list.)
	if strings.Contains(string(v2), `"allOf":[`) {
		t.Error("/openapi/v2 wraps references in allOf")
	}
	parts, _, err := spec.V3("apis/apps/v1")
	if err != nil {
		t.Fatal(err)
	}
	if v3 := bytes.Join(parts, nil); !strings.Contains(string(v3), `"allOf":[`) {
		t.Error("/openapi/v3 should wrap described references in allOf, as upstream")
	}
}
