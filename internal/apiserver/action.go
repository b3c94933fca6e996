package apiserver

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-sh/skiff/internal/registry"
)

// serveAction serves a subresource whose body is a kind of its own
// (registry.Action: binding, eviction, scale): the request is decoded or
// patched as that kind and the registry acts on it.
func (s *Server) serveAction(w http.ResponseWriter, r *http.Request, res *registry.Resource, a *registry.Action, ns string, ri RequestInfo) error {
	if !slices.Contains(a.Verbs, ri.Verb) {
		return apierrors.NewMethodNotSupported(res.GroupResource(), ri.Verb)
	}
	// A kind without a Table form (upstream's storage for it has no table
	// convertor: binding, eviction, the reviews): a client that accepts
	// only a Table gets a 406, before anything is done.
	if _, err := Negotiate(r.Header.Get("Accept"), a.Row != nil); err != nil {
		return err
	}
	if ri.Verb == "get" {
		obj, err := s.reg.Get(r.Context(), res, ns, ri.Name)
		if err != nil {
			return err
		}
		view, err := a.View(obj)
		if err != nil {
			return err
		}
		var table *registry.Resource
		if a.Row != nil {
			// The view's kind, for rows that carry the whole object.
			table = &registry.Resource{GVR: a.Kind.GroupVersion().WithResource(""), Kind: a.Kind.Kind,
				Columns: a.Columns, Row: func(o runtime.Object, _ bool) []any { return a.Row(o) }}
		}
		return s.respond(w, r, table, http.StatusOK, view)
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	o, err := writeOptions(r, "")
	if err != nil {
		return err
	}
	var input func(view runtime.Object) (runtime.Object, error)
	if ri.Verb == "patch" {
		pt, err := patchType(r)
		if err != nil {
			return err
		}
		input = func(view runtime.Object) (runtime.Object, error) { return patchView(pt, view, body, a.New) }
	} else {
		obj, err := s.decodeBody(w, r, body, a.Kind, a.New())
		if err != nil {
			return err
		}
		input = func(runtime.Object) (runtime.Object, error) { return obj, nil }
	}
	out, err := a.Act(r.Context(), s.reg, ns, ri.Name, input, o)
	if err != nil {
		return err
	}
	code := http.StatusOK
	if a.Created {
		code = http.StatusCreated
	}
	if st, ok := out.(*metav1.Status); ok && st.Code != 0 {
		code = int(st.Code)
	}
	return s.respond(w, r, nil, code, out)
}

// patchType is the patch format a request's Content-Type names.
func patchType(r *http.Request) (string, error) {
	pt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		pt = ""
	}
	switch pt {
	case mediaJSONPatch, mediaMergePatch, mediaSMP, mediaApply:
		return pt, nil
	}
	return "", statusError(http.StatusUnsupportedMediaType, metav1.StatusReasonUnsupportedMediaType, fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: %s, %s, %s, %s", mediaJSONPatch, mediaMergePatch, mediaSMP, mediaApply))
}

// patchView applies a JSON, merge or strategic merge patch to an action's
// view (a Scale).
func patchView(pt string, view runtime.Object, patch []byte, newObj func() runtime.Object) (runtime.Object, error) {
	cur, err := json.Marshal(view)
	if err != nil {
		return nil, err
	}
	patched, err := applyPatch(pt, cur, patch, newObj())
	if err != nil {
		return nil, err
	}
	out := newObj()
	if err := json.Unmarshal(patched, out); err != nil {
		return nil, badRequest("%v", err)
	}
	return out, nil
}
