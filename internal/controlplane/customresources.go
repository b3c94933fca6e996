package controlplane

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-sh/skiff/internal/crd"
	"github.com/skiff-sh/skiff/internal/registry"
	"github.com/skiff-sh/skiff/internal/storage"
)

// crdRetry is how soon a pass runs again after a failure, or while a
// definition's objects are being removed.
const crdRetry = 500 * time.Millisecond

// crdFieldManager is the manager the definitions' status writes carry
// (upstream's controllers' names differ by condition; one suffices).
const crdFieldManager = "kube-apiserver"

// serveCustomResources keeps this server's custom resources in step with
// the stored CustomResourceDefinitions, as upstream's apiextensions
// controllers do in every API server: names are granted (NamesAccepted,
// Established), established definitions are served at once, a changed one
// is served anew, and a deleted one first has its objects removed, then its
// cleanup finalizer lifted and its resources withdrawn.
func (s *server) serveCustomResources(ctx context.Context) {
	res := s.reg.Lookup(apiextensionsv1.SchemeGroupVersion.WithResource("customresourcedefinitions"))
	cache := s.reg.Cache(res)
	served := map[string]servedFrom{}
	var w *storage.Watcher
	retry := time.NewTimer(0)
	defer retry.Stop()
	for {
		if w == nil {
			var err error
			if w, _, _, err = cache.Watch(storage.Filter{}, cache.RV(), false); err != nil {
				// No watch yet (the cache is loading): look again soon.
				w = nil
				retry.Reset(100 * time.Millisecond)
			}
		}
		var events <-chan *storage.Event
		if w != nil {
			events = w.Events()
		}
		select {
		case <-ctx.Done():
			if w != nil {
				w.Stop()
			}
			return
		case _, ok := <-events:
			if !ok {
				w = nil
			}
		case <-retry.C:
		}
		if !cache.Ready() {
			retry.Reset(10 * time.Millisecond)
			continue
		}
		again, err := s.syncCustomResourcesSafely(ctx, res, cache, served)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("custom resource definitions", "err", err)
			again = true
		}
		if again {
			retry.Reset(crdRetry)
		}
	}
}

// syncCustomResourcesSafely is one pass that, should it panic, is logged
// and tried again rather than taking the API server down.
func (s *server) syncCustomResourcesSafely(ctx context.Context, res *registry.Resource, cache *storage.Cache, served map[string]servedFrom) (again bool, err error) {
	defer func() {
		if p := recover(); p != nil {
			again, err = true, fmt.Errorf("panic in a custom resource definitions pass: %v\n%s", p, debug.Stack())
		}
	}()
	return s.syncCustomResources(ctx, res, cache, served)
}

// syncCustomResources is one pass over every definition; it says whether
// another pass is due without an event (objects still being removed).
func (s *server) syncCustomResources(ctx context.Context, res *registry.Resource, cache *storage.Cache, served map[string]servedFrom) (bool, error) {
	objs, _ := cache.Snapshot(storage.Filter{})
	crds := make([]*apiextensionsv1.CustomResourceDefinition, 0, len(objs))
	for _, o := range objs {
		crds = append(crds, o.Obj.(*apiextensionsv1.CustomResourceDefinition))
	}
	// Between two definitions that both ask for a free name, the older
	// gets it.
	slices.SortFunc(crds, func(a, b *apiextensionsv1.CustomResourceDefinition) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	again := false
	var firstErr error
	note := func(err error) {
		if err != nil && firstErr == nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			firstErr = err
		}
		if err != nil {
			again = true
		}
	}
	current := map[string]bool{}
	// Names are granted against what the others hold: their stored
	// accepted names, or what this pass just granted them.
	granted := slices.Clone(crds)
	for i, c := range crds {
		current[c.Name] = true
		want := crd.Status(c, granted, now)
		unchanged := sameStatus(c.Status, want)
		// The definition as it will be (copied only when its status
		// changes: a pass runs over every definition on every event).
		view := c
		if !unchanged {
			view = c.DeepCopy()
			view.Status = want
		}
		granted[i] = view
		// Served before Established is stored: a client that waits for
		// the condition finds the resource at once.
		// The key (the definition's JSON) is made again only for a
		// definition that changed since it was served: a pass runs on every
		// event, and making every key on each made installing many
		// definitions quadratic.
		if crd.Established(view) && !(unchanged && served[c.Name].rv == c.ResourceVersion) {
			from := servedFrom{key: servedKey(view)}
			if unchanged {
				from.rv = c.ResourceVersion
			}
			if served[c.Name].key != from.key {
				if err := s.reg.ServeCustom(view, crd.Terminating(view)); err != nil {
					note(fmt.Errorf("serve %s: %w", c.Name, err))
					continue
				}
			}
			served[c.Name] = from
		}
		if !unchanged {
			// The status is made again from the stored definition: this
			// pass's copy may lag behind it, and a status made from a stale
			// copy would undo a newer one.
			others := granted
			note(s.writeCRDStatus(ctx, res, c.Name, func(fresh *apiextensionsv1.CustomResourceDefinition) apiextensionsv1.CustomResourceDefinitionStatus {
				return crd.Status(fresh, others, now)
			}))
			continue
		}
		if !crd.Established(c) {
			continue
		}
		if crd.Terminating(c) && slices.Contains(c.Finalizers, crd.CleanupFinalizer) {
			done, err := s.removeCustomObjects(ctx, c)
			note(err)
			if !done {
				again = true
				continue
			}
			note(s.liftCleanupFinalizer(ctx, res, c.Name))
		}
	}
	for name := range served {
		if !current[name] {
			s.reg.StopCustom(name)
			delete(served, name)
		}
	}
	return again, firstErr
}

