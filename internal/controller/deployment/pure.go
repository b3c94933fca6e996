package deployment

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/dump"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/rand"
)

// Annotations and labels shared with kubectl (rollout history, undo, status).
const (
	revisionAnnotation        = "deployment.kubernetes.io/revision"
	revisionHistoryAnnotation = "deployment.kubernetes.io/revision-history"
	desiredReplicasAnnotation = "deployment.kubernetes.io/desired-replicas"
	maxReplicasAnnotation     = "deployment.kubernetes.io/max-replicas"
	lastAppliedAnnotation     = "kubectl.kubernetes.io/last-applied-configuration"
)

// templateHash is the pod-template-hash of a template, computed as upstream
// does so names and labels match what users see elsewhere.
func templateHash(t *corev1.PodTemplateSpec, collisionCount *int32) string {
	h := fnv.New32a()
	fmt.Fprintf(h, "%v", dump.ForHash(*t))
	if collisionCount != nil {
		b := make([]byte, 8)
		binary.LittleEndian.PutUint32(b, uint32(*collisionCount))
		h.Write(b)
	}
	return rand.SafeEncodeString(fmt.Sprint(h.Sum32()))
}

// equalIgnoreHash compares two templates without the pod-template-hash label.
func equalIgnoreHash(a, b *corev1.PodTemplateSpec) bool {
	a, b = a.DeepCopy(), b.DeepCopy()
	delete(a.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	delete(b.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	if len(a.Labels) == 0 {
		a.Labels = nil
	}
	if len(b.Labels) == 0 {
		b.Labels = nil
	}
	return apiequality.Semantic.DeepEqual(a, b)
}

func replicas(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}

// surgeAndUnavailable resolves maxSurge (rounded up) and maxUnavailable
// (rounded down) against the replica count; both zero means one unavailable.
func surgeAndUnavailable(d *appsv1.Deployment) (surge, unavailable int32) {
	if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || d.Spec.Strategy.RollingUpdate == nil {
		return 0, 0
	}
	n := int(replicas(d.Spec.Replicas))
	ru := d.Spec.Strategy.RollingUpdate
	def := intstr.FromString("25%")
	ms, mu := ru.MaxSurge, ru.MaxUnavailable
	if ms == nil {
		ms = &def
	}
	if mu == nil {
		mu = &def
	}
	s, _ := intstr.GetScaledValueFromIntOrPercent(ms, n, true)
	u, _ := intstr.GetScaledValueFromIntOrPercent(mu, n, false)
	if s == 0 && u == 0 {
		u = 1
	}
	if u > n {
		u = n
	}
	return int32(s), int32(u)
}

func specReplicas(sets []*appsv1.ReplicaSet) int32 {
	var n int32
	for _, rs := range sets {
		n += replicas(rs.Spec.Replicas)
	}
	return n
}

func availableReplicas(sets []*appsv1.ReplicaSet) int32 {
	var n int32
	for _, rs := range sets {
		n += rs.Status.AvailableReplicas
	}
	return n
}

// newRSReplicas is how far the new ReplicaSet may scale now.
func newRSReplicas(d *appsv1.Deployment, all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) int32 {
	want := replicas(d.Spec.Replicas)
	if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		// Recreate: nothing new while an old ReplicaSet wants or still
		// counts a pod.
		for _, rs := range all {
			if rs.Name != newRS.Name && (replicas(rs.Spec.Replicas) > 0 || rs.Status.Replicas > 0) {
				return replicas(newRS.Spec.Replicas)
			}
		}
		return want
	}
	cur := replicas(newRS.Spec.Replicas)
	surge, _ := surgeAndUnavailable(d)
	total := specReplicas(all)
	if total >= want+surge {
		return cur
	}
	up := min(want+surge-total, max(want-cur, 0))
	return cur + up
}

// oldScaleDowns says how far each old ReplicaSet may scale down now without
// going below the minimum available: unavailable replicas first, then
// available ones, oldest first. It returns new sizes by name.
func oldScaleDowns(d *appsv1.Deployment, all, old []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) map[string]int32 {
	out := map[string]int32{}
	if specReplicas(old) == 0 {
		return out
	}
	_, unavailable := surgeAndUnavailable(d)
	minAvailable := replicas(d.Spec.Replicas) - unavailable
	newUnavailable := int32(0)
	if newRS != nil {
		newUnavailable = max(replicas(newRS.Spec.Replicas)-newRS.Status.AvailableReplicas, 0)
	}
	budget := specReplicas(all) - minAvailable - newUnavailable
	if budget <= 0 {
		return out
	}
	sorted := byAge(old)
	size := map[string]int32{}
	for _, rs := range sorted {
		size[rs.Name] = replicas(rs.Spec.Replicas)
	}
	// Unhealthy replicas first: they cost no availability.
	for _, rs := range sorted {
		if budget == 0 {
			break
		}
		unhealthy := max(size[rs.Name]-rs.Status.AvailableReplicas, 0)
		down := min(budget, unhealthy)
		if down > 0 {
			size[rs.Name] -= down
			budget -= down
			out[rs.Name] = size[rs.Name]
		}
	}
	// Then available ones, as far as availability allows.
	available := availableReplicas(all)
	room := available - minAvailable
	for _, rs := range sorted {
		if room <= 0 {
			break
		}
		down := min(size[rs.Name], room, rs.Status.AvailableReplicas)
		if down > 0 {
			size[rs.Name] -= down
			room -= down
			out[rs.Name] = size[rs.Name]
		}
	}
	return out
}

// byAge sorts ReplicaSets oldest first (name breaks ties).
func byAge(sets []*appsv1.ReplicaSet) []*appsv1.ReplicaSet {
	out := append([]*appsv1.ReplicaSet(nil), sets...)
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].CreationTimestamp.Equal(&out[j].CreationTimestamp) {
			return out[i].CreationTimestamp.Before(&out[j].CreationTimestamp)
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// revision reads a ReplicaSet's revision annotation (0 if none).
func revision(rs *appsv1.ReplicaSet) int64 {
	v, _ := strconv.ParseInt(rs.Annotations[revisionAnnotation], 10, 64)
	return v
}

func maxRevision(sets []*appsv1.ReplicaSet) int64 {
	var m int64
	for _, rs := range sets {
		m = max(m, revision(rs))
	}
	return m
}

// proportionalSizes spreads a replica change over the active ReplicaSets in
// proportion to their sizes, the remainder going to the newest (scale up) or
// the oldest (scale down) first, so a mid-rollout scale keeps the ratio.
func proportionalSizes(active []*appsv1.ReplicaSet, target int32) map[string]int32 {
	out := map[string]int32{}
	cur := specReplicas(active)
	delta := target - cur
	if delta == 0 || cur == 0 {
		return out
	}
	sorted := byAge(active)
	var given int32
	for _, rs := range sorted {
		share := int32(int64(replicas(rs.Spec.Replicas)) * int64(delta) / int64(cur))
		out[rs.Name] = replicas(rs.Spec.Replicas) + share
		given += share
	}
	rest := delta - given
	order := sorted
	if delta > 0 {
		order = nil
		for i := len(sorted) - 1; i >= 0; i-- {
			order = append(order, sorted[i])
		}
	}
	for rest != 0 {
		moved := false
		for _, rs := range order {
			if rest == 0 {
				break
			}
			step := int32(1)
			if rest < 0 {
				step = -1
				if out[rs.Name] == 0 {
					continue
				}
			}
			out[rs.Name] += step
			rest -= step
			moved = true
		}
		if !moved {
			break
		}
	}
	return out
}

// condition finds a Deployment condition.
func condition(st *appsv1.DeploymentStatus, t appsv1.DeploymentConditionType) *appsv1.DeploymentCondition {
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			return &st.Conditions[i]
		}
	}
	return nil
}

