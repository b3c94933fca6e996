package replicaset

import (
	"fmt"
	"sort"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
)

// burstReplicas caps how many pods one sync creates or deletes, as upstream.
const burstReplicas = 500

// isActive: a pod that counts toward replicas (not finished, not going).
func isActive(p *corev1.Pod) bool {
	return p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed && p.DeletionTimestamp == nil
}

// isReady reports the pod's Ready condition.
func isReady(p *corev1.Pod) bool {
	c := readyCondition(p)
	return c != nil && c.Status == corev1.ConditionTrue
}

func readyCondition(p *corev1.Pod) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodReady {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// isAvailable: ready for at least minReadySeconds at now.
func isAvailable(p *corev1.Pod, minReadySeconds int32, now time.Time) bool {
	c := readyCondition(p)
	if c == nil || c.Status != corev1.ConditionTrue {
		return false
	}
	return minReadySeconds == 0 || !c.LastTransitionTime.IsZero() && c.LastTransitionTime.Add(time.Duration(minReadySeconds)*time.Second).Before(now)
}

// newPod builds a pod from the ReplicaSet's template, owned by it (as kind
// gvk: a ReplicationController handled as a ReplicaSet owns its pods as
// itself).
func newPod(rs *appsv1.ReplicaSet, gvk schema.GroupVersionKind) *corev1.Pod {
	t := rs.Spec.Template
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: rs.Name + "-",
			Namespace:    rs.Namespace,
			Labels:       copyMap(t.Labels),
			Annotations:  copyMap(t.Annotations),
			Finalizers:   append([]string(nil), t.Finalizers...),
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: gvk.GroupVersion().String(), Kind: gvk.Kind, Name: rs.Name, UID: rs.UID,
				Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
			}},
		},
		Spec: *t.Spec.DeepCopy(),
	}
	return p
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// podsToDelete picks n pods to delete, the least useful first, as upstream
// ranks them: unscheduled before scheduled, pending before unknown before
// running, not ready before ready, recently ready before long ready, more
// restarts before fewer, newer before older.
func podsToDelete(pods []*corev1.Pod, n int) []*corev1.Pod {
	ranked := append([]*corev1.Pod(nil), pods...)
	sort.SliceStable(ranked, func(i, j int) bool { return deleteFirst(ranked[i], ranked[j]) })
	return ranked[:min(n, len(ranked))]
}

var phaseRank = map[corev1.PodPhase]int{corev1.PodPending: 0, corev1.PodUnknown: 1, corev1.PodRunning: 2}

func deleteFirst(a, b *corev1.Pod) bool {
	if (a.Spec.NodeName == "") != (b.Spec.NodeName == "") {
		return a.Spec.NodeName == ""
	}
	if phaseRank[a.Status.Phase] != phaseRank[b.Status.Phase] {
		return phaseRank[a.Status.Phase] < phaseRank[b.Status.Phase]
	}
	if isReady(a) != isReady(b) {
		return !isReady(a)
	}
	if isReady(a) {
		ta, tb := readyCondition(a).LastTransitionTime, readyCondition(b).LastTransitionTime
		if !ta.Equal(&tb) {
			return tb.Before(&ta) // ready more recently goes first
		}
	}
	if ra, rb := restarts(a), restarts(b); ra != rb {
		return ra > rb
	}
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return b.CreationTimestamp.Before(&a.CreationTimestamp)
	}
	return a.Name > b.Name
}

func restarts(p *corev1.Pod) int32 {
	var n int32
	for _, c := range p.Status.ContainerStatuses {
		n = max(n, c.RestartCount)
	}
	return n
}

