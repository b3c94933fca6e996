package admission

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	resourcehelper "k8s.io/component-helpers/resource"
)

// LimitRangerAnnotation records on a pod which defaults LimitRanger set.
const LimitRangerAnnotation = "kubernetes.io/limit-ranger"

var (
	limitRangesGVR = corev1.SchemeGroupVersion.WithResource("limitranges")
	claimsGVR      = corev1.SchemeGroupVersion.WithResource("persistentvolumeclaims")
)

// limitRanger is upstream's LimitRanger: the LimitRanges of a namespace
// give its new pods' containers default requests and limits, and refuse a
// pod or claim outside their min, max and maxLimitRequestRatio (per
// Container, per Pod, per PersistentVolumeClaim). Pods are judged when
// created (their resources cannot change after), claims also when updated.
type limitRanger struct{ objects Objects }

func (*limitRanger) Handles(op Operation) bool { return op == Create || op == Update }

func (p *limitRanger) ranges(a *Attributes) []*corev1.LimitRange {
	if a.Namespace == "" || a.Subresource != "" {
		return nil
	}
	if a.Operation == Update && a.Resource == podsGVR {
		return nil
	}
	if a.Resource != podsGVR && a.Resource != claimsGVR {
		return nil
	}
	var out []*corev1.LimitRange
	for _, o := range p.objects.List(limitRangesGVR, a.Namespace) {
		if lr, ok := o.(*corev1.LimitRange); ok {
			out = append(out, lr)
		}
	}
	// Deterministic: several ranges apply in name order.
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (p *limitRanger) Admit(_ context.Context, a *Attributes) error {
	pod, ok := a.Object.(*corev1.Pod)
	if !ok {
		return nil
	}
	for _, lr := range p.ranges(a) {
		DefaultContainerResources(pod, lr)
	}
	return nil
}

// DefaultContainerResources gives pod's containers the default requests
// and limits of lr's Container items that they lack, and notes what it set
// in the pod's kubernetes.io/limit-ranger annotation, as upstream words it.
func DefaultContainerResources(pod *corev1.Pod, lr *corev1.LimitRange) {
	requests, limits := corev1.ResourceList{}, corev1.ResourceList{}
	for _, item := range lr.Spec.Limits {
		if item.Type != corev1.LimitTypeContainer {
			continue
		}
		for k, v := range item.DefaultRequest {
			requests[k] = v.DeepCopy()
		}
		for k, v := range item.Default {
			limits[k] = v.DeepCopy()
		}
	}
	if len(requests) == 0 && len(limits) == 0 {
		return
	}
	var notes []string
	fill := func(c *corev1.Container, kind string) {
		setReq, setLim := fillMissing(&c.Resources.Requests, requests), fillMissing(&c.Resources.Limits, limits)
		if len(setReq) > 0 {
			notes = append(notes, fmt.Sprintf("%s request for %s %s", strings.Join(setReq, ", "), kind, c.Name))
		}
		if len(setLim) > 0 {
			notes = append(notes, fmt.Sprintf("%s limit for %s %s", strings.Join(setLim, ", "), kind, c.Name))
		}
	}
	for i := range pod.Spec.Containers {
		fill(&pod.Spec.Containers[i], "container")
	}
	for i := range pod.Spec.InitContainers {
		fill(&pod.Spec.InitContainers[i], "init container")
	}
	if len(notes) > 0 {
		if pod.Annotations == nil {
			pod.Annotations = map[string]string{}
		}
		pod.Annotations[LimitRangerAnnotation] = "LimitRanger plugin set: " + strings.Join(notes, "; ")
	}
}

// fillMissing adds the defaults *have lacks and names them, sorted.
func fillMissing(have *corev1.ResourceList, defaults corev1.ResourceList) []string {
	var set []string
	for k, v := range defaults {
		if _, ok := (*have)[k]; ok {
			continue
		}
		if *have == nil {
			*have = corev1.ResourceList{}
		}
		(*have)[k] = v.DeepCopy()
		set = append(set, string(k))
	}
	slices.Sort(set)
	return set
}

func (p *limitRanger) Validate(_ context.Context, a *Attributes) error {
	var errs []error
	for _, lr := range p.ranges(a) {
		switch o := a.Object.(type) {
		case *corev1.Pod:
			errs = append(errs, PodLimitErrors(o, lr)...)
		case *corev1.PersistentVolumeClaim:
			errs = append(errs, ClaimLimitErrors(o, lr)...)
		}
	}
	if len(errs) > 0 {
		return a.forbidden(utilerrors.NewAggregate(errs))
	}
	return nil
}

// PodLimitErrors is what is wrong with pod under lr's Container and Pod
// items, in upstream's words.
func PodLimitErrors(pod *corev1.Pod, lr *corev1.LimitRange) []error {
	var errs []error
	check := func(kind corev1.LimitType, item corev1.LimitRangeItem, requests, limits corev1.ResourceList) {
		for _, k := range sortedNames(item.Min) {
			errs = appendErr(errs, minConstraint(kind, k, item.Min[k], requests, limits))
		}
		for _, k := range sortedNames(item.Max) {
			errs = appendErr(errs, maxConstraint(kind, k, item.Max[k], requests, limits))
		}
		for _, k := range sortedNames(item.MaxLimitRequestRatio) {
			errs = appendErr(errs, ratioConstraint(kind, k, item.MaxLimitRequestRatio[k], requests, limits))
		}
	}
	for _, item := range lr.Spec.Limits {
		switch item.Type {
		case corev1.LimitTypeContainer:
			for _, c := range slices.Concat(pod.Spec.Containers, pod.Spec.InitContainers) {
				check(item.Type, item, c.Resources.Requests, c.Resources.Limits)
			}
		case corev1.LimitTypePod:
			check(item.Type, item, resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{}), resourcehelper.PodLimits(pod, resourcehelper.PodResourcesOptions{}))
		}
	}
	return errs
}

