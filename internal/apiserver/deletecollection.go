package apiserver

import (
	"net/http"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-sh/skiff/internal/registry"
)

// handleDeleteCollection deletes every object matching the selectors and
// answers with the list of what was deleted, as upstream does.
func (s *Server) handleDeleteCollection(w http.ResponseWriter, r *http.Request, res *registry.Resource, ns string) {
	o, err := parseListOptions(r, res)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	opts, err := s.deleteOptions(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	o.Limit, o.Continue = 0, ""
	lr, err := s.collect(r.Context(), res, ns, o)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	list := res.NewList()
	var items []runtime.Object
	for _, it := range lr.items {
		acc, _ := meta.Accessor(it.Obj)
		obj, _, err := s.reg.Delete(r.Context(), res, acc.GetNamespace(), acc.GetName(), opts)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		items = append(items, obj)
	}
	if err := meta.SetList(list, items); err != nil {
		s.writeError(w, r, err)
		return
	}
	if la, err := meta.ListAccessor(list); err == nil {
		la.SetResourceVersion(strconv.FormatInt(lr.rv, 10))
	}
	s.codecs.setKind(list, res.GVK().GroupVersion())
	s.respond(w, r, nil, http.StatusOK, list)
}
