package statefulset

import (
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// Labels a StatefulSet's pods carry, as upstream.
const (
	podNameLabel  = appsv1.StatefulSetPodNameLabel
	podIndexLabel = appsv1.PodIndexLabel
	revisionLabel = appsv1.ControllerRevisionHashLabelKey
)

func replicas(s *appsv1.StatefulSet) int32 { return ptr.Deref(s.Spec.Replicas, 1) }

func startOrdinal(s *appsv1.StatefulSet) int32 {
	if s.Spec.Ordinals != nil {
		return s.Spec.Ordinals.Start
	}
	return 0
}

func podName(s *appsv1.StatefulSet, ordinal int32) string {
	return fmt.Sprintf("%s-%d", s.Name, ordinal)
}

// ordinalOf reads a pod's ordinal from its name (-1 if it is not one of
// this set's names).
func ordinalOf(s *appsv1.StatefulSet, p *corev1.Pod) int32 {
	prefix := s.Name + "-"
	if len(p.Name) <= len(prefix) || p.Name[:len(prefix)] != prefix {
		return -1
	}
	n, err := strconv.ParseInt(p.Name[len(prefix):], 10, 32)
	if err != nil || n < 0 {
		return -1
	}
	return int32(n)
}

func claimName(tmpl corev1.PersistentVolumeClaim, s *appsv1.StatefulSet, ordinal int32) string {
	return fmt.Sprintf("%s-%s", tmpl.Name, podName(s, ordinal))
}

// newPod builds the pod for ordinal at revision rev.
func newPod(s *appsv1.StatefulSet, ordinal int32, rev string, tmpl *corev1.PodTemplateSpec) *corev1.Pod {
	if tmpl == nil {
		tmpl = &s.Spec.Template
	}
	t := tmpl.DeepCopy()
	name := podName(s, ordinal)
	labels := map[string]string{}
	for k, v := range t.Labels {
		labels[k] = v
	}
	labels[podNameLabel], labels[podIndexLabel], labels[revisionLabel] = name, strconv.Itoa(int(ordinal)), rev
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: s.Namespace, Labels: labels, Annotations: t.Annotations,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(s, appsv1.SchemeGroupVersion.WithKind("StatefulSet"))},
		},
		Spec: t.Spec,
	}
	p.Spec.Hostname, p.Spec.Subdomain = name, s.Spec.ServiceName
	for _, c := range s.Spec.VolumeClaimTemplates {
		vol := corev1.Volume{Name: c.Name, VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claimName(c, s, ordinal)}}}
		replaced := false
		for i := range p.Spec.Volumes {
			if p.Spec.Volumes[i].Name == c.Name {
				p.Spec.Volumes[i], replaced = vol, true
			}
		}
		if !replaced {
			p.Spec.Volumes = append(p.Spec.Volumes, vol)
		}
	}
	return p
}

// newClaim builds the PVC for template tmpl and ordinal; with
// whenDeleted=Delete it is owned by the set, so it goes with it.
func newClaim(s *appsv1.StatefulSet, tmpl corev1.PersistentVolumeClaim, ordinal int32) *corev1.PersistentVolumeClaim {
	c := tmpl.DeepCopy()
	c.ObjectMeta = metav1.ObjectMeta{Name: claimName(tmpl, s, ordinal), Namespace: s.Namespace, Labels: map[string]string{}, Annotations: tmpl.Annotations}
	for k, v := range tmpl.Labels {
		c.Labels[k] = v
	}
	if s.Spec.Selector != nil {
		for k, v := range s.Spec.Selector.MatchLabels {
			c.Labels[k] = v
		}
	}
	if p := s.Spec.PersistentVolumeClaimRetentionPolicy; p != nil && p.WhenDeleted == appsv1.DeletePersistentVolumeClaimRetentionPolicyType {
		c.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(s, appsv1.SchemeGroupVersion.WithKind("StatefulSet"))}
	}
	c.Status = corev1.PersistentVolumeClaimStatus{}
	return c
}

