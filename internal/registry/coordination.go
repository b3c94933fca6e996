package registry

import (
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func leaseTable() ([]metav1.TableColumnDefinition, func(runtime.Object, bool) []any) {
	return []metav1.TableColumnDefinition{nameCol, col("Holder", "string", 0, ""), ageCol}, func(o runtime.Object, _ bool) []any {
		l := o.(*coordinationv1.Lease)
		return []any{l.Name, ptrString(l.Spec.HolderIdentity), age(l.CreationTimestamp)}
	}
}
