package registry

import (
	"fmt"

	"github.com/skiff-sh/skiff/internal/podspec"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Part serves a subresource that writes one part of an object
// (pods/ephemeralcontainers, pods/resize, namespaces/finalize,
// certificatesigningrequests/approval): Take makes the next object from the
// request and the stored one — the stored one with that part taken from the
// request — and validates the part. Everything else of the request is
// ignored, as upstream's subresources do.
type Part struct {
	Take func(req, cur runtime.Object) (runtime.Object, field.ErrorList)
	// Verbs the subresource serves (nil: get, patch and update).
	Verbs []string
}

// podParts are the pod subresources that change the spec of a pod that is
// already running.
var podParts = map[string]Part{
	"ephemeralcontainers": {Take: ephemeralContainersPart},
	"resize":              {Take: resizePart},
}

// ephemeralContainersPart: debugging containers are added to a running
// pod, never changed or removed.
func ephemeralContainersPart(req, cur runtime.Object) (runtime.Object, field.ErrorList) {
	in, old := req.(*corev1.Pod), cur.(*corev1.Pod)
	next := old.DeepCopy()
	next.Spec.EphemeralContainers = in.Spec.EphemeralContainers
	podspec.Default(&next.Spec)
	return next, validateEphemeralContainers(&next.Spec, &old.Spec)
}

func validateEphemeralContainers(s, old *corev1.PodSpec) field.ErrorList {
	var errs field.ErrorList
	p := field.NewPath("spec", "ephemeralContainers")
	prev := map[string]corev1.EphemeralContainer{}
	for _, c := range old.EphemeralContainers {
		prev[c.Name] = c
	}
	names := sets.New[string]()
	targets := sets.New[string]()
	for _, c := range s.Containers {
		names.Insert(c.Name)
		targets.Insert(c.Name)
	}
	for _, c := range s.InitContainers {
		names.Insert(c.Name)
		targets.Insert(c.Name)
	}
	seen := sets.New[string]()
	for i, c := range s.EphemeralContainers {
		cp := p.Index(i)
		seen.Insert(c.Name)
		if was, ok := prev[c.Name]; ok {
			if !apiequality.Semantic.DeepEqual(was, c) {
				errs = append(errs, field.Forbidden(cp, fmt.Sprintf("existing ephemeral containers %q may not be changed", c.Name)))
			}
			names.Insert(c.Name)
			continue
		}
		errs = append(errs, podspec.ValidateContainerName(c.Name, cp.Child("name"), names)...)
		if c.Image == "" {
			errs = append(errs, field.Required(cp.Child("image"), ""))
		}
		if c.TargetContainerName != "" && !targets.Has(c.TargetContainerName) {
			errs = append(errs, field.NotFound(cp.Child("targetContainerName"), c.TargetContainerName))
		}
		// What an ephemeral container may not have: it is never a
		// service endpoint, never probed, never reserved resources.
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"ports", len(c.Ports) > 0}, {"livenessProbe", c.LivenessProbe != nil}, {"readinessProbe", c.ReadinessProbe != nil},
			{"startupProbe", c.StartupProbe != nil}, {"lifecycle", c.Lifecycle != nil},
			{"resources", len(c.Resources.Limits) > 0 || len(c.Resources.Requests) > 0}, {"resizePolicy", len(c.ResizePolicy) > 0},
			{"restartPolicy", c.RestartPolicy != nil},
		} {
			if f.set {
				errs = append(errs, field.Forbidden(cp.Child(f.name), "cannot be set for an Ephemeral Container"))
			}
		}
		for j, m := range c.VolumeMounts {
			if m.SubPath != "" {
				errs = append(errs, field.Forbidden(cp.Child("volumeMounts").Index(j).Child("subPath"), "cannot be set for an Ephemeral Container"))
			}
		}
	}
	for name := range prev {
		if !seen.Has(name) {
			errs = append(errs, field.Forbidden(p, fmt.Sprintf("existing ephemeral containers %q may not be removed", name)))
		}
	}
	return errs
}

// resizePart: a running pod's containers get new CPU and memory requests
// and limits in place; the kubelet applies them and reports the resize in
// the pod's conditions and container statuses.
func resizePart(req, cur runtime.Object) (runtime.Object, field.ErrorList) {
	in, old := req.(*corev1.Pod), cur.(*corev1.Pod)
	next := old.DeepCopy()
	p := field.NewPath("spec", "containers")
	var errs field.ErrorList
	if len(in.Spec.Containers) != len(old.Spec.Containers) {
		return nil, field.ErrorList{field.Forbidden(p, "pod resize may not add or remove containers")}
	}
	for i := range in.Spec.Containers {
		c, was := in.Spec.Containers[i], &next.Spec.Containers[i]
		if c.Name != was.Name {
			errs = append(errs, field.Forbidden(p.Index(i).Child("name"), "pod resize may not change container names"))
			continue
		}
		for _, rl := range []corev1.ResourceList{c.Resources.Requests, c.Resources.Limits} {
			for name := range rl {
				if name != corev1.ResourceCPU && name != corev1.ResourceMemory {
					errs = append(errs, field.Forbidden(p.Index(i).Child("resources"), fmt.Sprintf("only cpu and memory resources are mutable, not %s", name)))
				}
			}
		}
		was.Resources = *c.Resources.DeepCopy()
		if c.ResizePolicy != nil {
			was.ResizePolicy = c.ResizePolicy
		}
	}
	for i := range next.Spec.Containers {
		podspec.DefaultContainer(&next.Spec.Containers[i], next.Spec.HostNetwork)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	if podspec.QOSClass(&next.Spec) != podspec.QOSClass(&old.Spec) {
		errs = append(errs, field.Forbidden(field.NewPath("spec"), "Pod QOS Class may not change as a result of resizing"))
	}
	if old.Spec.OS != nil && old.Spec.OS.Name == corev1.Windows {
		errs = append(errs, field.Forbidden(field.NewPath("spec"), "windows pods cannot be resized"))
	}
	for i := range next.Spec.Containers {
		c := &next.Spec.Containers[i]
		for name, lim := range c.Resources.Limits {
			if r, ok := c.Resources.Requests[name]; ok && r.Cmp(lim) > 0 {
				errs = append(errs, field.Invalid(p.Index(i).Child("resources", "requests").Key(string(name)), r.String(), fmt.Sprintf("must be less than or equal to %s limit of %s", name, lim.String())))
			}
		}
	}
	return next, errs
}