// setCondition sets c in st, keeping lastTransitionTime when the status does
// not change and lastUpdateTime when nothing changes at all.
func setCondition(st *appsv1.DeploymentStatus, c appsv1.DeploymentCondition) {
	cur := condition(st, c.Type)
	if cur == nil {
		st.Conditions = append(st.Conditions, c)
		return
	}
	if cur.Status == c.Status {
		c.LastTransitionTime = cur.LastTransitionTime
		if cur.Reason == c.Reason && cur.Message == c.Message {
			c.LastUpdateTime = cur.LastUpdateTime
		}
	}
	*cur = c
}

func newCondition(t appsv1.DeploymentConditionType, s corev1.ConditionStatus, reason, msg string, now time.Time) appsv1.DeploymentCondition {
	ts := metav1.NewTime(now)
	return appsv1.DeploymentCondition{Type: t, Status: s, Reason: reason, Message: msg, LastUpdateTime: ts, LastTransitionTime: ts}
}

// complete: every replica updated and available, nothing old left.
func complete(d *appsv1.Deployment, st *appsv1.DeploymentStatus) bool {
	n := replicas(d.Spec.Replicas)
	return st.UpdatedReplicas == n && st.Replicas == n && st.AvailableReplicas == n && st.ObservedGeneration >= d.Generation
}
