package registry

import (
	"fmt"
	"slices"
	"strings"

	"github.com/skiff-sh/skiff/internal/podspec"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

func lower(s string) string { return strings.ToLower(s) }

// validateWorkload checks what every apps/v1 workload shares: a non-empty
// selector that matches the template's labels, replicas ≥ 0, a valid
// template whose pods restart Always.
func validateWorkload(sel *metav1.LabelSelector, replicas *int32, t *corev1.PodTemplateSpec) field.ErrorList {
	var errs field.ErrorList
	sp := field.NewPath("spec")
	if sel == nil {
		errs = append(errs, field.Required(sp.Child("selector"), ""))
	} else {
		errs = append(errs, metav1validation.ValidateLabelSelector(sel, metav1validation.LabelSelectorValidationOptions{}, sp.Child("selector"))...)
		if len(sel.MatchLabels)+len(sel.MatchExpressions) == 0 {
			errs = append(errs, field.Invalid(sp.Child("selector"), sel, "empty selector is invalid for deployment"))
		}
		if s, err := metav1.LabelSelectorAsSelector(sel); err == nil && !s.Matches(labels.Set(t.Labels)) {
			errs = append(errs, field.Invalid(sp.Child("template", "metadata", "labels"), t.Labels, "`selector` does not match template `labels`"))
		}
	}
	if replicas != nil && *replicas < 0 {
		errs = append(errs, field.Invalid(sp.Child("replicas"), *replicas, "must be greater than or equal to 0"))
	}
	errs = append(errs, podspec.ValidateTemplate(t, sp.Child("template"))...)
	if t.Spec.RestartPolicy != corev1.RestartPolicyAlways {
		errs = append(errs, field.NotSupported(sp.Child("template", "spec", "restartPolicy"), t.Spec.RestartPolicy, []string{string(corev1.RestartPolicyAlways)}))
	}
	return errs
}

func immutableSelector(sel, old *metav1.LabelSelector) field.ErrorList {
	if !apiequality.Semantic.DeepEqual(sel, old) {
		return field.ErrorList{field.Invalid(field.NewPath("spec", "selector"), sel, "field is immutable")}
	}
	return nil
}

func validateIntOrPercent(v *intstr.IntOrString, p *field.Path) field.ErrorList {
	if v == nil {
		return nil
	}
	if v.Type == intstr.Int {
		if v.IntVal < 0 {
			return field.ErrorList{field.Invalid(p, v.IntVal, "must be greater than or equal to 0")}
		}
		return nil
	}
	var n int
	if _, err := fmt.Sscanf(v.StrVal, "%d%%", &n); err != nil || !strings.HasSuffix(v.StrVal, "%") {
		return field.ErrorList{field.Invalid(p, v.StrVal, "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')")}
	}
	if n < 0 || n > 100 {
		return field.ErrorList{field.Invalid(p, v.StrVal, "must not be greater than 100%")}
	}
	return nil
}

func workloadRowTail(t *corev1.PodTemplateSpec, sel *metav1.LabelSelector) []any {
	c, i := containerNames(t.Spec.Containers)
	return []any{c, i, selectorString(sel)}
}

var wideWorkloadColumns = []metav1.TableColumnDefinition{col("Containers", "string", 1, "Names of each container in the template."), col("Images", "string", 1, "Images referenced by each container in the template."), col("Selector", "string", 1, "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.")}

func deploymentStrategy(r *Resource) {
	r.ShortNames = []string{"deploy"}
	r.Categories = []string{"all"}
	r.Status = true
	withScale(r)
	r.Default = asDefault(func(d *appsv1.Deployment) {
		if d.Spec.Replicas == nil {
			d.Spec.Replicas = ptr.To[int32](1)
		}
		if d.Spec.Strategy.Type == "" {
			d.Spec.Strategy.Type = appsv1.RollingUpdateDeploymentStrategyType
		}
		if d.Spec.Strategy.Type == appsv1.RollingUpdateDeploymentStrategyType {
			if d.Spec.Strategy.RollingUpdate == nil {
				d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{}
			}
			if d.Spec.Strategy.RollingUpdate.MaxUnavailable == nil {
				d.Spec.Strategy.RollingUpdate.MaxUnavailable = ptr.To(intstr.FromString("25%"))
			}
			if d.Spec.Strategy.RollingUpdate.MaxSurge == nil {
				d.Spec.Strategy.RollingUpdate.MaxSurge = ptr.To(intstr.FromString("25%"))
			}
		}
		if d.Spec.RevisionHistoryLimit == nil {
			d.Spec.RevisionHistoryLimit = ptr.To[int32](10)
		}
		if d.Spec.ProgressDeadlineSeconds == nil {
			d.Spec.ProgressDeadlineSeconds = ptr.To[int32](600)
		}
		podspec.Default(&d.Spec.Template.Spec)
	})
	validate := func(d *appsv1.Deployment) field.ErrorList {
		errs := validateWorkload(d.Spec.Selector, d.Spec.Replicas, &d.Spec.Template)
		sp := field.NewPath("spec", "strategy")
		switch d.Spec.Strategy.Type {
		case appsv1.RecreateDeploymentStrategyType:
			if d.Spec.Strategy.RollingUpdate != nil {
				errs = append(errs, field.Forbidden(sp.Child("rollingUpdate"), "may not be specified when strategy `type` is 'Recreate'"))
			}
		case appsv1.RollingUpdateDeploymentStrategyType:
			ru := d.Spec.Strategy.RollingUpdate
			errs = append(errs, validateIntOrPercent(ru.MaxUnavailable, sp.Child("rollingUpdate", "maxUnavailable"))...)
			errs = append(errs, validateIntOrPercent(ru.MaxSurge, sp.Child("rollingUpdate", "maxSurge"))...)
			if isZero(ru.MaxUnavailable) && isZero(ru.MaxSurge) {
				errs = append(errs, field.Invalid(sp.Child("rollingUpdate", "maxUnavailable"), ru.MaxUnavailable.String(), "may not be 0 when `maxSurge` is 0"))
			}
		default:
			errs = append(errs, field.NotSupported(sp.Child("type"), d.Spec.Strategy.Type, []string{"Recreate", "RollingUpdate"}))
		}
		if d.Spec.ProgressDeadlineSeconds != nil && *d.Spec.ProgressDeadlineSeconds <= d.Spec.MinReadySeconds {
			errs = append(errs, field.Invalid(field.NewPath("spec", "progressDeadlineSeconds"), *d.Spec.ProgressDeadlineSeconds, "must be greater than minReadySeconds"))
		}
		return errs
	}
	r.Validate = asValidate(func(o *appsv1.Deployment) field.ErrorList { return validate(o) })
	r.ValidateUpdate = asValidateUpdate(func(o, old *appsv1.Deployment) field.ErrorList {
		d := o
		return append(validate(d), immutableSelector(d.Spec.Selector, old.Spec.Selector)...)
	})
	r.Columns = append([]metav1.TableColumnDefinition{nameCol, col("Ready", "string", 0, "Number of the pod with ready state"), col("Up-to-date", "string", 0, "Total number of non-terminated pods targeted by this deployment that have the desired template spec."), col("Available", "string", 0, "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."), ageCol}, wideWorkloadColumns...)
	r.Row = asRow(func(d *appsv1.Deployment, _ bool) []any {
		row := []any{d.Name, fmt.Sprintf("%d/%d", d.Status.ReadyReplicas, deref(d.Spec.Replicas)), int64(d.Status.UpdatedReplicas), int64(d.Status.AvailableReplicas), age(d.CreationTimestamp)}
		return append(row, workloadRowTail(&d.Spec.Template, d.Spec.Selector)...)
	})
}

func isZero(v *intstr.IntOrString) bool {
	return v != nil && (v.Type == intstr.Int && v.IntVal == 0 || v.Type == intstr.String && v.StrVal == "0%")
}

func replicaSetStrategy(r *Resource) {
	r.ShortNames = []string{"rs"}
	r.Categories = []string{"all"}
	r.Status = true
	withScale(r)
	r.Default = asDefault(func(rs *appsv1.ReplicaSet) {
		if rs.Spec.Replicas == nil {
			rs.Spec.Replicas = ptr.To[int32](1)
		}
		podspec.Default(&rs.Spec.Template.Spec)
	})
	r.Validate = asValidate(func(rs *appsv1.ReplicaSet) field.ErrorList {
		return validateWorkload(rs.Spec.Selector, rs.Spec.Replicas, &rs.Spec.Template)
	})
	r.ValidateUpdate = asValidateUpdate(func(o, old *appsv1.ReplicaSet) field.ErrorList {
		rs := o
		return append(validateWorkload(rs.Spec.Selector, rs.Spec.Replicas, &rs.Spec.Template), immutableSelector(rs.Spec.Selector, old.Spec.Selector)...)
	})
	r.Columns = replicaColumns()
	r.Row = asRow(func(rs *appsv1.ReplicaSet, _ bool) []any {
		row := []any{rs.Name, int64(deref(rs.Spec.Replicas)), int64(rs.Status.Replicas), int64(rs.Status.ReadyReplicas), age(rs.CreationTimestamp)}
		return append(row, workloadRowTail(&rs.Spec.Template, rs.Spec.Selector)...)
	})
}

func statefulSetStrategy(r *Resource) {
	r.ShortNames = []string{"sts"}
	r.Categories = []string{"all"}
	r.Status = true
	withScale(r)
	r.Default = asDefault(func(s *appsv1.StatefulSet) {
		if s.Spec.Replicas == nil {
			s.Spec.Replicas = ptr.To[int32](1)
		}
		if s.Spec.PodManagementPolicy == "" {
			s.Spec.PodManagementPolicy = appsv1.OrderedReadyPodManagement
		}
		if s.Spec.UpdateStrategy.Type == "" {
			s.Spec.UpdateStrategy.Type = appsv1.RollingUpdateStatefulSetStrategyType
		}
		if s.Spec.UpdateStrategy.Type == appsv1.RollingUpdateStatefulSetStrategyType {
			if s.Spec.UpdateStrategy.RollingUpdate == nil {
				s.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{}
			}
			if s.Spec.UpdateStrategy.RollingUpdate.Partition == nil {
				s.Spec.UpdateStrategy.RollingUpdate.Partition = ptr.To[int32](0)
			}
		}
		if s.Spec.RevisionHistoryLimit == nil {
			s.Spec.RevisionHistoryLimit = ptr.To[int32](10)
		}
		if s.Spec.PersistentVolumeClaimRetentionPolicy == nil {
			s.Spec.PersistentVolumeClaimRetentionPolicy = &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{WhenDeleted: appsv1.RetainPersistentVolumeClaimRetentionPolicyType, WhenScaled: appsv1.RetainPersistentVolumeClaimRetentionPolicyType}
		}
		for i := range s.Spec.VolumeClaimTemplates {
			c := &s.Spec.VolumeClaimTemplates[i]
			if c.Spec.VolumeMode == nil {
				c.Spec.VolumeMode = ptr.To(corev1.PersistentVolumeFilesystem)
			}
		}
		podspec.Default(&s.Spec.Template.Spec)
	})
	validate := func(s *appsv1.StatefulSet) field.ErrorList {
		// Containers may mount the claim templates: upstream validates the
		// template with them added as volumes.
		tmpl := s.Spec.Template.DeepCopy()
		for _, c := range s.Spec.VolumeClaimTemplates {
			if !slices.ContainsFunc(tmpl.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == c.Name }) {
				tmpl.Spec.Volumes = append(tmpl.Spec.Volumes, corev1.Volume{Name: c.Name, VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: c.Name}}})
			}
		}
		errs := validateWorkload(s.Spec.Selector, s.Spec.Replicas, tmpl)
		if p := s.Spec.PodManagementPolicy; p != appsv1.OrderedReadyPodManagement && p != appsv1.ParallelPodManagement {
			errs = append(errs, field.NotSupported(field.NewPath("spec", "podManagementPolicy"), p, []string{"OrderedReady", "Parallel"}))
		}
		return errs
	}
	r.Validate = asValidate(func(o *appsv1.StatefulSet) field.ErrorList { return validate(o) })
	r.ValidateUpdate = asValidateUpdate(func(s, os *appsv1.StatefulSet) field.ErrorList {
		errs := append(validate(s), immutableSelector(s.Spec.Selector, os.Spec.Selector)...)
		// Only some spec fields may change, as upstream allows.
		mutable := os.Spec.DeepCopy()
		mutable.Replicas, mutable.Template, mutable.UpdateStrategy = s.Spec.Replicas, s.Spec.Template, s.Spec.UpdateStrategy
		mutable.MinReadySeconds, mutable.PersistentVolumeClaimRetentionPolicy, mutable.Ordinals = s.Spec.MinReadySeconds, s.Spec.PersistentVolumeClaimRetentionPolicy, s.Spec.Ordinals
		mutable.RevisionHistoryLimit = s.Spec.RevisionHistoryLimit
		if !apiequality.Semantic.DeepEqual(*mutable, s.Spec) {
			errs = append(errs, field.Forbidden(field.NewPath("spec"), "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"))
		}
		return errs
	})
	r.Columns = append([]metav1.TableColumnDefinition{nameCol, col("Ready", "string", 0, "Number of the pod with ready state"), ageCol}, wideWorkloadColumns[:2]...)
	r.Row = asRow(func(s *appsv1.StatefulSet, _ bool) []any {
		c, i := containerNames(s.Spec.Template.Spec.Containers)
		return []any{s.Name, fmt.Sprintf("%d/%d", s.Status.ReadyReplicas, deref(s.Spec.Replicas)), age(s.CreationTimestamp), c, i}
	})
}

