package registry

import (
	"context"
	"net/http"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Action is a subresource whose body is a kind of its own that acts on the
// object rather than being a part of it: pods/binding, pods/eviction and the
// scale subresource of workloads. The API server decodes the body as Kind
// and hands it over; the strategy does the rest.
type Action struct {
	// Kind is the kind of the body and of the view.
	Kind schema.GroupVersionKind
	// Verbs are what discovery advertises and the server accepts.
	Verbs []string
	// New returns an empty body to decode into.
	New func() runtime.Object
	// View shows an object through Kind (get on scale); nil for an action
	// that has no view.
	View func(obj runtime.Object) (runtime.Object, error)
	// Act performs the action on the object named. body returns the
	// request's body given the current view (nil without a view): a patch
	// applies to the view, an update or create ignores it. The result is
	// what the client gets: the new view, or a success Status whose Code
	// is the HTTP code.
	Act func(ctx context.Context, g *Registry, ns, name string, body func(view runtime.Object) (runtime.Object, error), o WriteOptions) (runtime.Object, error)
	// Created answers a result that is not a Status with 201, as the
	// review APIs do.
	Created bool
	// Columns and Row are the view's Table form (nil: the kind has none,
	// and a client that accepts only a Table gets a 406).
	Columns []metav1.TableColumnDefinition
	Row     func(view runtime.Object) []any
}

// created is the Status an action that creates nothing visible answers
// with, as upstream's binding and eviction do.
func created() *metav1.Status {
	return &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusSuccess, Code: http.StatusCreated}
}

// addAction registers an action on r.
func addAction(r *Resource, name string, a *Action) {
	if r.Actions == nil {
		r.Actions = map[string]*Action{}
	}
	r.Actions[name] = a
}
