package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// conversionTimeout bounds a conversion webhook call, as upstream's.
const conversionTimeout = 30 * time.Second

// withConversionWebhook makes a definition's versions convert through its
// conversion webhook (ConversionReview v1 over HTTPS, verified by its
// caBundle): what a client writes at one version is stored at the storage
// version, and what is read is returned at the version asked for.
func (g *Registry) withConversionWebhook(c *apiextensionsv1.CustomResourceDefinition, rs []*Resource) {
	conv := c.Spec.Conversion
	if conv == nil || conv.Strategy != apiextensionsv1.WebhookConverter || conv.Webhook == nil || conv.Webhook.ClientConfig == nil {
		return
	}
	cc := conv.Webhook.ClientConfig
	target := admissionregistrationv1.WebhookClientConfig{URL: cc.URL, CABundle: cc.CABundle}
	if s := cc.Service; s != nil {
		target.Service = &admissionregistrationv1.ServiceReference{Namespace: s.Namespace, Name: s.Name, Path: s.Path, Port: s.Port}
	}
	convert := func(obj runtime.Object, to schema.GroupVersionKind) (runtime.Object, error) {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok || u.GroupVersionKind() == to {
			return withVersion(obj, to), nil
		}
		out, err := g.callConversion(target, u, to)
		if err != nil {
			return nil, apierrors.NewInternalError(fmt.Errorf("conversion webhook for %s failed: %w", to, err))
		}
		return out, nil
	}
	for _, r := range rs {
		gvk := r.GVK()
		storage := schema.GroupVersionKind{Group: gvk.Group, Version: r.Custom.StorageVersion, Kind: gvk.Kind}
		def := r.Default
		schemaProps := r.Custom.Schema
		if gvk.Version != storage.Version {
			r.StorageGVK = storage
			r.ToStorage = func(obj runtime.Object) (runtime.Object, error) { return convert(obj, storage) }
		}
		r.FromStorage = func(obj runtime.Object) (runtime.Object, error) {
			out, err := convert(obj, gvk)
			if err == nil && def != nil && schemaProps != nil {
				def(out)
			}
			return out, err
		}
		r.FromStorageBatch = func(objs []runtime.Object) ([]runtime.Object, error) {
			out := make([]runtime.Object, len(objs))
			var send []*unstructured.Unstructured
			var at []int
			for i, obj := range objs {
				if u, ok := obj.(*unstructured.Unstructured); ok && u.GroupVersionKind() != gvk {
					send, at = append(send, u), append(at, i)
					continue
				}
				out[i] = withVersion(obj, gvk)
			}
			for start := 0; start < len(send); start += conversionBatch {
				end := min(start+conversionBatch, len(send))
				conv, err := g.callConversions(target, send[start:end], gvk)
				if err != nil {
					return nil, apierrors.NewInternalError(fmt.Errorf("conversion webhook for %s failed: %w", gvk, err))
				}
				for j, c := range conv {
					out[at[start+j]] = c
				}
			}
			if def != nil && schemaProps != nil {
				for _, o := range out {
					def(o)
				}
			}
			return out, nil
		}
	}
}

// conversionBatch bounds the objects of one ConversionReview a list sends
// (upstream sends a list whole; the bound keeps one request's size in
// check).
const conversionBatch = 500

// callConversion sends one object to the conversion webhook.
func (g *Registry) callConversion(cc admissionregistrationv1.WebhookClientConfig, obj *unstructured.Unstructured, to schema.GroupVersionKind) (runtime.Object, error) {
	out, err := g.callConversions(cc, []*unstructured.Unstructured{obj}, to)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// callConversions sends objects to the conversion webhook in one
// ConversionReview and checks what comes back: as many objects, in order,
// at the version asked for, their metadata changed in labels and
// annotations only.
func (g *Registry) callConversions(cc admissionregistrationv1.WebhookClientConfig, objs []*unstructured.Unstructured, to schema.GroupVersionKind) ([]runtime.Object, error) {
	if g.Webhooks == nil {
		return nil, fmt.Errorf("no webhook client")
	}
	raws := make([]runtime.RawExtension, len(objs))
	for i, obj := range objs {
		raw, err := obj.MarshalJSON()
		if err != nil {
			return nil, err
		}
		raws[i] = runtime.RawExtension{Raw: raw}
	}
	uid := types.UID(uuid.NewString())
	body, err := json.Marshal(apiextensionsv1.ConversionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "apiextensions.k8s.io/v1", Kind: "ConversionReview"},
		Request:  &apiextensionsv1.ConversionRequest{UID: uid, DesiredAPIVersion: to.GroupVersion().String(), Objects: raws},
	})
	if err != nil {
		return nil, err
	}
	out, err := g.Webhooks.Post(context.Background(), cc, conversionTimeout, body)
	if err != nil {
		return nil, err
	}
	var review apiextensionsv1.ConversionReview
	if err := json.Unmarshal(out, &review); err != nil {
		return nil, fmt.Errorf("received invalid webhook response: %w", err)
	}
	resp := review.Response
	switch {
	case resp == nil:
		return nil, fmt.Errorf("conversion webhook response was absent")
	case resp.UID != uid:
		return nil, fmt.Errorf("expected response.uid=%q, got %q", uid, resp.UID)
	case resp.Result.Status != metav1.StatusSuccess:
		return nil, fmt.Errorf("conversion webhook failed: %s", resp.Result.Message)
	case len(resp.ConvertedObjects) != len(objs):
		return nil, fmt.Errorf("expected %d converted objects, got %d", len(objs), len(resp.ConvertedObjects))
	}
	converted := make([]runtime.Object, len(objs))
	for i, raw := range resp.ConvertedObjects {
		c := &unstructured.Unstructured{}
		if err := c.UnmarshalJSON(raw.Raw); err != nil {
			return nil, fmt.Errorf("invalid converted object: %w", err)
		}
		if c.GroupVersionKind() != to {
			return nil, fmt.Errorf("invalid converted object: expected %s, got %s", to, c.GroupVersionKind())
		}
		// The webhook may change only labels and annotations of metadata.
		meta := runtime.DeepCopyJSONValue(objs[i].Object["metadata"]).(map[string]any)
		if m, ok := c.Object["metadata"].(map[string]any); ok {
			for _, k := range []string{"labels", "annotations"} {
				if v, ok := m[k]; ok {
					meta[k] = v
				} else {
					delete(meta, k)
				}
			}
		}
		c.Object["metadata"] = meta
		converted[i] = c
	}
	return converted, nil
}
