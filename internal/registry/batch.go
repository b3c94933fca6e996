package registry

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/skiff-sh/skiff/internal/podspec"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// Labels upstream's Job strategy puts on a Job's selector and pods.
const (
	labelControllerUID = "batch.kubernetes.io/controller-uid"
	labelJobName       = "batch.kubernetes.io/job-name"
)

func defaultJobSpec(s *batchv1.JobSpec) {
	if s.Completions == nil && s.Parallelism == nil {
		s.Completions, s.Parallelism = ptr.To[int32](1), ptr.To[int32](1)
	}
	if s.Parallelism == nil {
		s.Parallelism = ptr.To[int32](1)
	}
	if s.BackoffLimit == nil {
		if s.BackoffLimitPerIndex != nil {
			s.BackoffLimit = ptr.To[int32](2147483647)
		} else {
			s.BackoffLimit = ptr.To[int32](6)
		}
	}
	if s.CompletionMode == nil {
		s.CompletionMode = ptr.To(batchv1.NonIndexedCompletion)
	}
	if s.Suspend == nil {
		s.Suspend = ptr.To(false)
	}
	if s.PodReplacementPolicy == nil {
		if s.PodFailurePolicy != nil {
			s.PodReplacementPolicy = ptr.To(batchv1.Failed)
		} else {
			s.PodReplacementPolicy = ptr.To(batchv1.TerminatingOrFailed)
		}
	}
	if s.ManualSelector == nil {
		s.ManualSelector = ptr.To(false)
	}
	podspec.Default(&s.Template.Spec)
}

func validateJobSpec(s *batchv1.JobSpec, p *field.Path, generated bool) field.ErrorList {
	var errs field.ErrorList
	for name, v := range map[string]*int32{"parallelism": s.Parallelism, "completions": s.Completions, "backoffLimit": s.BackoffLimit} {
		if v != nil && *v < 0 {
			errs = append(errs, field.Invalid(p.Child(name), *v, "must be greater than or equal to 0"))
		}
	}
	if s.ActiveDeadlineSeconds != nil && *s.ActiveDeadlineSeconds <= 0 {
		errs = append(errs, field.Invalid(p.Child("activeDeadlineSeconds"), *s.ActiveDeadlineSeconds, "must be greater than 0"))
	}
	if s.CompletionMode != nil && *s.CompletionMode == batchv1.IndexedCompletion && s.Completions == nil {
		errs = append(errs, field.Required(p.Child("completions"), "when completion mode is Indexed"))
	}
	if !generated && s.Selector == nil {
		errs = append(errs, field.Required(p.Child("selector"), ""))
	}
	errs = append(errs, podspec.ValidateTemplate(&s.Template, p.Child("template"))...)
	if rp := s.Template.Spec.RestartPolicy; rp != corev1.RestartPolicyOnFailure && rp != corev1.RestartPolicyNever {
		errs = append(errs, field.NotSupported(p.Child("template", "spec", "restartPolicy"), rp, []string{"OnFailure", "Never"}))
	}
	return errs
}

func jobStrategy(r *Resource) {
	r.Categories = []string{"all"}
	r.Status = true
	r.Default = asDefault(func(o *batchv1.Job) { defaultJobSpec(&o.Spec) })
	r.OnCreate = func(_ context.Context, o runtime.Object, _ bool) error {
		j := o.(*batchv1.Job)
		if ptr.Deref(j.Spec.ManualSelector, false) {
			return nil
		}
		// Generate the selector from the Job's uid, as upstream does.
		uid := string(j.UID)
		if j.Spec.Template.Labels == nil {
			j.Spec.Template.Labels = map[string]string{}
		}
		for k, v := range map[string]string{labelControllerUID: uid, labelJobName: j.Name, "controller-uid": uid, "job-name": j.Name} {
			j.Spec.Template.Labels[k] = v
		}
		j.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{labelControllerUID: uid}}
		return nil
	}
	r.Validate = asValidate(func(j *batchv1.Job) field.ErrorList {
		return validateJobSpec(&j.Spec, field.NewPath("spec"), !ptr.Deref(j.Spec.ManualSelector, false))
	})
	r.ValidateUpdate = asValidateUpdate(func(j, oj *batchv1.Job) field.ErrorList {
		errs := validateJobSpec(&j.Spec, field.NewPath("spec"), true)
		if !apiequality.Semantic.DeepEqual(j.Spec.Selector, oj.Spec.Selector) {
			errs = append(errs, field.Invalid(field.NewPath("spec", "selector"), j.Spec.Selector, "field is immutable"))
		}
		if !ptr.Deref(oj.Spec.Suspend, false) && !apiequality.Semantic.DeepEqual(j.Spec.Template, oj.Spec.Template) {
			errs = append(errs, field.Invalid(field.NewPath("spec", "template"), "", "field is immutable"))
		}
		if !apiequality.Semantic.DeepEqual(j.Spec.Completions, oj.Spec.Completions) && ptr.Deref(j.Spec.CompletionMode, "") != batchv1.IndexedCompletion {
			errs = append(errs, field.Invalid(field.NewPath("spec", "completions"), j.Spec.Completions, "field is immutable"))
		}
		return errs
	})
	r.Columns = append([]metav1.TableColumnDefinition{nameCol, col("Status", "string", 0, ""), col("Completions", "string", 0, ""), col("Duration", "string", 0, ""), ageCol}, wideWorkloadColumns...)
	r.Row = asRow(func(j *batchv1.Job, _ bool) []any {
		completions := fmt.Sprintf("%d/%d", j.Status.Succeeded, ptr.Deref(j.Spec.Completions, 1))
		if j.Spec.Completions == nil {
			completions = fmt.Sprintf("%d/1 of %d", j.Status.Succeeded, ptr.Deref(j.Spec.Parallelism, 1))
		}
		status := "Running"
		for _, c := range j.Status.Conditions {
			if c.Status != corev1.ConditionTrue {
				continue
			}
			switch c.Type {
			case batchv1.JobComplete:
				status = "Complete"
			case batchv1.JobFailed:
				status = "Failed"
			case batchv1.JobSuspended:
				status = "Suspended"
			case batchv1.JobFailureTarget:
				status = "FailureTarget"
			case batchv1.JobSuccessCriteriaMet:
				status = "SuccessCriteriaMet"
			}
		}
		if j.DeletionTimestamp != nil {
			status = "Terminating"
		}
		dur := ""
		if j.Status.StartTime != nil {
			if j.Status.CompletionTime != nil {
				dur = age(*j.Status.StartTime)
				dur = durationBetween(*j.Status.StartTime, *j.Status.CompletionTime)
			} else {
				dur = age(*j.Status.StartTime)
			}
		}
		row := []any{j.Name, status, completions, dur, age(j.CreationTimestamp)}
		return append(row, workloadRowTail(&j.Spec.Template, j.Spec.Selector)...)
	})
}