// status computes the ReplicaSet's status from its active pods; a create
// failure (quota, admission) is reported as the ReplicaFailure condition.
func status(rs *appsv1.ReplicaSet, pods []*corev1.Pod, createErr error, now time.Time) appsv1.ReplicaSetStatus {
	st := appsv1.ReplicaSetStatus{Replicas: int32(len(pods)), ObservedGeneration: rs.Generation}
	tmpl := labels.Set(rs.Spec.Template.Labels).AsSelectorPreValidated()
	for _, p := range pods {
		if tmpl.Matches(labels.Set(p.Labels)) {
			st.FullyLabeledReplicas++
		}
		if isReady(p) {
			st.ReadyReplicas++
			if isAvailable(p, rs.Spec.MinReadySeconds, now) {
				st.AvailableReplicas++
			}
		}
	}
	st.Conditions = rs.Status.Conditions
	failure := -1
	for i, c := range st.Conditions {
		if c.Type == appsv1.ReplicaSetReplicaFailure {
			failure = i
		}
	}
	switch {
	case createErr != nil && failure < 0:
		reason := "FailedCreate"
		st.Conditions = append(append([]appsv1.ReplicaSetCondition(nil), st.Conditions...), appsv1.ReplicaSetCondition{
			Type: appsv1.ReplicaSetReplicaFailure, Status: corev1.ConditionTrue, Reason: reason,
			Message: createErr.Error(), LastTransitionTime: metav1.NewTime(now),
		})
	case createErr == nil && failure >= 0:
		st.Conditions = append(append([]appsv1.ReplicaSetCondition(nil), st.Conditions[:failure]...), st.Conditions[failure+1:]...)
	}
	return st
}

// nextAvailableCheck is when a ready pod not yet available becomes so.
func nextAvailableCheck(rs *appsv1.ReplicaSet, pods []*corev1.Pod, now time.Time) (time.Duration, bool) {
	if rs.Spec.MinReadySeconds == 0 {
		return 0, false
	}
	var next time.Duration
	found := false
	for _, p := range pods {
		if !isReady(p) || isAvailable(p, rs.Spec.MinReadySeconds, now) {
			continue
		}
		d := readyCondition(p).LastTransitionTime.Add(time.Duration(rs.Spec.MinReadySeconds)*time.Second).Sub(now) + time.Second
		if !found || d < next {
			next, found = d, true
		}
	}
	return next, found
}

// slowStart calls fn count times in growing batches (1, 2, 4, ...), stopping
// at the first batch with a failure, so a systematic error (quota) costs one
// request rather than hundreds. It returns how many calls succeeded.
func slowStart(count int, fn func() error) (int, error) {
	done := 0
	for batch := 1; done < count; batch *= 2 {
		batch = min(batch, count-done)
		errs := make(chan error, batch)
		for range batch {
			go func() { errs <- fn() }()
		}
		var first error
		for range batch {
			if err := <-errs; err != nil && first == nil {
				first = err
			} else if err == nil {
				done++
			}
		}
		if first != nil {
			return done, fmt.Errorf("create pods: %w", first)
		}
	}
	return done, nil
}

// plan is what one sync decides for a ReplicaSet, as data; the controller
// carries it out (apply) and then writes the status.
type plan struct {
	// create is how many pods to make from the template.
	create int
	// delete are the pods to remove, the first to go first.
	delete []*corev1.Pod
	// wait is set while the controller's own earlier creates and deletes
	// are not all observed: nothing is done, and the key comes back after
	// wait (when the expectations expire).
	wait time.Duration
}

// decide plans a sync from what is observed: the ReplicaSet, its active
// pods, and whether the controller's earlier writes have all been seen
// (pending: how long until they are given up on; 0 when they have).
func decide(rs *appsv1.ReplicaSet, active []*corev1.Pod, pending time.Duration) plan {
	if pending > 0 {
		return plan{wait: pending}
	}
	if rs.DeletionTimestamp != nil {
		return plan{}
	}
	diff := len(active) - int(ptrOr(rs.Spec.Replicas, 1))
	switch {
	case diff < 0:
		return plan{create: min(-diff, burstReplicas)}
	case diff > 0:
		return plan{delete: podsToDelete(active, min(diff, burstReplicas))}
	}
	return plan{}
}

func ptrOr(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}
