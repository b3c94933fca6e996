package registry

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// PreparePod defaults and validates a pod that does not pass through the
// API server: a node agent's static pod read from a manifest file. It sets
// the status fields the API would (phase Pending, QoS class).
func PreparePod(p *corev1.Pod) field.ErrorList {
	defaultPodSpec(&p.Spec)
	if errs := validatePodSpec(&p.Spec, field.NewPath("spec")); len(errs) > 0 {
		return errs
	}
	p.Status = corev1.PodStatus{Phase: corev1.PodPending, QOSClass: qosClass(&p.Spec)}
	return nil
}