func cronJobStrategy(r *Resource) {
	r.ShortNames = []string{"cj"}
	r.Categories = []string{"all"}
	r.Status = true
	r.Default = asDefault(func(c *batchv1.CronJob) {
		if c.Spec.ConcurrencyPolicy == "" {
			c.Spec.ConcurrencyPolicy = batchv1.AllowConcurrent
		}
		if c.Spec.Suspend == nil {
			c.Spec.Suspend = ptr.To(false)
		}
		if c.Spec.SuccessfulJobsHistoryLimit == nil {
			c.Spec.SuccessfulJobsHistoryLimit = ptr.To[int32](3)
		}
		if c.Spec.FailedJobsHistoryLimit == nil {
			c.Spec.FailedJobsHistoryLimit = ptr.To[int32](1)
		}
		podspec.Default(&c.Spec.JobTemplate.Spec.Template.Spec)
	})
	r.Validate = asValidate(func(c *batchv1.CronJob) field.ErrorList {
		var errs field.ErrorList
		sp := field.NewPath("spec")
		if c.Spec.Schedule == "" {
			errs = append(errs, field.Required(sp.Child("schedule"), ""))
		} else if err := validateSchedule(c.Spec.Schedule); err != nil {
			errs = append(errs, field.Invalid(sp.Child("schedule"), c.Spec.Schedule, err.Error()))
		}
		switch c.Spec.ConcurrencyPolicy {
		case batchv1.AllowConcurrent, batchv1.ForbidConcurrent, batchv1.ReplaceConcurrent:
		default:
			errs = append(errs, field.NotSupported(sp.Child("concurrencyPolicy"), c.Spec.ConcurrencyPolicy, []string{"Allow", "Forbid", "Replace"}))
		}
		if len(c.Name) > 52 {
			errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), c.Name, "must be no more than 52 characters"))
		}
		return append(errs, validateJobSpec(&c.Spec.JobTemplate.Spec, sp.Child("jobTemplate", "spec"), true)...)
	})
	r.Columns = append([]metav1.TableColumnDefinition{nameCol, col("Schedule", "string", 0, ""), col("Timezone", "string", 0, ""), col("Suspend", "boolean", 0, ""), col("Active", "integer", 0, ""), col("Last Schedule", "string", 0, ""), ageCol}, wideWorkloadColumns...)
	r.Row = asRow(func(c *batchv1.CronJob, _ bool) []any {
		last := "<none>"
		if c.Status.LastScheduleTime != nil {
			last = age(*c.Status.LastScheduleTime)
		}
		row := []any{c.Name, c.Spec.Schedule, orNone(ptrString(c.Spec.TimeZone)), ptr.Deref(c.Spec.Suspend, false), int64(len(c.Status.Active)), last, age(c.CreationTimestamp)}
		return append(row, workloadRowTail(&c.Spec.JobTemplate.Spec.Template, c.Spec.JobTemplate.Spec.Selector)...)
	})
}

func durationBetween(a, b metav1.Time) string {
	return duration.HumanDuration(b.Sub(a.Time))
}
