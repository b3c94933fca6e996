package registry

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

func priorityClassStrategy(r *Resource) {
	r.ShortNames = []string{"pc"}
	r.Default = asDefault(func(pc *schedulingv1.PriorityClass) {
		if pc.PreemptionPolicy == nil {
			pc.PreemptionPolicy = ptr.To(corev1.PreemptLowerPriority)
		}
	})
	r.Validate = asValidate(func(pc *schedulingv1.PriorityClass) field.ErrorList {
		if strings.HasPrefix(pc.Name, "system-") && wellKnownPriorities[pc.Name] == 0 {
			return field.ErrorList{field.Forbidden(field.NewPath("metadata", "name"), "priority class names with 'system-' prefix are reserved for system use only")}
		}
		if pc.Value > 1000000000 && wellKnownPriorities[pc.Name] == 0 {
			return field.ErrorList{field.Forbidden(field.NewPath("value"), "maximum allowed value of a user defined priority is 1000000000")}
		}
		return nil
	})
	r.ValidateUpdate = asValidateUpdate(func(o, old *schedulingv1.PriorityClass) field.ErrorList {
		if o.Value != old.Value {
			return field.ErrorList{field.Forbidden(field.NewPath("value"), "may not be changed in an update.")}
		}
		return nil
	})
	r.Columns = []metav1.TableColumnDefinition{nameCol, col("Value", "integer", 0, ""), col("Global-Default", "boolean", 0, ""), ageCol, col("PreemptionPolicy", "string", 0, "")}
	r.Row = asRow(func(pc *schedulingv1.PriorityClass, _ bool) []any {
		return []any{pc.Name, int64(pc.Value), pc.GlobalDefault, age(pc.CreationTimestamp), string(ptr.Deref(pc.PreemptionPolicy, ""))}
	})
}
