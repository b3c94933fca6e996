package registry

import (
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func pdbStrategy(r *Resource) {
	r.ShortNames = []string{"pdb"}
	r.Status = true
	r.Validate = asValidate(func(p *policyv1.PodDisruptionBudget) field.ErrorList {
		if p.Spec.MinAvailable != nil && p.Spec.MaxUnavailable != nil {
			return field.ErrorList{field.Invalid(field.NewPath("spec"), "", "minAvailable and maxUnavailable cannot be both set")}
		}
		errs := validateIntOrPercent(p.Spec.MinAvailable, field.NewPath("spec", "minAvailable"))
		return append(errs, validateIntOrPercent(p.Spec.MaxUnavailable, field.NewPath("spec", "maxUnavailable"))...)
	})
	r.Columns = []metav1.TableColumnDefinition{nameCol, col("Min Available", "string", 0, ""), col("Max Unavailable", "string", 0, ""), col("Allowed Disruptions", "integer", 0, ""), ageCol}
	r.Row = asRow(func(p *policyv1.PodDisruptionBudget, _ bool) []any {
		minA, maxU := "N/A", "N/A"
		if p.Spec.MinAvailable != nil {
			minA = p.Spec.MinAvailable.String()
		}
		if p.Spec.MaxUnavailable != nil {
			maxU = p.Spec.MaxUnavailable.String()
		}
		return []any{p.Name, minA, maxU, int64(p.Status.DisruptionsAllowed), age(p.CreationTimestamp)}
	})
}
