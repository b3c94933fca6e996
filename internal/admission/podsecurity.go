package admission

import (
	"context"
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/admission/podsecurity"
)

// The namespace labels of Pod Security admission.
const (
	podSecurityPrefix = "pod-security.kubernetes.io/"
	modeEnforce       = "enforce"
	modeAudit         = "audit"
	modeWarn          = "warn"
)

// PodSecurityConfig is the PodSecurity plugin's configuration (upstream's
// PodSecurityConfiguration): the levels of namespaces without labels, and
// who is exempt.
type PodSecurityConfig struct {
	Defaults   PodSecurityDefaults   `json:"defaults"`
	Exemptions PodSecurityExemptions `json:"exemptions"`
}

// PodSecurityDefaults are the levels and versions of unlabeled namespaces.
type PodSecurityDefaults struct {
	Enforce        string `json:"enforce,omitempty"`
	EnforceVersion string `json:"enforce-version,omitempty"`
	Audit          string `json:"audit,omitempty"`
	AuditVersion   string `json:"audit-version,omitempty"`
	Warn           string `json:"warn,omitempty"`
	WarnVersion    string `json:"warn-version,omitempty"`
}

// PodSecurityExemptions are never checked.
type PodSecurityExemptions struct {
	Usernames      []string `json:"usernames,omitempty"`
	Namespaces     []string `json:"namespaces,omitempty"`
	RuntimeClasses []string `json:"runtimeClasses,omitempty"`
}

// policy is one mode's level and version.
type policy struct {
	level   podsecurity.Level
	version string
}

func (p policy) String() string { return string(p.level) + ":" + p.version }

// podSecurity is upstream's PodSecurity admission: a namespace's labels
// (or the configured defaults) say which Pod Security Standard its pods
// must meet (enforce: refused), are warned about (warn: Warning headers)
// and noted for (audit); workload templates are warned about, not refused.
type podSecurity struct {
	objects Objects
	config  PodSecurityConfig
}

func (*podSecurity) Handles(op Operation) bool { return op == Create || op == Update }

var workloads = map[string]bool{"deployments": true, "daemonsets": true, "statefulsets": true, "replicasets": true,
	"jobs": true, "cronjobs": true, "replicationcontrollers": true, "podtemplates": true}

func (p *podSecurity) Validate(ctx context.Context, a *Attributes) error {
	switch {
	case a.Is(namespacesGVR):
		return p.namespace(ctx, a)
	case a.Resource == podsGVR && (a.Subresource == "" || a.Subresource == "ephemeralcontainers"):
		pod, ok := a.Object.(*corev1.Pod)
		if !ok {
			return nil
		}
		if old, ok := a.OldObject.(*corev1.Pod); ok && a.Operation == Update && !significantPodUpdate(pod, old) {
			return nil
		}
		return p.judge(ctx, a, &pod.ObjectMeta, &pod.Spec, true)
	case a.Subresource == "" && workloads[a.Resource.Resource]:
		if meta, spec := template(a.Object); spec != nil {
			return p.judge(ctx, a, meta, spec, false)
		}
	}
	return nil
}

// significantPodUpdate says whether an update can change what PodSecurity
// judged, as upstream's: a container added or removed (an ephemeral one,
// most often), or a container's image or seccomp annotation changed. Most
// of a pod's spec is immutable, so other updates (labels, status, the
// kubelet's) are let through unjudged, and a pod admitted before its
// namespace's level was raised can still be updated.
func significantPodUpdate(pod, old *corev1.Pod) bool {
	if pod.Annotations[corev1.SeccompPodAnnotationKey] != old.Annotations[corev1.SeccompPodAnnotationKey] {
		return true
	}
	if len(pod.Spec.Containers) != len(old.Spec.Containers) || len(pod.Spec.InitContainers) != len(old.Spec.InitContainers) ||
		len(pod.Spec.EphemeralContainers) != len(old.Spec.EphemeralContainers) {
		return true
	}
	changed := func(name, image, oldName, oldImage string) bool {
		key := corev1.SeccompContainerAnnotationKeyPrefix
		return image != oldImage || pod.Annotations[key+name] != old.Annotations[key+oldName]
	}
	for i, c := range pod.Spec.Containers {
		if o := old.Spec.Containers[i]; changed(c.Name, c.Image, o.Name, o.Image) {
			return true
		}
	}
	for i, c := range pod.Spec.InitContainers {
		if o := old.Spec.InitContainers[i]; changed(c.Name, c.Image, o.Name, o.Image) {
			return true
		}
	}
	for i, c := range pod.Spec.EphemeralContainers {
		if o := old.Spec.EphemeralContainers[i]; changed(c.Name, c.Image, o.Name, o.Image) {
			return true
		}
	}
	return false
}

// template is a workload's pod template.
func template(obj any) (*metav1.ObjectMeta, *corev1.PodSpec) {
	var t *corev1.PodTemplateSpec
	switch o := obj.(type) {
	case *appsv1.Deployment:
		t = &o.Spec.Template
	case *appsv1.DaemonSet:
		t = &o.Spec.Template
	case *appsv1.StatefulSet:
		t = &o.Spec.Template
	case *appsv1.ReplicaSet:
		t = &o.Spec.Template
	case *batchv1.Job:
		t = &o.Spec.Template
	case *batchv1.CronJob:
		t = &o.Spec.JobTemplate.Spec.Template
	case *corev1.ReplicationController:
		t = o.Spec.Template
	case *corev1.PodTemplate:
		t = &o.Template
	}
	if t == nil {
		return nil, nil
	}
	return &t.ObjectMeta, &t.Spec
}

