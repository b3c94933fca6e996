package registry

import (
	"fmt"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

func hpaColumns() []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{nameCol, col("Reference", "string", 0, ""), col("Targets", "string", 0, ""), col("MinPods", "string", 0, ""), col("MaxPods", "string", 0, ""), col("Replicas", "string", 0, ""), ageCol}
}

func hpaRow(h *autoscalingv2.HorizontalPodAutoscaler) []any {
	var targets []string
	for _, m := range h.Spec.Metrics {
		if m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil && m.Resource.Target.AverageUtilization != nil {
			cur := "<unknown>"
			for _, c := range h.Status.CurrentMetrics {
				if c.Resource != nil && c.Resource.Name == m.Resource.Name && c.Resource.Current.AverageUtilization != nil {
					cur = fmt.Sprintf("%d%%", *c.Resource.Current.AverageUtilization)
				}
			}
			targets = append(targets, fmt.Sprintf("%s: %s/%d%%", m.Resource.Name, cur, *m.Resource.Target.AverageUtilization))
		} else {
			targets = append(targets, "<unknown>")
		}
	}
	ref := h.Spec.ScaleTargetRef.Kind + "/" + h.Spec.ScaleTargetRef.Name
	return []any{h.Name, ref, joinLimited(targets, 2), fmt.Sprint(ptr.Deref(h.Spec.MinReplicas, 1)), int64(h.Spec.MaxReplicas), int64(h.Status.CurrentReplicas), age(h.CreationTimestamp)}
}

func validateHPA(h *autoscalingv2.HorizontalPodAutoscaler) field.ErrorList {
	var errs field.ErrorList
	sp := field.NewPath("spec")
	if h.Spec.MinReplicas != nil && *h.Spec.MinReplicas < 1 {
		errs = append(errs, field.Invalid(sp.Child("minReplicas"), *h.Spec.MinReplicas, "must be greater than or equal to 1"))
	}
	if h.Spec.MaxReplicas < 1 {
		errs = append(errs, field.Invalid(sp.Child("maxReplicas"), h.Spec.MaxReplicas, "must be greater than 0"))
	}
	if h.Spec.MinReplicas != nil && h.Spec.MaxReplicas < *h.Spec.MinReplicas {
		errs = append(errs, field.Invalid(sp.Child("maxReplicas"), h.Spec.MaxReplicas, "must be greater than or equal to `minReplicas`"))
	}
	if h.Spec.ScaleTargetRef.Kind == "" {
		errs = append(errs, field.Required(sp.Child("scaleTargetRef", "kind"), ""))
	}
	if h.Spec.ScaleTargetRef.Name == "" {
		errs = append(errs, field.Required(sp.Child("scaleTargetRef", "name"), ""))
	}
	return errs
}

func defaultHPA(h *autoscalingv2.HorizontalPodAutoscaler) {
	if h.Spec.MinReplicas == nil {
		h.Spec.MinReplicas = ptr.To[int32](1)
	}
	if len(h.Spec.Metrics) == 0 {
		h.Spec.Metrics = []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To[int32](80)}}}}
	}
}

func hpaV2Strategy(r *Resource) {
	r.ShortNames = []string{"hpa"}
	r.Categories = []string{"all"}
	r.Status = true
	r.Default = asDefault(func(o *autoscalingv2.HorizontalPodAutoscaler) { defaultHPA(o) })
	r.Validate = asValidate(func(o *autoscalingv2.HorizontalPodAutoscaler) field.ErrorList { return validateHPA(o) })
	r.Columns = hpaColumns()
	r.Row = asRow(func(o *autoscalingv2.HorizontalPodAutoscaler, _ bool) []any { return hpaRow(o) })
}

