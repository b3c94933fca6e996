package quota

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Delta is what creating obj (of resource gr) adds to the resources a quota
// limits: the same accounting as Usage, over one object.
func Delta(hard corev1.ResourceList, gr schema.GroupResource, obj runtime.Object) corev1.ResourceList {
	var pods []*corev1.Pod
	var services []*corev1.Service
	var claims []*corev1.PersistentVolumeClaim
	switch o := obj.(type) {
	case *corev1.Pod:
		pods = append(pods, o)
	case *corev1.Service:
		services = append(services, o)
	case *corev1.PersistentVolumeClaim:
		claims = append(claims, o)
	}
	key := gr.Resource
	if gr.Group != "" {
		key += "." + gr.Group
	}
	out := corev1.ResourceList{}
	for name, q := range Usage(hard, pods, services, claims, map[string]int64{key: 1}) {
		if !q.IsZero() {
			out[name] = q
		}
	}
	return out
}

// Check says why adding delta to a quota's status.used would exceed its
// hard limits ("" when it fits), in upstream's words.
func Check(name string, status corev1.ResourceQuotaStatus, delta corev1.ResourceList) string {
	var names []string
	for r := range delta {
		if _, limited := status.Hard[r]; limited {
			names = append(names, string(r))
		}
	}
	sort.Strings(names)
	var requested, used, limited []string
	for _, n := range names {
		r := corev1.ResourceName(n)
		u, known := status.Used[r]
		if !known {
			return fmt.Sprintf("status unknown for quota: %s, resource: %s", name, n)
		}
		next := u.DeepCopy()
		next.Add(delta[r])
		if next.Cmp(status.Hard[r]) > 0 {
			d, h := delta[r], status.Hard[r]
			requested = append(requested, n+"="+d.String())
			used = append(used, n+"="+u.String())
			limited = append(limited, n+"="+h.String())
		}
	}
	if len(requested) == 0 {
		return ""
	}
	return fmt.Sprintf("exceeded quota: %s, requested: %s, used: %s, limited: %s", name,
		strings.Join(requested, ","), strings.Join(used, ","), strings.Join(limited, ","))
}

// MissingRequests names the compute resources a quota limits that a pod
// does not declare for every container ("" when none): upstream refuses
// such pods, since their use could not be counted.
func MissingRequests(hard corev1.ResourceList, pod *corev1.Pod) string {
	var missing []string
	for _, pair := range []struct {
		quota corev1.ResourceName
		res   corev1.ResourceName
		limit bool
	}{
		{"requests.cpu", corev1.ResourceCPU, false}, {"cpu", corev1.ResourceCPU, false},
		{"requests.memory", corev1.ResourceMemory, false}, {"memory", corev1.ResourceMemory, false},
		{"limits.cpu", corev1.ResourceCPU, true}, {"limits.memory", corev1.ResourceMemory, true},
	} {
		if _, ok := hard[pair.quota]; !ok {
			continue
		}
		for _, c := range append(append([]corev1.Container(nil), pod.Spec.InitContainers...), pod.Spec.Containers...) {
			l := c.Resources.Requests
			if pair.limit {
				l = c.Resources.Limits
			}
			if _, ok := l[pair.res]; !ok {
				missing = append(missing, string(pair.quota))
				break
			}
		}
	}
	sort.Strings(missing)
	return strings.Join(missing, ",")
}

// Add returns used plus delta.
func Add(used, delta corev1.ResourceList) corev1.ResourceList {
	out := used.DeepCopy()
	if out == nil {
		out = corev1.ResourceList{}
	}
	for name, q := range delta {
		cur, ok := out[name]
		if !ok {
			cur = resource.Quantity{Format: q.Format}
		}
		cur.Add(q)
		out[name] = cur
	}
	return out
}
