package registry

import (
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"

	"github.com/skiff-sh/skiff/internal/warm"
)

// Fields keeps managedFields for one endpoint (a resource or its status)
// with the managedfields package, running its deeply recursive
// structured-merge-diff walks on warm goroutines.
type Fields struct {
	fm   *managedfields.FieldManager
	pool *warm.Pool
}

// Update records manager's changes from live to obj in obj's managedFields.
func (f Fields) Update(live, obj runtime.Object, manager string) (out runtime.Object, err error) {
	f.pool.Run(func() { out, err = f.fm.Update(asManaged(live), asManaged(obj), manager) })
	if out != nil {
		out = plainObject(out)
	}
	return out, err
}

// Apply merges a server-side apply configuration into live.
func (f Fields) Apply(live, patch runtime.Object, manager string, force bool) (out runtime.Object, err error) {
	f.pool.Run(func() { out, err = f.fm.Apply(live, patch, manager, force) })
	return out, err
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
