package apiserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"sigs.k8s.io/yaml"

	"github.com/skiff-sh/skiff/internal/registry"
)

// maxJSONPatchOps bounds the operations of one JSON patch, as upstream.
const maxJSONPatchOps = 10000

// maxJSONPatchCopyBytes bounds how much a JSON patch's copy operations may
// add to a document (upstream's --json-patch-max-copy-bytes default): each
// copy can double it, so a few kilobytes of patch would otherwise grow to
// gigabytes.
const maxJSONPatchCopyBytes = 3 << 20

func init() {
	// The library reads its limit from a package variable; it is set once
	// here, before the server can serve a patch, and never changed.
	jsonpatch.AccumulatedCopySizeLimit = maxJSONPatchCopyBytes
}

func (s *Server) handlePatch(w http.ResponseWriter, r *http.Request, res *registry.Resource, ns string, ri RequestInfo) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	pt, err := patchType(r)
	if err != nil {
		return err
	}
	validation, err := fieldValidation(r)
	if err != nil {
		return err
	}
	o, err := writeOptions(r, ri.Subresource)
	if err != nil {
		return err
	}
	if pt == mediaApply && r.URL.Query().Get("fieldManager") == "" {
		return badRequest("PATCH requests with apply content type must have fieldManager")
	}
	force := r.URL.Query().Get("force") == "true"
	if force && pt != mediaApply {
		return badRequest("force may only be set for apply patches")
	}
	var warnings []string
	mutate := func(cur runtime.Object) (runtime.Object, error) {
		if pt == mediaApply {
			obj, warn, err := s.applyPatch(res, ns, ri.Name, cur, body, o, force, validation)
			warnings = warn
			return obj, err
		}
		if cur == nil {
			return nil, apierrors.NewNotFound(res.GroupResource(), ri.Name)
		}
		withKind(res, cur)
		if pt == mediaSMP && res.Custom != nil && res.Custom.PatchStruct == nil {
			return nil, statusError(http.StatusUnsupportedMediaType, metav1.StatusReasonUnsupportedMediaType,
				fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: %s, %s, %s", mediaJSONPatch, mediaMergePatch, mediaApply))
		}
		if pt == mediaSMP && res.Custom == nil {
			obj, warn, err := strategicPatch(res, cur, body, validation)
			if err != nil {
				return nil, err
			}
			warnings = warn
			return obj, checkPatchedName(obj, ri.Name)
		}
		curJSON, err := s.codecs.EncodeJSON(cur)
		if err != nil {
			return nil, err
		}
		var patched []byte
		if pt == mediaSMP {
			// A kind skiff defines itself, patched by its Go struct's
			// directives.
			if patched, err = strategicpatch.StrategicMergePatch(curJSON, body, res.Custom.PatchStruct); err != nil {
				return nil, badRequest("the strategic merge patch could not be applied: %v", err)
			}
		} else if patched, err = applyPatch(pt, curJSON, body, res.New()); err != nil {
			return nil, err
		}
		obj, gvk, err := s.codecs.Strict.Decode(patched, nil, res.New())
		if err != nil && runtime.IsStrictDecodingError(err) && obj != nil {
			switch validation {
			case "Strict":
				return nil, badRequest("%v", err)
			case "Warn":
				warnings = strictErrors(err)
			}
			err = nil
		}
		if err != nil {
			return nil, badPatch(err)
		}
		if gvk != nil && *gvk != res.GVK() {
			return nil, badRequest("the patch changed apiVersion or kind to %s", gvk)
		}
		warn, err := unknownFields(res, obj, validation)
		if err != nil {
			return nil, err
		}
		warnings = append(warnings, warn...)
		// A patch does not carry a resourceVersion precondition unless the
		// patch itself sets one.
		return obj, checkPatchedName(obj, ri.Name)
	}
	o.Applied = pt == mediaApply
	out, created, err := s.reg.Update(r.Context(), res, ns, ri.Name, mutate, o, pt == mediaApply)
	for _, wmsg := range warnings {
		w.Header().Add("Warning", fmt.Sprintf("299 - %q", wmsg))
	}
	return s.finishWrite(w, r, res, out, created, err)
}

// checkPatchedName refuses a patch that renamed the object.
func checkPatchedName(obj runtime.Object, name string) error {
	acc, err := meta.Accessor(obj)
	if err != nil {
		return err
	}
	if acc.GetName() != name {
		return badRequest("the name of the object (%s) does not match the name on the URL (%s)", acc.GetName(), name)
	}
	return nil
}

func badPatch(err error) error {
	return apierrors.NewBadRequest(fmt.Sprintf("the patch produced an object that could not be decoded: %v", err))
}