// ClaimLimitErrors is what is wrong with claim under lr's
// PersistentVolumeClaim items: its storage request against min and max.
func ClaimLimitErrors(claim *corev1.PersistentVolumeClaim, lr *corev1.LimitRange) []error {
	var errs []error
	for _, item := range lr.Spec.Limits {
		if item.Type != corev1.LimitTypePersistentVolumeClaim {
			continue
		}
		for _, k := range sortedNames(item.Min) {
			errs = appendErr(errs, minConstraint(item.Type, k, item.Min[k], claim.Spec.Resources.Requests, nil))
		}
		for _, k := range sortedNames(item.Max) {
			errs = appendErr(errs, maxRequestConstraint(item.Type, k, item.Max[k], claim.Spec.Resources.Requests))
		}
	}
	return errs
}

func appendErr(errs []error, err error) []error {
	if err != nil {
		return append(errs, err)
	}
	return errs
}

func sortedNames(l corev1.ResourceList) []corev1.ResourceName {
	var out []corev1.ResourceName
	for k := range l {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// values compares in milli-units when none of the three overflows, as
// upstream does.
func values(req, lim, enforced resource.Quantity) (int64, int64, int64) {
	r, l, e := req.Value(), lim.Value(), enforced.Value()
	if r <= resource.MaxMilliValue && l <= resource.MaxMilliValue && e <= resource.MaxMilliValue {
		return req.MilliValue(), lim.MilliValue(), enforced.MilliValue()
	}
	return r, l, e
}

func minConstraint(kind corev1.LimitType, name corev1.ResourceName, enforced resource.Quantity, requests, limits corev1.ResourceList) error {
	req, reqOK := requests[name]
	lim, limOK := limits[name]
	r, l, e := values(req, lim, enforced)
	switch {
	case !reqOK:
		return fmt.Errorf("minimum %s usage per %s is %s.  No request is specified", name, kind, enforced.String())
	case r < e:
		return fmt.Errorf("minimum %s usage per %s is %s, but request is %s", name, kind, enforced.String(), req.String())
	case limOK && l < e:
		return fmt.Errorf("minimum %s usage per %s is %s, but limit is %s", name, kind, enforced.String(), lim.String())
	}
	return nil
}

func maxConstraint(kind corev1.LimitType, name corev1.ResourceName, enforced resource.Quantity, requests, limits corev1.ResourceList) error {
	req, reqOK := requests[name]
	lim, limOK := limits[name]
	r, l, e := values(req, lim, enforced)
	switch {
	case !limOK:
		return fmt.Errorf("maximum %s usage per %s is %s.  No limit is specified", name, kind, enforced.String())
	case l > e:
		return fmt.Errorf("maximum %s usage per %s is %s, but limit is %s", name, kind, enforced.String(), lim.String())
	case reqOK && r > e:
		return fmt.Errorf("maximum %s usage per %s is %s, but request is %s", name, kind, enforced.String(), req.String())
	}
	return nil
}

func maxRequestConstraint(kind corev1.LimitType, name corev1.ResourceName, enforced resource.Quantity, requests corev1.ResourceList) error {
	req, reqOK := requests[name]
	r, _, e := values(req, resource.Quantity{}, enforced)
	switch {
	case !reqOK:
		return fmt.Errorf("maximum %s usage per %s is %s.  No request is specified", name, kind, enforced.String())
	case r > e:
		return fmt.Errorf("maximum %s usage per %s is %s, but request is %s", name, kind, enforced.String(), req.String())
	}
	return nil
}

func ratioConstraint(kind corev1.LimitType, name corev1.ResourceName, enforced resource.Quantity, requests, limits corev1.ResourceList) error {
	req, reqOK := requests[name]
	lim, limOK := limits[name]
	r, l, _ := values(req, lim, enforced)
	if !reqOK || r == 0 {
		return fmt.Errorf("%s max limit to request ratio per %s is %s, but no request is specified or request is 0", name, kind, enforced.String())
	}
	if !limOK || l == 0 {
		return fmt.Errorf("%s max limit to request ratio per %s is %s, but no limit is specified or limit is 0", name, kind, enforced.String())
	}
	ratio := float64(l) / float64(r)
	shown, most := ratio, float64(enforced.Value())
	if enforced.Value() <= resource.MaxMilliValue {
		ratio, most = ratio*1000, float64(enforced.MilliValue())
	}
	if ratio > most {
		return fmt.Errorf("%s max limit to request ratio per %s is %s, but provided ratio is %f", name, kind, enforced.String(), shown)
	}
	return nil
}