func isReady(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func isFailed(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded
}

// step is one action toward the wanted set of pods.
type step struct {
	create *corev1.Pod // pod to create
	delete *corev1.Pod // pod to delete
}

// plan decides the next actions: create missing pods (in order, one at a
// time unless Parallel), replace failed ones, delete pods above the wanted
// range (highest first), and roll out the update revision from the highest
// ordinal down to the partition, replacing at most maxUnavailable pods at
// a time (one by default, then only while all are ready).
//
// A pod below the partition is recreated from current, the template of
// the current revision (nil: the set's template).
func plan(s *appsv1.StatefulSet, pods map[int32]*corev1.Pod, updateRev, currentRev string, current *corev1.PodTemplateSpec) []step {
	parallel := s.Spec.PodManagementPolicy == appsv1.ParallelPodManagement
	start, n := startOrdinal(s), replicas(s)
	var steps []step
	for o, p := range pods {
		if isFailed(p) && p.DeletionTimestamp == nil && o >= start && o < start+n {
			steps = append(steps, step{delete: p})
		}
	}
	if len(steps) > 0 {
		return steps
	}
	// Create missing pods in ordinal order.
	for o := start; o < start+n; o++ {
		p := pods[o]
		if p == nil {
			rev, tmpl := currentRev, current
			if o >= start+partition(s) || currentRev == "" || currentRev == updateRev {
				rev, tmpl = updateRev, nil
			}
			steps = append(steps, step{create: newPod(s, o, rev, tmpl)})
			if !parallel {
				return steps
			}
			continue
		}
		if !parallel && !isReady(p) {
			return steps // OrderedReady: wait for this one
		}
	}
	if len(steps) > 0 {
		return steps
	}
	// Scale down: highest ordinal first.
	var extra []int32
	for o := range pods {
		if o < start || o >= start+n {
			extra = append(extra, o)
		}
	}
	if len(extra) > 0 {
		sortDesc(extra)
		first := firstUnhealthy(pods)
		for _, o := range extra {
			if pods[o].DeletionTimestamp != nil {
				if !parallel {
					return nil // wait for it to go
				}
				continue
			}
			if !parallel && !isReady(pods[o]) && o != first {
				// OrderedReady halts while another pod is unhealthy: only
				// the lowest unhealthy one may go (upstream's rule).
				return nil
			}
			steps = append(steps, step{delete: pods[o]})
			if !parallel {
				return steps
			}
		}
		return steps
	}
	// Rolling update.
	if s.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
		return nil
	}
	// At most maxUnavailable pods of the set may be down at once: replace
	// outdated ready pods, highest ordinal first, while the budget lasts.
	unavailable := int32(0)
	for o := start; o < start+n; o++ {
		if p := pods[o]; p == nil || !isReady(p) {
			unavailable++
		}
	}
	budget := maxUnavailable(s) - unavailable
	for o := start + n - 1; o >= start+partition(s) && budget > 0; o-- {
		if p := pods[o]; p.Labels[revisionLabel] != updateRev && isReady(p) {
			steps = append(steps, step{delete: p})
			budget--
		}
	}
	return steps
}

// firstUnhealthy is the lowest ordinal whose pod is not ready or is
// terminating (-1 if every pod is healthy).
func firstUnhealthy(pods map[int32]*corev1.Pod) int32 {
	first := int32(-1)
	for o, p := range pods {
		if (!isReady(p) || p.DeletionTimestamp != nil) && (first < 0 || o < first) {
			first = o
		}
	}
	return first
}

// maxUnavailable is the rolling update's spec.updateStrategy.rollingUpdate.
// maxUnavailable: a number or a percentage of replicas (rounded down), at
// least 1, default 1.
func maxUnavailable(s *appsv1.StatefulSet) int32 {
	ru := s.Spec.UpdateStrategy.RollingUpdate
	if ru == nil || ru.MaxUnavailable == nil {
		return 1
	}
	v, err := intstr.GetScaledValueFromIntOrPercent(ru.MaxUnavailable, int(replicas(s)), false)
	if err != nil || v < 1 {
		return 1
	}
	return int32(v)
}

func partition(s *appsv1.StatefulSet) int32 {
	if ru := s.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.Partition != nil {
		return *ru.Partition
	}
	return 0
}

func sortDesc(a []int32) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] > a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}