// servedFrom is what a definition's resources were last served from: its
// key (see servedKey) and, when the stored object itself was served, its
// resourceVersion.
type servedFrom struct{ rv, key string }

// servedKey is what a definition is served from: a change of it serves the
// definition anew.
func servedKey(c *apiextensionsv1.CustomResourceDefinition) string {
	raw, _ := json.Marshal(struct {
		Spec       apiextensionsv1.CustomResourceDefinitionSpec
		Names      apiextensionsv1.CustomResourceDefinitionNames
		Terminates bool
	}{c.Spec, c.Status.AcceptedNames, crd.Terminating(c)})
	return string(raw)
}

// sameStatus compares statuses without the conditions' transition times.
func sameStatus(a, b apiextensionsv1.CustomResourceDefinitionStatus) bool {
	strip := func(st apiextensionsv1.CustomResourceDefinitionStatus) apiextensionsv1.CustomResourceDefinitionStatus {
		st = *st.DeepCopy()
		for i := range st.Conditions {
			st.Conditions[i].LastTransitionTime = metav1.Time{}
		}
		return st
	}
	return apiequality.Semantic.DeepEqual(strip(a), strip(b))
}

// writeCRDStatus sets the stored definition's status to what status makes
// of it; one that already has it is left unwritten.
func (s *server) writeCRDStatus(ctx context.Context, res *registry.Resource, name string, status func(*apiextensionsv1.CustomResourceDefinition) apiextensionsv1.CustomResourceDefinitionStatus) error {
	_, _, err := s.reg.Update(ctx, res, "", name, func(cur runtime.Object) (runtime.Object, error) {
		next := cur.(*apiextensionsv1.CustomResourceDefinition).DeepCopy()
		if st := status(next); !sameStatus(next.Status, st) {
			next.Status = st
		}
		return next, nil
	}, registry.WriteOptions{Subresource: "status", FieldManager: crdFieldManager}, false)
	return err
}

// removeCustomObjects deletes every object of a terminating definition; it
// reports whether none is left.
func (s *server) removeCustomObjects(ctx context.Context, c *apiextensionsv1.CustomResourceDefinition) (bool, error) {
	var r *registry.Resource
	for _, v := range c.Spec.Versions {
		if v.Served {
			r = s.reg.Lookup(schema.GroupVersionResource{Group: c.Spec.Group, Version: v.Name, Resource: c.Status.AcceptedNames.Plural})
			break
		}
	}
	if r == nil {
		return true, nil
	}
	cache := s.reg.Cache(r)
	if !cache.Ready() {
		return false, nil
	}
	objs, _ := cache.Snapshot(storage.Filter{})
	if len(objs) == 0 {
		return true, nil
	}
	for _, o := range objs {
		obj, err := s.reg.FromStorage(r, o.Obj)
		if err != nil {
			return false, err
		}
		acc := obj.(metav1.Object)
		if acc.GetDeletionTimestamp() != nil {
			continue
		}
		if _, _, err := s.reg.Delete(ctx, r, acc.GetNamespace(), acc.GetName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return false, err
		}
	}
	return false, nil
}

func (s *server) liftCleanupFinalizer(ctx context.Context, res *registry.Resource, name string) error {
	_, _, err := s.reg.Update(ctx, res, "", name, func(cur runtime.Object) (runtime.Object, error) {
		next := cur.(*apiextensionsv1.CustomResourceDefinition).DeepCopy()
		next.Finalizers = slices.DeleteFunc(next.Finalizers, func(f string) bool { return f == crd.CleanupFinalizer })
		return next, nil
	}, registry.WriteOptions{FieldManager: crdFieldManager}, false)
	return err
}