// policies are the namespace's modes: its labels, else the defaults.
func (p *podSecurity) policies(labels map[string]string) map[string]policy {
	def := p.config.Defaults
	defaults := map[string][2]string{modeEnforce: {def.Enforce, def.EnforceVersion}, modeAudit: {def.Audit, def.AuditVersion}, modeWarn: {def.Warn, def.WarnVersion}}
	out := map[string]policy{}
	for mode, d := range defaults {
		level, version := d[0], d[1]
		if l, ok := labels[podSecurityPrefix+mode]; ok {
			level, version = l, ""
		}
		if v, ok := labels[podSecurityPrefix+mode+"-version"]; ok {
			version = v
		}
		if level == "" {
			level = string(podsecurity.Privileged)
		}
		if version == "" {
			version = "latest"
		}
		out[mode] = policy{podsecurity.Level(level), version}
	}
	return out
}

func (p *podSecurity) exempt(a *Attributes, spec *corev1.PodSpec) bool {
	e := p.config.Exemptions
	return slices.Contains(e.Usernames, a.User.Name) || slices.Contains(e.Namespaces, a.Namespace) ||
		spec.RuntimeClassName != nil && slices.Contains(e.RuntimeClasses, *spec.RuntimeClassName)
}

func reasons(vs []podsecurity.Violation) string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.String()
	}
	return strings.Join(out, ", ")
}

// judge checks a pod (enforcing) or a workload's template (warning only).
func (p *podSecurity) judge(ctx context.Context, a *Attributes, meta *metav1.ObjectMeta, spec *corev1.PodSpec, enforce bool) error {
	if p.exempt(a, spec) {
		return nil
	}
	o, err := p.objects.Get(ctx, namespacesGVR, "", a.Namespace)
	if err != nil {
		return nil // NamespaceLifecycle has refused a missing namespace
	}
	pol := p.policies(o.(*corev1.Namespace).Labels)
	if enforce {
		Annotate(ctx, podSecurityPrefix+"enforce-policy", pol[modeEnforce].String())
		if vs := podsecurity.Evaluate(pol[modeEnforce].level, pol[modeEnforce].version, meta, spec); len(vs) > 0 {
			return a.forbidden(fmt.Errorf("violates PodSecurity %q: %s", pol[modeEnforce], reasons(vs)))
		}
	}
	if au := pol[modeAudit]; au.level != podsecurity.Privileged {
		if vs := podsecurity.Evaluate(au.level, au.version, meta, spec); len(vs) > 0 {
			Annotate(ctx, podSecurityPrefix+"audit-violations", fmt.Sprintf("would violate PodSecurity %q: %s", au, reasons(vs)))
		}
	}
	if w := pol[modeWarn]; w.level != podsecurity.Privileged {
		if vs := podsecurity.Evaluate(w.level, w.version, meta, spec); len(vs) > 0 {
			Warn(ctx, fmt.Sprintf("would violate PodSecurity %q: %s", w, reasons(vs)))
		}
	}
	return nil
}

// maxPodWarnings bounds the warnings about existing pods a namespace
// label change gives.
const maxPodWarnings = 10

// namespace checks the labels' values and, when the enforced level
// changes, warns which of the namespace's pods the new level would refuse.
func (p *podSecurity) namespace(ctx context.Context, a *Attributes) error {
	ns := a.Object.(*corev1.Namespace)
	var errs field.ErrorList
	for _, mode := range []string{modeEnforce, modeAudit, modeWarn} {
		key := podSecurityPrefix + mode
		if v, ok := ns.Labels[key]; ok && !slices.Contains([]string{"privileged", "baseline", "restricted"}, v) {
			errs = append(errs, field.Invalid(field.NewPath("metadata", "labels").Key(key), v, "must be one of privileged, baseline, restricted"))
		}
		if v, ok := ns.Labels[key+"-version"]; ok && v != "latest" && !validVersion(v) {
			errs = append(errs, field.Invalid(field.NewPath("metadata", "labels").Key(key+"-version"), v, `must be "latest" or of the form "v1.x"`))
		}
	}
	if len(errs) > 0 {
		return apierrors.NewInvalid(corev1.SchemeGroupVersion.WithKind("Namespace").GroupKind(), ns.Name, errs)
	}
	if a.Operation != Update || a.OldObject == nil {
		return nil
	}
	now, was := p.policies(ns.Labels)[modeEnforce], p.policies(a.OldObject.(*corev1.Namespace).Labels)[modeEnforce]
	if now == was || now.level == podsecurity.Privileged || slices.Contains(p.config.Exemptions.Namespaces, ns.Name) {
		return nil
	}
	var bad []string
	for _, o := range p.objects.List(podsGVR, ns.Name) {
		pod := o.(*corev1.Pod)
		if vs := podsecurity.Evaluate(now.level, now.version, &pod.ObjectMeta, &pod.Spec); len(vs) > 0 {
			names := make([]string, len(vs))
			for i, v := range vs {
				names[i] = v.Reason
			}
			bad = append(bad, pod.Name+": "+strings.Join(names, ", "))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	slices.Sort(bad)
	Warn(ctx, fmt.Sprintf("existing pods in namespace %q violate the new PodSecurity enforce level %q", ns.Name, now))
	for i, b := range bad {
		if i == maxPodWarnings {
			Warn(ctx, fmt.Sprintf("(and %d other pods)", len(bad)-i))
			break
		}
		Warn(ctx, b)
	}
	return nil
}

func validVersion(v string) bool {
	var minor int
	n, err := fmt.Sscanf(v, "v1.%d", &minor)
	return err == nil && n == 1 && fmt.Sprintf("v1.%d", minor) == v
}
