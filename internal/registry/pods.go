package registry

import (
	"context"
	"fmt"
	"strings"

	"github.com/skiff-sh/skiff/internal/podspec"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// wellKnownPriorities are the built-in PriorityClasses' values.
var wellKnownPriorities = map[string]int32{"system-node-critical": 2000001000, "system-cluster-critical": 2000000000}

func podStrategy(r *Resource) {
	r.Guard = nodeRestriction
	r.Parts = podParts
	r.ShortNames = []string{"po"}
	r.Categories = []string{"all"}
	r.Status = true
	addAction(r, "binding", bindingAction)
	addAction(r, "eviction", evictionAction)
	r.Default = asDefault(func(o *corev1.Pod) { podspec.Default(&o.Spec) })
	r.Validate = asValidate(func(p *corev1.Pod) field.ErrorList {
		return podspec.Validate(&p.Spec, field.NewPath("spec"))
	})
	r.ValidateUpdate = asValidateUpdate(func(p, op *corev1.Pod) field.ErrorList {
		errs := podspec.Validate(&p.Spec, field.NewPath("spec"))
		return append(errs, validatePodSpecUpdate(&p.Spec, &op.Spec)...)
	})
	r.OnCreate = func(_ context.Context, o runtime.Object, _ bool) error {
		p := o.(*corev1.Pod)
		p.Status = corev1.PodStatus{Phase: corev1.PodPending, QOSClass: podspec.QOSClass(&p.Spec)}
		if len(p.Spec.SchedulingGates) > 0 {
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonSchedulingGated, Message: "Scheduling is blocked due to non-empty scheduling gates"}}
		}
		if p.Spec.ServiceAccountName == "" {
			p.Spec.ServiceAccountName = "default"
		}
		p.Spec.DeprecatedServiceAccount = p.Spec.ServiceAccountName
		return nil
	}
	r.Fields = asFields(func(p *corev1.Pod) fields.Set {
		return fields.Set{
			"spec.nodeName": p.Spec.NodeName, "spec.restartPolicy": string(p.Spec.RestartPolicy),
			"spec.schedulerName": p.Spec.SchedulerName, "spec.serviceAccountName": p.Spec.ServiceAccountName,
			"spec.hostNetwork": fmt.Sprint(p.Spec.HostNetwork), "status.phase": string(p.Status.Phase),
			"status.podIP": p.Status.PodIP, "status.nominatedNodeName": p.Status.NominatedNodeName,
		}
	})
	r.GracefulDelete = podGrace
	r.Columns = []metav1.TableColumnDefinition{
		nameCol,
		col("Ready", "string", 0, "The aggregate readiness state of this pod for accepting traffic."),
		col("Status", "string", 0, "The aggregate status of the containers in this pod."),
		col("Restarts", "string", 0, "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
		ageCol,
		col("IP", "string", 1, "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
		col("Node", "string", 1, "NodeName is a request to schedule this pod onto a specific node."),
		col("Nominated Node", "string", 1, "nominatedNodeName is set only when this pod preempts other pods on the node."),
		col("Readiness Gates", "string", 1, "If specified, all readiness gates will be evaluated for pod readiness."),
	}
	r.Row = podRow
}

// podGrace is upstream's pod graceful-deletion rule: an unscheduled or
// finished pod goes at once; otherwise the requested or spec grace period.
func podGrace(o runtime.Object, requested *int64) (int64, bool) {
	p := o.(*corev1.Pod)
	grace := int64(corev1.DefaultTerminationGracePeriodSeconds)
	if p.Spec.TerminationGracePeriodSeconds != nil {
		grace = *p.Spec.TerminationGracePeriodSeconds
	}
	if requested != nil {
		grace = *requested
	}
	if p.Spec.NodeName == "" || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return 0, true
	}
	if grace == 0 && requested == nil {
		grace = 1
	}
	return grace, true
}

// validatePodSpecUpdate forbids changes outside the fields upstream lets a
// running pod change.
func validatePodSpecUpdate(s, old *corev1.PodSpec) field.ErrorList {
	mutable := old.DeepCopy()
	for i := range mutable.Containers {
		if i < len(s.Containers) {
			mutable.Containers[i].Image = s.Containers[i].Image
		}
	}
	for i := range mutable.InitContainers {
		if i < len(s.InitContainers) {
			mutable.InitContainers[i].Image = s.InitContainers[i].Image
		}
	}
	mutable.ActiveDeadlineSeconds = s.ActiveDeadlineSeconds
	mutable.SchedulingGates = s.SchedulingGates
	if onlyAddedTolerations(s.Tolerations, old.Tolerations) {
		mutable.Tolerations = s.Tolerations
	}
	if s.TerminationGracePeriodSeconds != nil && old.TerminationGracePeriodSeconds != nil && *s.TerminationGracePeriodSeconds >= 0 {
		mutable.TerminationGracePeriodSeconds = s.TerminationGracePeriodSeconds
	}
	if old.NodeName == "" {
		mutable.NodeName = s.NodeName
	}
	if apiequality.Semantic.DeepEqual(mutable, s) {
		return nil
	}
	return field.ErrorList{field.Forbidden(field.NewPath("spec"), "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)")}
}

