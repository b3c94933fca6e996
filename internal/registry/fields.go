package registry

import (
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
)

// Fields keeps managedFields for one endpoint (a resource or its status)
// with the managedfields package, running its deeply recursive
// structured-merge-diff walks on warm goroutines.
type Fields struct {
	fm   *managedfields.FieldManager
	pool *warmPool
}

// Update records manager's changes from live to obj in obj's managedFields.
func (f Fields) Update(live, obj runtime.Object, manager string) (out runtime.Object, err error) {
	f.pool.run(func() { out, err = f.fm.Update(live, obj, manager) })
	return out, err
}

// Apply merges a server-side apply configuration into live.
func (f Fields) Apply(live, patch runtime.Object, manager string, force bool) (out runtime.Object, err error) {
	f.pool.run(func() { out, err = f.fm.Apply(live, patch, manager, force) })
	return out, err
}

// warmPool runs work on long-lived goroutines. A request goroutine starts
// with a small stack, and a structured-merge-diff walk grows it by copying
// several times on every request (measured at about a third of the cost of
// a pod's managed fields); a pool goroutine keeps its grown stack.
type warmPool struct{ jobs chan func() }

func newWarmPool(workers int) *warmPool {
	p := &warmPool{jobs: make(chan func())}
	for range workers {
		go func() {
			for job := range p.jobs {
				job()
			}
		}()
	}
	return p
}

// run calls f on a pool goroutine and waits for it to return. A panic in f
// is raised again on the caller's goroutine, where the request's recovery
// turns it into a 500 instead of a crash.
func (p *warmPool) run(f func()) {
	done := make(chan any, 1)
	p.jobs <- func() {
		defer func() { done <- recover() }()
		f()
	}
	if r := <-done; r != nil {
		panic(r)
	}
}

// versionConverter hands managedfields objects already in the requested
// version without the deep copy runtime.Scheme makes; managedfields only
// reads them.
type versionConverter struct{ scheme *runtime.Scheme }

func (c versionConverter) Convert(in, out, context interface{}) error {
	return c.scheme.Convert(in, out, context)
}

func (c versionConverter) ConvertToVersion(in runtime.Object, gv runtime.GroupVersioner) (runtime.Object, error) {
	if kinds, _, err := c.scheme.ObjectKinds(in); err == nil && len(kinds) > 0 {
		if target, ok := gv.KindForGroupVersionKinds(kinds); ok && target == kinds[0] {
			in.GetObjectKind().SetGroupVersionKind(target)
			return in, nil
		}
	}
	return c.scheme.ConvertToVersion(in, gv)
}

func (c versionConverter) ConvertFieldLabel(gvk schema.GroupVersionKind, label, value string) (string, string, error) {
	return c.scheme.ConvertFieldLabel(gvk, label, value)
}
