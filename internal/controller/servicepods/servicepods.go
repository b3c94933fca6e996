// Package servicepods holds what the Endpoints and EndpointSlice controllers
// share: which pods back a Service, whether they are ready, and the ports
// each one serves.
package servicepods

import (
	"slices"
	"strconv"
	"strings"

	"github.com/skiff-sh/skiff/internal/work"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// Port is one Service port resolved against one pod.
type Port struct {
	Name        string
	Port        int32
	Protocol    corev1.Protocol
	AppProtocol *string
}

// Selects reports whether the Service picks pods by selector (those without
// one have their Endpoints written by hand).
func Selects(svc *corev1.Service) bool { return len(svc.Spec.Selector) > 0 }

// Pods lists the pods a Service's selector matches.
func Pods(pods corelisters.PodLister, svc *corev1.Service) ([]*corev1.Pod, error) {
	return pods.Pods(svc.Namespace).List(labels.Set(svc.Spec.Selector).AsSelectorPreValidated())
}

// Include reports whether a pod appears in the Service's endpoints at all:
// it has an IP and has not finished; a terminating pod only when the
// Service publishes not-ready addresses.
func Include(pod *corev1.Pod, svc *corev1.Service) bool {
	if pod.Status.PodIP == "" || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return false
	}
	return pod.DeletionTimestamp == nil || svc.Spec.PublishNotReadyAddresses
}

// Ready is the pod's Ready condition.
func Ready(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Ports resolves the Service's ports for pod: a numeric targetPort is used
// as is; a named one is looked up among the pod's container ports and the
// port is left out when the pod has no such name.
func Ports(svc *corev1.Service, pod *corev1.Pod) []Port {
	var out []Port
	for _, sp := range svc.Spec.Ports {
		num, ok := targetPort(sp, pod)
		if !ok {
			continue
		}
		out = append(out, Port{Name: sp.Name, Port: num, Protocol: sp.Protocol, AppProtocol: sp.AppProtocol})
	}
	return out
}

func targetPort(sp corev1.ServicePort, pod *corev1.Pod) (int32, bool) {
	tp := sp.TargetPort
	switch {
	case tp.Type == intstr.Int && tp.IntVal == 0:
		return sp.Port, true
	case tp.Type == intstr.Int:
		return tp.IntVal, true
	}
	for _, c := range slices.Concat(pod.Spec.Containers, pod.Spec.InitContainers) {
		for _, p := range c.Ports {
			if p.Name == tp.StrVal && p.Protocol == sp.Protocol {
				return p.ContainerPort, true
			}
		}
	}
	return 0, false
}

// Key identifies a port list, for grouping pods that serve the same ports.
func Key(ports []Port) string {
	var b strings.Builder
	for _, p := range ports {
		b.WriteString(p.Name)
		b.WriteByte('/')
		b.WriteString(string(p.Protocol))
		b.WriteByte('/')
		b.WriteString(strconv.Itoa(int(p.Port)))
		b.WriteByte(';')
	}
	return b.String()
}

// Hostname is the DNS name a pod has in the Service: its hostname when its
// subdomain is the Service's name.
func Hostname(pod *corev1.Pod, svc *corev1.Service) string {
	if pod.Spec.Hostname != "" && pod.Spec.Subdomain == svc.Name && svc.Namespace == pod.Namespace {
		return pod.Spec.Hostname
	}
	return ""
}

// ServicesFor lists the Services in pod's namespace whose selector matches
// any of the label sets (a pod's old and new labels).
func ServicesFor(services corelisters.ServiceLister, ns string, sets ...map[string]string) []*corev1.Service {
	all, _ := services.Services(ns).List(labels.Everything())
	var out []*corev1.Service
	for _, svc := range all {
		if !Selects(svc) {
			continue
		}
		sel := labels.Set(svc.Spec.Selector).AsSelectorPreValidated()
		for _, l := range sets {
			if sel.Matches(labels.Set(l)) {
				out = append(out, svc)
				break
			}
		}
	}
	return out
}

// Watch registers the event handlers both endpoint controllers need: a
// Service's own changes, and pod changes queued to every Service whose
// selector matched the pod before or after.
func Watch(svcInf, podInf cache.SharedIndexInformer, services corelisters.ServiceLister, enqueue func(key string)) error {
	svcKey := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			enqueue(key)
		}
	}
	if _, err := svcInf.AddEventHandler(work.OnChange(svcKey)); err != nil {
		return err
	}
	podChanged := func(sets ...*corev1.Pod) {
		var labelSets []map[string]string
		for _, p := range sets {
			labelSets = append(labelSets, p.Labels)
		}
		for _, svc := range ServicesFor(services, sets[0].Namespace, labelSets...) {
			enqueue(svc.Namespace + "/" + svc.Name)
		}
	}
	_, err := podInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) { podChanged(o.(*corev1.Pod)) },
		UpdateFunc: func(old, o any) {
			prev, p := old.(*corev1.Pod), o.(*corev1.Pod)
			if prev.ResourceVersion != p.ResourceVersion {
				podChanged(prev, p)
			}
		},
		DeleteFunc: func(o any) {
			if tomb, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = tomb.Obj
			}
			if p, ok := o.(*corev1.Pod); ok {
				podChanged(p)
			}
		},
	})
	return err
}