// podRow is kubectl's pod line: READY counts, the status reason as upstream
// derives it, restarts with the time of the last one.
func podRow(o runtime.Object, wide bool) []any {
	p := o.(*corev1.Pod)
	restarts, ready := 0, 0
	var lastRestart metav1.Time
	reason := string(p.Status.Phase)
	if p.Status.Reason != "" {
		reason = p.Status.Reason
	}
	initializing := false
	for i, c := range p.Status.InitContainerStatuses {
		restarts += int(c.RestartCount)
		if c.LastTerminationState.Terminated != nil && c.LastTerminationState.Terminated.FinishedAt.After(lastRestart.Time) {
			lastRestart = c.LastTerminationState.Terminated.FinishedAt
		}
		switch {
		case c.State.Terminated != nil && c.State.Terminated.ExitCode == 0:
			continue
		case c.Started != nil && *c.Started && i < len(p.Spec.InitContainers) && p.Spec.InitContainers[i].RestartPolicy != nil:
			continue
		case c.State.Terminated != nil:
			reason = "Init:" + orDefault(c.State.Terminated.Reason, fmt.Sprintf("ExitCode:%d", c.State.Terminated.ExitCode))
		case c.State.Waiting != nil && c.State.Waiting.Reason != "" && c.State.Waiting.Reason != "PodInitializing":
			reason = "Init:" + c.State.Waiting.Reason
		default:
			reason = fmt.Sprintf("Init:%d/%d", i, len(p.Spec.InitContainers))
		}
		initializing = true
		break
	}
	if !initializing {
		hasRunning := false
		for i := len(p.Status.ContainerStatuses) - 1; i >= 0; i-- {
			c := p.Status.ContainerStatuses[i]
			restarts += int(c.RestartCount)
			if c.LastTerminationState.Terminated != nil && c.LastTerminationState.Terminated.FinishedAt.After(lastRestart.Time) {
				lastRestart = c.LastTerminationState.Terminated.FinishedAt
			}
			switch {
			case c.State.Waiting != nil && c.State.Waiting.Reason != "":
				reason = c.State.Waiting.Reason
			case c.State.Terminated != nil && c.State.Terminated.Reason != "":
				reason = c.State.Terminated.Reason
			case c.State.Terminated != nil:
				reason = fmt.Sprintf("ExitCode:%d", c.State.Terminated.ExitCode)
			case c.Ready && c.State.Running != nil:
				hasRunning = true
				ready++
			}
		}
		if reason == "Completed" && hasRunning {
			reason = "Running"
		}
	}
	if p.DeletionTimestamp != nil {
		reason = "Terminating"
		if p.Status.Reason == "NodeLost" {
			reason = "Unknown"
		}
	}
	restartStr := fmt.Sprint(restarts)
	if !lastRestart.IsZero() {
		restartStr = fmt.Sprintf("%d (%s ago)", restarts, age(lastRestart))
	}
	total := len(p.Spec.Containers)
	for _, c := range p.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			total++
		}
	}
	row := []any{p.Name, fmt.Sprintf("%d/%d", ready, total), reason, restartStr, age(p.CreationTimestamp)}
	ip := "<none>"
	if p.Status.PodIP != "" {
		ip = p.Status.PodIP
	}
	gates := "<none>"
	if n := len(p.Spec.ReadinessGates); n > 0 {
		trueCount := 0
		for _, g := range p.Spec.ReadinessGates {
			for _, c := range p.Status.Conditions {
				if c.Type == g.ConditionType && c.Status == corev1.ConditionTrue {
					trueCount++
				}
			}
		}
		gates = fmt.Sprintf("%d/%d", trueCount, n)
	}
	return append(row, ip, orNone(p.Spec.NodeName), orNone(p.Status.NominatedNodeName), gates)
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func containerNames(cs []corev1.Container) (string, string) {
	names, images := make([]string, len(cs)), make([]string, len(cs))
	for i, c := range cs {
		names[i], images[i] = c.Name, c.Image
	}
	return strings.Join(names, ","), strings.Join(images, ",")
}

func podTemplateStrategy(r *Resource) {
	r.Default = asDefault(func(o *corev1.PodTemplate) { podspec.Default(&o.Template.Spec) })
	r.Validate = asValidate(func(o *corev1.PodTemplate) field.ErrorList {
		return podspec.ValidateTemplate(&o.Template, field.NewPath("template"))
	})
	r.Columns = []metav1.TableColumnDefinition{nameCol, col("Containers", "string", 0, ""), col("Images", "string", 0, ""), col("Pod Labels", "string", 0, "")}
	r.Row = asRow(func(t *corev1.PodTemplate, _ bool) []any {
		n, i := containerNames(t.Template.Spec.Containers)
		return []any{t.Name, n, i, labelsString(t.Template.Labels)}
	})
}

// onlyAddedTolerations: every old toleration is still there, in any order,
// its tolerationSeconds aside (upstream's rule for pod updates).
func onlyAddedTolerations(cur, old []corev1.Toleration) bool {
	for _, o := range old {
		found := false
		for _, c := range cur {
			o.TolerationSeconds = c.TolerationSeconds
			if apiequality.Semantic.DeepEqual(o, c) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