// hpaV1Strategy serves autoscaling/v1 from the v2 storage: the CPU target
// maps to a Resource metric; other v2 metrics are kept in storage and not
// shown in v1.
func hpaV1Strategy(r *Resource) {
	r.ShortNames = []string{"hpa"}
	r.Categories = []string{"all"}
	r.Status = true
	r.StorageGVK = autoscalingv2.SchemeGroupVersion.WithKind("HorizontalPodAutoscaler")
	r.ToStorage = func(o runtime.Object) (runtime.Object, error) {
		return hpaV1ToV2(o.(*autoscalingv1.HorizontalPodAutoscaler)), nil
	}
	r.FromStorage = func(o runtime.Object) (runtime.Object, error) {
		return hpaV2ToV1(o.(*autoscalingv2.HorizontalPodAutoscaler)), nil
	}
	r.Default = asDefault(func(h *autoscalingv1.HorizontalPodAutoscaler) {
		if h.Spec.MinReplicas == nil {
			h.Spec.MinReplicas = ptr.To[int32](1)
		}
	})
	r.Validate = asValidate(func(o *autoscalingv1.HorizontalPodAutoscaler) field.ErrorList {
		return validateHPA(hpaV1ToV2(o))
	})
	r.Columns = hpaColumns()
	r.Row = asRow(func(o *autoscalingv1.HorizontalPodAutoscaler, _ bool) []any {
		h := hpaV1ToV2(o)
		defaultHPA(h)
		return hpaRow(h)
	})
}

func hpaV1ToV2(h *autoscalingv1.HorizontalPodAutoscaler) *autoscalingv2.HorizontalPodAutoscaler {
	out := &autoscalingv2.HorizontalPodAutoscaler{
		TypeMeta:   metav1.TypeMeta{APIVersion: "autoscaling/v2", Kind: "HorizontalPodAutoscaler"},
		ObjectMeta: h.ObjectMeta,
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{Kind: h.Spec.ScaleTargetRef.Kind, Name: h.Spec.ScaleTargetRef.Name, APIVersion: h.Spec.ScaleTargetRef.APIVersion},
			MinReplicas:    h.Spec.MinReplicas, MaxReplicas: h.Spec.MaxReplicas,
		},
		Status: autoscalingv2.HorizontalPodAutoscalerStatus{ObservedGeneration: h.Status.ObservedGeneration, LastScaleTime: h.Status.LastScaleTime, CurrentReplicas: h.Status.CurrentReplicas, DesiredReplicas: h.Status.DesiredReplicas},
	}
	if h.Spec.TargetCPUUtilizationPercentage != nil {
		out.Spec.Metrics = []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: h.Spec.TargetCPUUtilizationPercentage}}}}
	}
	if h.Status.CurrentCPUUtilizationPercentage != nil {
		out.Status.CurrentMetrics = []autoscalingv2.MetricStatus{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricStatus{Name: corev1.ResourceCPU, Current: autoscalingv2.MetricValueStatus{AverageUtilization: h.Status.CurrentCPUUtilizationPercentage}}}}
	}
	return out
}

func hpaV2ToV1(h *autoscalingv2.HorizontalPodAutoscaler) *autoscalingv1.HorizontalPodAutoscaler {
	out := &autoscalingv1.HorizontalPodAutoscaler{
		TypeMeta:   metav1.TypeMeta{APIVersion: "autoscaling/v1", Kind: "HorizontalPodAutoscaler"},
		ObjectMeta: h.ObjectMeta,
		Spec: autoscalingv1.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv1.CrossVersionObjectReference{Kind: h.Spec.ScaleTargetRef.Kind, Name: h.Spec.ScaleTargetRef.Name, APIVersion: h.Spec.ScaleTargetRef.APIVersion},
			MinReplicas:    h.Spec.MinReplicas, MaxReplicas: h.Spec.MaxReplicas,
		},
		Status: autoscalingv1.HorizontalPodAutoscalerStatus{ObservedGeneration: h.Status.ObservedGeneration, LastScaleTime: h.Status.LastScaleTime, CurrentReplicas: h.Status.CurrentReplicas, DesiredReplicas: h.Status.DesiredReplicas},
	}
	for _, m := range h.Spec.Metrics {
		if m.Resource != nil && m.Resource.Name == corev1.ResourceCPU && m.Resource.Target.AverageUtilization != nil {
			out.Spec.TargetCPUUtilizationPercentage = m.Resource.Target.AverageUtilization
		}
	}
	for _, m := range h.Status.CurrentMetrics {
		if m.Resource != nil && m.Resource.Name == corev1.ResourceCPU {
			out.Status.CurrentCPUUtilizationPercentage = m.Resource.Current.AverageUtilization
		}
	}
	return out
}