func daemonSetStrategy(r *Resource) {
	r.ShortNames = []string{"ds"}
	r.Categories = []string{"all"}
	r.Status = true
	r.Default = asDefault(func(d *appsv1.DaemonSet) {
		if d.Spec.UpdateStrategy.Type == "" {
			d.Spec.UpdateStrategy.Type = appsv1.RollingUpdateDaemonSetStrategyType
		}
		if d.Spec.UpdateStrategy.Type == appsv1.RollingUpdateDaemonSetStrategyType {
			if d.Spec.UpdateStrategy.RollingUpdate == nil {
				d.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateDaemonSet{}
			}
			if d.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable == nil {
				d.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = ptr.To(intstr.FromInt32(1))
			}
			if d.Spec.UpdateStrategy.RollingUpdate.MaxSurge == nil {
				d.Spec.UpdateStrategy.RollingUpdate.MaxSurge = ptr.To(intstr.FromInt32(0))
			}
		}
		if d.Spec.RevisionHistoryLimit == nil {
			d.Spec.RevisionHistoryLimit = ptr.To[int32](10)
		}
		podspec.Default(&d.Spec.Template.Spec)
	})
	r.Validate = asValidate(func(d *appsv1.DaemonSet) field.ErrorList {
		return validateWorkload(d.Spec.Selector, nil, &d.Spec.Template)
	})
	r.ValidateUpdate = asValidateUpdate(func(o, old *appsv1.DaemonSet) field.ErrorList {
		d := o
		return append(validateWorkload(d.Spec.Selector, nil, &d.Spec.Template), immutableSelector(d.Spec.Selector, old.Spec.Selector)...)
	})
	r.Columns = append([]metav1.TableColumnDefinition{nameCol, col("Desired", "integer", 0, ""), col("Current", "integer", 0, ""), col("Ready", "integer", 0, ""), col("Up-to-date", "integer", 0, ""), col("Available", "integer", 0, ""), col("Node Selector", "string", 0, ""), ageCol}, wideWorkloadColumns...)
	r.Row = asRow(func(d *appsv1.DaemonSet, _ bool) []any {
		st := d.Status
		row := []any{d.Name, int64(st.DesiredNumberScheduled), int64(st.CurrentNumberScheduled), int64(st.NumberReady), int64(st.UpdatedNumberScheduled), int64(st.NumberAvailable), labelsString(d.Spec.Template.Spec.NodeSelector), age(d.CreationTimestamp)}
		return append(row, workloadRowTail(&d.Spec.Template, d.Spec.Selector)...)
	})
}

func controllerRevisionTable() ([]metav1.TableColumnDefinition, func(runtime.Object, bool) []any) {
	return []metav1.TableColumnDefinition{nameCol, col("Controller", "string", 0, ""), col("Revision", "integer", 0, ""), ageCol}, func(o runtime.Object, _ bool) []any {
		c := o.(*appsv1.ControllerRevision)
		ctrl := "<none>"
		if ref := metav1.GetControllerOf(c); ref != nil {
			ctrl = strings.ToLower(ref.Kind) + "." + strings.Split(ref.APIVersion, "/")[0] + "/" + ref.Name
		}
		return []any{c.Name, ctrl, c.Revision, age(c.CreationTimestamp)}
	}
}