// applyPatch applies a JSON, merge or strategic merge patch to doc.
func applyPatch(pt string, doc, patch []byte, schemaObj runtime.Object) ([]byte, error) {
	switch pt {
	case mediaJSONPatch:
		p, err := jsonpatch.DecodePatch(patch)
		if err != nil {
			return nil, badRequest("the JSON patch is malformed: %v", err)
		}
		if len(p) > maxJSONPatchOps {
			return nil, statusError(http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", fmt.Sprintf("The allowed maximum operations in a JSON patch is %d, got %d", maxJSONPatchOps, len(p)))
		}
		out, err := p.Apply(doc)
		var tooMuch *jsonpatch.AccumulatedCopySizeError
		if errors.As(err, &tooMuch) {
			return nil, statusError(http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", err.Error())
		}
		if err != nil {
			return nil, statusError(http.StatusUnprocessableEntity, metav1.StatusReasonInvalid, fmt.Sprintf("the JSON patch could not be applied: %v", err))
		}
		return out, nil
	case mediaMergePatch:
		out, err := jsonpatch.MergePatch(doc, patch)
		if err != nil {
			return nil, badRequest("the merge patch is malformed: %v", err)
		}
		return out, nil
	case mediaSMP:
		// The scale subresource's patches; others go through strategicPatch.
		var pm map[string]any
		if err := json.Unmarshal(patch, &pm); err != nil {
			return nil, badRequest("the strategic merge patch is malformed: %v", err)
		}
		out, err := strategicpatch.StrategicMergePatch(doc, patch, schemaObj)
		if err != nil {
			return nil, badRequest("the strategic merge patch could not be applied: %v", err)
		}
		return out, nil
	}
	return nil, badRequest("unsupported patch type %q", pt)
}

// applyPatch runs server-side apply of an apply configuration (YAML or
// JSON) against cur (nil: the object is created).
func (s *Server) applyPatch(res *registry.Resource, ns, name string, cur runtime.Object, body []byte, o registry.WriteOptions, force bool, validation string) (runtime.Object, []string, error) {
	toJSON := yaml.YAMLToJSON
	if validation == "Strict" {
		// Duplicate keys are refused with their line, as upstream.
		toJSON = yaml.YAMLToJSONStrict
	}
	js, err := toJSON(body)
	if err != nil {
		return nil, nil, badRequest("error decoding YAML: %v", err)
	}
	patch := &unstructured.Unstructured{}
	if err := patch.UnmarshalJSON(js); err != nil {
		return nil, nil, badRequest("error decoding apply configuration: %v", err)
	}
	if patch.GroupVersionKind() != res.GVK() {
		return nil, nil, badRequest("the API version/kind in the apply configuration (%s) does not match the expected (%s)", patch.GroupVersionKind(), res.GVK())
	}
	if patch.GetName() != name {
		return nil, nil, badRequest("the name of the object (%s) does not match the name on the URL (%s)", patch.GetName(), name)
	}
	if res.Namespaced && patch.GetNamespace() != "" && patch.GetNamespace() != ns {
		return nil, nil, badRequest("the namespace of the provided object does not match the namespace sent on the request")
	}
	if len(patch.GetManagedFields()) > 0 {
		return nil, nil, badRequest("metadata.managedFields must be nil")
	}
	// A custom object's configuration loses the fields its schema does
	// not know; under Strict they stay, and the schema's type converter
	// refuses them as upstream ("field not declared in schema").
	var warnings []string
	if validation != "Strict" {
		if warnings, err = unknownFields(res, patch, validation); err != nil {
			return nil, nil, err
		}
	}
	if validation == "Strict" {
		if _, _, err := s.codecs.Strict.Decode(js, nil, res.New()); err != nil && runtime.IsStrictDecodingError(err) {
			return nil, nil, badRequest("%v", err)
		}
	}
	live := cur
	if live == nil {
		live = res.New()
		acc, _ := meta.Accessor(live)
		acc.SetName(name)
		if res.Namespaced {
			acc.SetNamespace(ns)
		}
	}
	withKind(res, live)
	fm := s.reg.FieldManager(res, o.Subresource)
	out, err := fm.Apply(live, patch, o.FieldManager, force)
	if err != nil && strings.HasPrefix(err.Error(), "failed to create typed patch object") {
		// The configuration does not fit the kind's schema (a string
		// where an object belongs, say): the client's mistake, not ours.
		return nil, nil, badRequest("%v", err)
	}
	if err != nil {
		return nil, nil, err
	}
	typed, ok := out.(runtime.Unstructured)
	if ok {
		obj := res.New()
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(typed.UnstructuredContent(), obj); err != nil {
			return nil, nil, badPatch(err)
		}
		return obj, warnings, nil
	}
	return out, warnings, nil
}
