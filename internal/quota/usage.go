// Package quota computes what objects count against a ResourceQuota: the
// controller adds up a namespace, admission adds one object.
package quota

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// podActive: the pod counts against quota (not finished).
func podActive(p *corev1.Pod) bool {
	return p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed
}

// podResources is a pod's effective requests or limits, as the scheduler
// and quota count them: the larger of the app containers' sum and any one
// init container, plus pod overhead.
func podResources(p *corev1.Pod, limits bool) corev1.ResourceList {
	pick := func(r corev1.ResourceRequirements) corev1.ResourceList {
		if limits {
			return r.Limits
		}
		return r.Requests
	}
	sum := corev1.ResourceList{}
	for _, c := range p.Spec.Containers {
		add(sum, pick(c.Resources))
	}
	for _, c := range p.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			add(sum, pick(c.Resources)) // sidecars run alongside
			continue
		}
		for name, q := range pick(c.Resources) {
			if cur, ok := sum[name]; !ok || q.Cmp(cur) > 0 {
				sum[name] = q.DeepCopy()
			}
		}
	}
	add(sum, p.Spec.Overhead)
	return sum
}

func add(into, more corev1.ResourceList) {
	for name, q := range more {
		cur := into[name]
		cur.Add(q)
		into[name] = cur
	}
}

// Usage computes status.used for the resources a quota limits, from the
// namespace's pods, services and claims and from counts of other objects
// (count/<resource>[.<group>] keyed by the same name).
func Usage(hard corev1.ResourceList, pods []*corev1.Pod, services []*corev1.Service, claims []*corev1.PersistentVolumeClaim, counts map[string]int64) corev1.ResourceList {
	used := corev1.ResourceList{}
	var active []*corev1.Pod
	for _, p := range pods {
		if podActive(p) {
			active = append(active, p)
		}
	}
	requests, limits := corev1.ResourceList{}, corev1.ResourceList{}
	for _, p := range active {
		add(requests, podResources(p, false))
		add(limits, podResources(p, true))
	}
	var nodePorts, lbs int64
	for _, s := range services {
		if s.Spec.Type == corev1.ServiceTypeLoadBalancer {
			lbs++
		}
		if s.Spec.Type == corev1.ServiceTypeNodePort || s.Spec.Type == corev1.ServiceTypeLoadBalancer {
			for _, p := range s.Spec.Ports {
				if p.NodePort != 0 {
					nodePorts++
				}
			}
		}
	}
	storage := resource.Quantity{}
	for _, c := range claims {
		if q, ok := c.Spec.Resources.Requests[corev1.ResourceStorage]; ok {
			storage.Add(q)
		}
	}
	for name := range hard {
		n := string(name)
		switch {
		case n == "pods" || n == "count/pods":
			used[name] = *resource.NewQuantity(int64(len(active)), resource.DecimalSI)
		case n == "services" || n == "count/services":
			used[name] = *resource.NewQuantity(int64(len(services)), resource.DecimalSI)
		case n == "services.nodeports":
			used[name] = *resource.NewQuantity(nodePorts, resource.DecimalSI)
		case n == "services.loadbalancers":
			used[name] = *resource.NewQuantity(lbs, resource.DecimalSI)
		case n == "persistentvolumeclaims" || n == "count/persistentvolumeclaims":
			used[name] = *resource.NewQuantity(int64(len(claims)), resource.DecimalSI)
		case n == "requests.storage":
			used[name] = storage
		case n == "cpu" || n == "memory" || n == "ephemeral-storage":
			used[name] = quantity(requests, name)
		case strings.HasSuffix(n, storageClassSuffix+"requests.storage"):
			used[name] = classStorage(claims, strings.TrimSuffix(n, storageClassSuffix+"requests.storage"))
		case strings.HasSuffix(n, storageClassSuffix+"persistentvolumeclaims"):
			used[name] = *resource.NewQuantity(int64(len(classClaims(claims, strings.TrimSuffix(n, storageClassSuffix+"persistentvolumeclaims")))), resource.DecimalSI)
		case strings.HasPrefix(n, "requests."):
			// requests.cpu, .memory, .ephemeral-storage and extended
			// resources (requests.example.com/gpu).
			used[name] = quantity(requests, corev1.ResourceName(strings.TrimPrefix(n, "requests.")))
		case strings.HasPrefix(n, "limits."):
			used[name] = quantity(limits, corev1.ResourceName(strings.TrimPrefix(n, "limits.")))
		case n == "configmaps" || n == "secrets" || n == "replicationcontrollers" || n == "resourcequotas" || strings.HasPrefix(n, "count/"):
			used[name] = *resource.NewQuantity(counts[strings.TrimPrefix(n, "count/")], resource.DecimalSI)
		}
	}
	return used
}

func quantity(l corev1.ResourceList, name corev1.ResourceName) resource.Quantity {
	if q, ok := l[name]; ok {
		return q
	}
	return resource.Quantity{Format: resource.DecimalSI}
}

// storageClassSuffix marks per-class claim quotas:
// <class>.storageclass.storage.k8s.io/requests.storage and
// <class>.storageclass.storage.k8s.io/persistentvolumeclaims.
const storageClassSuffix = ".storageclass.storage.k8s.io/"

func classClaims(claims []*corev1.PersistentVolumeClaim, class string) []*corev1.PersistentVolumeClaim {
	var out []*corev1.PersistentVolumeClaim
	for _, c := range claims {
		if c.Spec.StorageClassName != nil && *c.Spec.StorageClassName == class {
			out = append(out, c)
		}
	}
	return out
}

func classStorage(claims []*corev1.PersistentVolumeClaim, class string) resource.Quantity {
	total := resource.Quantity{}
	for _, c := range classClaims(claims, class) {
		if q, ok := c.Spec.Resources.Requests[corev1.ResourceStorage]; ok {
			total.Add(q)
		}
	}
	return total
}
