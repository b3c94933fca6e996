package scheduler

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

// newPodInformer watches pods that are not finished: finished pods free
// their node's resources, so to the scheduler they are deleted.
func newPodInformer(cs kubernetes.Interface, resync time.Duration) cache.SharedIndexInformer {
	return coreinformers.NewFilteredPodInformer(cs, metav1.NamespaceAll, resync, cache.Indexers{}, func(o *metav1.ListOptions) {
		o.FieldSelector = "status.phase!=" + string(corev1.PodSucceeded) + ",status.phase!=" + string(corev1.PodFailed)
	})
}

func podOf(obj any) *corev1.Pod {
	switch o := obj.(type) {
	case *corev1.Pod:
		return o
	case cache.DeletedFinalStateUnknown:
		p, _ := o.Obj.(*corev1.Pod)
		return p
	}
	return nil
}

func nodeOf(obj any) *corev1.Node {
	switch o := obj.(type) {
	case *corev1.Node:
		return o
	case cache.DeletedFinalStateUnknown:
		n, _ := o.Obj.(*corev1.Node)
		return n
	}
	return nil
}

// addHandlers wires informer events to the cache and the queue.
func (s *Scheduler) addHandlers(factory informers.SharedInformerFactory, pods cache.SharedIndexInformer) error {
	if _, err := pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.podAdded(podOf(obj)) },
		UpdateFunc: func(old, cur any) { s.podUpdated(podOf(old), podOf(cur)) },
		DeleteFunc: func(obj any) { s.podDeleted(podOf(obj)) },
	}); err != nil {
		return err
	}
	if _, err := factory.Core().V1().Nodes().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			s.cache.AddNode(nodeOf(obj))
			s.queue.OnEvent(framework.ClusterEvent{Resource: framework.NodeResource, Action: framework.Add})
		},
		UpdateFunc: func(old, cur any) {
			o, n := nodeOf(old), nodeOf(cur)
			action := nodeChanges(o, n)
			if action == 0 && equality.Semantic.DeepEqual(o.Status.Images, n.Status.Images) {
				return // heartbeats change nothing the scheduler reads
			}
			s.cache.UpdateNode(n)
			if action != 0 {
				s.queue.OnEvent(framework.ClusterEvent{Resource: framework.NodeResource, Action: action})
			}
		},
		DeleteFunc: func(obj any) {
			if n := nodeOf(obj); n != nil {
				s.cache.RemoveNode(n.Name)
				s.queue.OnEvent(framework.ClusterEvent{Resource: framework.NodeResource, Action: framework.Delete})
			}
		},
	}); err != nil {
		return err
	}
	simple := func(inf cache.SharedIndexInformer, r framework.EventResource) error {
		_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { s.queue.OnEvent(framework.ClusterEvent{Resource: r, Action: framework.Add}) },
			UpdateFunc: func(any, any) { s.queue.OnEvent(framework.ClusterEvent{Resource: r, Action: framework.UpdateOther}) },
			DeleteFunc: func(any) { s.queue.OnEvent(framework.ClusterEvent{Resource: r, Action: framework.Delete}) },
		})
		return err
	}
	for inf, r := range map[cache.SharedIndexInformer]framework.EventResource{
		factory.Core().V1().PersistentVolumeClaims().Informer(): framework.PVCResource,
		factory.Core().V1().PersistentVolumes().Informer():      framework.PVResource,
		factory.Storage().V1().StorageClasses().Informer():      framework.StorageClassResource,
		factory.Core().V1().Namespaces().Informer():             framework.NamespaceResource,
	} {
		if err := simple(inf, r); err != nil {
			return err
		}
	}
	// Listers only: their changes do not make pods schedulable.
	factory.Policy().V1().PodDisruptionBudgets().Informer()
	factory.Core().V1().Services().Informer()
	factory.Core().V1().ReplicationControllers().Informer()
	factory.Apps().V1().ReplicaSets().Informer()
	factory.Apps().V1().StatefulSets().Informer()
	return nil
}

func (s *Scheduler) podAdded(pod *corev1.Pod) {
	if pod == nil {
		return
	}
	if pod.Spec.NodeName != "" {
		s.cache.AddPod(pod)
		s.queue.OnEvent(framework.ClusterEvent{Resource: framework.PodResource, Action: framework.Add})
		return
	}
	if profile, ok := s.responsible(pod); ok && pod.DeletionTimestamp == nil {
		s.queue.Add(profile, pod)
	}
}

func (s *Scheduler) podUpdated(old, pod *corev1.Pod) {
	if old == nil || pod == nil {
		return
	}
	switch {
	case old.Spec.NodeName == "" && pod.Spec.NodeName != "":
		s.queue.Delete(pod)
		s.cache.AddPod(pod)
		s.queue.OnEvent(framework.ClusterEvent{Resource: framework.PodResource, Action: framework.Add})
	case pod.Spec.NodeName != "":
		s.cache.UpdatePod(pod)
		if action := podChanges(old, pod); action != 0 {
			s.queue.OnEvent(framework.ClusterEvent{Resource: framework.PodResource, Action: action})
		}
	default:
		profile, ok := s.responsible(pod)
		if !ok {
			return
		}
		if pod.DeletionTimestamp != nil {
			s.queue.Delete(pod)
			return
		}
		s.queue.Update(profile, old, pod)
	}
}

func (s *Scheduler) podDeleted(pod *corev1.Pod) {
	if pod == nil {
		return
	}
	if pod.Spec.NodeName != "" {
		s.cache.RemovePod(pod)
		s.queue.OnEvent(framework.ClusterEvent{Resource: framework.PodResource, Action: framework.Delete})
		return
	}
	s.queue.Delete(pod)
	if wp := s.waiting.get(string(pod.UID)); wp != nil {
		wp.Reject("", "pod deleted while waiting")
	}
}

// nodeChanges classifies a node update for the queue.
func nodeChanges(old, cur *corev1.Node) framework.ActionType {
	var a framework.ActionType
	if !equality.Semantic.DeepEqual(old.Status.Allocatable, cur.Status.Allocatable) {
		a |= framework.UpdateNodeAllocatable
	}
	if !equality.Semantic.DeepEqual(old.Labels, cur.Labels) {
		a |= framework.UpdateNodeLabel
	}
	if !equality.Semantic.DeepEqual(old.Spec.Taints, cur.Spec.Taints) || old.Spec.Unschedulable != cur.Spec.Unschedulable {
		a |= framework.UpdateNodeTaint
	}
	if conditionsChanged(old.Status.Conditions, cur.Status.Conditions) {
		a |= framework.UpdateNodeCondition
	}
	if !equality.Semantic.DeepEqual(old.Annotations, cur.Annotations) {
		a |= framework.UpdateNodeAnnotation
	}
	return a
}

// conditionsChanged ignores heartbeat times.
func conditionsChanged(a, b []corev1.NodeCondition) bool {
	if len(a) != len(b) {
		return true
	}
	status := map[corev1.NodeConditionType]corev1.ConditionStatus{}
	for _, c := range a {
		status[c.Type] = c.Status
	}
	for _, c := range b {
		if status[c.Type] != c.Status {
			return true
		}
	}
	return false
}

// podChanges classifies an assigned pod's update for the queue.
func podChanges(old, cur *corev1.Pod) framework.ActionType {
	var a framework.ActionType
	if !equality.Semantic.DeepEqual(old.Labels, cur.Labels) {
		a |= framework.UpdatePodLabel
	}
	if cur.DeletionTimestamp != nil && old.DeletionTimestamp == nil {
		a |= framework.UpdateOther
	}
	return a
}
