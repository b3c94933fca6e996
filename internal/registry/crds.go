package registry

import (
	"slices"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/crd"
)

// crdStrategy: CustomResourceDefinitions are defaulted and validated as
// upstream's apiextensions server does; deleting one first removes its
// objects (the cleanup finalizer, which the definitions controller lifts).
func crdStrategy(r *Resource) {
	r.ShortNames = []string{"crd", "crds"}
	r.Categories = []string{"api-extensions"}
	r.Status = true
	r.DeleteFinalizers = []string{crd.CleanupFinalizer}
	r.Default = func(obj runtime.Object) {
		c := obj.(*apiextensionsv1.CustomResourceDefinition)
		apiextensionsv1.SetObjectDefaults_CustomResourceDefinition(c)
		// A new storage version joins status.storedVersions, as upstream's
		// strategy adds it on update.
		if sv := crd.StorageVersion(c); sv != "" && !slices.Contains(c.Status.StoredVersions, sv) {
			c.Status.StoredVersions = append(c.Status.StoredVersions, sv)
		}
	}
	r.Validate = func(obj runtime.Object) field.ErrorList {
		return crd.Validate(obj.(*apiextensionsv1.CustomResourceDefinition))
	}
	r.ValidateUpdate = func(obj, old runtime.Object) field.ErrorList {
		c := obj.(*apiextensionsv1.CustomResourceDefinition)
		errs := crd.ValidateUpdate(c, old.(*apiextensionsv1.CustomResourceDefinition))
		if len(c.Status.StoredVersions) > 0 {
			errs = append(errs, crd.ValidateStatus(c)...)
		}
		return errs
	}
	r.Columns = []metav1.TableColumnDefinition{nameCol, {Name: "Created At", Type: "date", Description: "CreationTimestamp is a timestamp representing the server time when this object was created."}}
	r.Row = func(o runtime.Object, _ bool) []any { return DefaultRow(o) }
}
