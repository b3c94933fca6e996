package controlplane

import (
	"context"
	"fmt"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"

	"github.com/skiff-sh/skiff/internal/aggregator"
	"github.com/skiff-sh/skiff/internal/registry"
	"github.com/skiff-sh/skiff/internal/storage"
)

// apiServicesGVR is apiregistration.k8s.io/v1 APIService.
var apiServicesGVR = schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"}

// apiServiceDefinition describes APIService as a definition the registry
// serves with its custom-resource machinery (the type lives in the
// aggregator, which skiff does not import): stored as JSON under
// upstream's key, with a status subresource and upstream's columns.
func apiServiceDefinition() *apiextensionsv1.CustomResourceDefinition {
	str := apiextensionsv1.JSONSchemaProps{Type: "string"}
	integer := apiextensionsv1.JSONSchemaProps{Type: "integer", Format: "int32"}
	c := &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "apiservices.apiregistration.k8s.io"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "apiregistration.k8s.io", Scope: apiextensionsv1.ClusterScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "apiservices", Singular: "apiservice", Kind: "APIService", ListKind: "APIServiceList", Categories: []string{"api-extensions"}},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{Name: "v1", Served: true, Storage: true,
				Subresources: &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}},
				AdditionalPrinterColumns: []apiextensionsv1.CustomResourceColumnDefinition{
					{Name: "Service", Type: "string", JSONPath: ".spec.service.name"},
					{Name: "Available", Type: "string", JSONPath: `.status.conditions[?(@.type=="Available")].status`},
					{Name: "Age", Type: "date", JSONPath: ".metadata.creationTimestamp"},
				},
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
					"spec": {Type: "object", Required: []string{"groupPriorityMinimum", "versionPriority"}, Properties: map[string]apiextensionsv1.JSONSchemaProps{
						"group": str, "version": str, "groupPriorityMinimum": integer, "versionPriority": integer,
						"insecureSkipTLSVerify": {Type: "boolean"}, "caBundle": {Type: "string", Format: "byte"},
						"service": {Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{"namespace": str, "name": str,
							"port": {Type: "integer", Format: "int32", Default: &apiextensionsv1.JSON{Raw: []byte("443")}}}},
					}},
					"status": {Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
						"conditions": {Type: "array", XListType: ptr.To("map"), XListMapKeys: []string{"type"}, Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &apiextensionsv1.JSONSchemaProps{
							Type: "object", Required: []string{"type", "status"}, Properties: map[string]apiextensionsv1.JSONSchemaProps{
								"type": str, "status": str, "reason": str, "message": str, "lastTransitionTime": {Type: "string", Format: "date-time"}}}}},
					}},
				}}}}},
		},
	}
	c.Status.AcceptedNames = c.Spec.Names
	return c
}

// keepLocalAPIServices keeps one local APIService (no service: served by
// this server, always Available) per group-version served, as upstream's
// autoregister controller does, until ctx ends.
func (s *server) keepLocalAPIServices(ctx context.Context) {
	last := ^uint64(0)
	for ctx.Err() == nil {
		if gen := s.reg.CustomGeneration(); gen != last {
			if err := syncLocalAPIServices(ctx, s.reg); err != nil {
				if ctx.Err() == nil {
					s.log.Warn("local APIServices", "err", err)
				}
			} else {
				last = gen
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func syncLocalAPIServices(ctx context.Context, reg *registry.Registry) error {
	res := reg.Lookup(apiServicesGVR)
	if res == nil {
		return fmt.Errorf("no APIService resource")
	}
	want := map[string]schema.GroupVersion{}
	for _, r := range reg.Resources() {
		gv := r.GVR.GroupVersion()
		want[gv.Version+"."+gv.Group] = gv
	}
	objs, _ := reg.Cache(res).Snapshot(storage.Filter{})
	have := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		u := o.Obj.(*unstructured.Unstructured)
		have[u.GetName()] = u
	}
	for name, gv := range want {
		if _, ok := have[name]; ok {
			continue
		}
		gp, vp := aggregator.LocalPriority(gv.Group)
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
			"metadata": map[string]any{"name": name, "labels": map[string]any{"kube-aggregator.kubernetes.io/automanaged": "onstart"}},
			"spec":     map[string]any{"group": gv.Group, "version": gv.Version, "groupPriorityMinimum": int64(gp), "versionPriority": int64(vp)},
		}}
		out, err := reg.Create(ctx, res, "", u, registry.WriteOptions{FieldManager: "kube-apiserver"})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create APIService %s: %w", name, err)
		}
		if err == nil {
			if err := setAvailable(ctx, reg, res, out.(*unstructured.Unstructured).GetName()); err != nil {
				return err
			}
		}
	}
	for name, u := range have {
		_, served := want[name]
		_, remote, _ := unstructured.NestedMap(u.Object, "spec", "service")
		remote = remote && u.Object != nil
		if !served && !remote && u.GetLabels()["kube-aggregator.kubernetes.io/automanaged"] != "" {
			if _, _, err := reg.Delete(ctx, res, "", name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("delete APIService %s: %w", name, err)
			}
		}
	}
	return nil
}

// setAvailable marks a local APIService Available, as upstream words it.
func setAvailable(ctx context.Context, reg *registry.Registry, res *registry.Resource, name string) error {
	_, _, err := reg.Update(ctx, res, "", name, func(cur runtime.Object) (runtime.Object, error) {
		u := cur.(*unstructured.Unstructured).DeepCopy()
		_ = unstructured.SetNestedSlice(u.Object, []any{map[string]any{
			"type": "Available", "status": "True", "reason": "Local", "message": "Local APIServices are always available",
			"lastTransitionTime": time.Now().UTC().Format(time.RFC3339),
		}}, "status", "conditions")
		return u, nil
	}, registry.WriteOptions{Subresource: "status", FieldManager: "kube-apiserver"}, false)
	return err
}
