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
func (s *Server) handleDeleteCollection(w http.ResponseWriter, r *http.Request, res *registry.Resource, ns string) error {
	o, err := parseListOptions(r, res)
	if err != nil {
		return err
	}
	opts, err := s.deleteOptions(r)
	if err != nil {
		return err
	}
	o.Limit, o.Continue = 0, ""
	lr, err := s.collect(r.Context(), res, ns, o)
	if err != nil {
		return err
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
			return err
		}
		items = append(items, obj)
	}
	if err := meta.SetList(list, items); err != nil {
		return err
	}
	if la, err := meta.ListAccessor(list); err == nil {
		la.SetResourceVersion(strconv.FormatInt(lr.rv, 10))
	}
	s.codecs.setKind(list, res.GVK().GroupVersion())
	return s.respond(w, r, res, http.StatusOK, list)
}
