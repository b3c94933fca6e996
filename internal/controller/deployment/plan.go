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
	"k8s.io/utils/ptr"
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

// plan is what one sync does to a Deployment's ReplicaSets, as data.
type plan struct {
	// resize sets ReplicaSets to a size (and the Deployment's desired and
	// maximum replicas as their annotations), in order.
	resize []resize
	// prune are the oldest empty ReplicaSets beyond revisionHistoryLimit.
	prune []*appsv1.ReplicaSet
}

type resize struct {
	rs   *appsv1.ReplicaSet
	size int32
}

// scalePlan resizes for a replica change (or a paused Deployment) without
// rolling anything out: one active ReplicaSet takes the new size, several
// share it in proportion, maxSurge included.
func scalePlan(d *appsv1.Deployment, newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet) plan {
	var active []*appsv1.ReplicaSet
	for _, rs := range append(old, newRS) {
		if rs != nil && replicas(rs.Spec.Replicas) > 0 {
			active = append(active, rs)
		}
	}
	want := replicas(d.Spec.Replicas)
	var p plan
	switch len(active) {
	case 0:
		if newRS != nil {
			p.add(d, newRS, want)
		}
	case 1:
		p.add(d, active[0], want)
	default:
		surge, _ := surgeAndUnavailable(d)
		sizes := proportionalSizes(active, want+surge)
		for _, rs := range active {
			p.add(d, rs, sizes[rs.Name])
		}
	}
	return p
}

// rolloutPlan is one step of the Deployment's strategy. RollingUpdate:
// grow the new ReplicaSet within maxSurge, else shrink old ones within
// maxUnavailable. Recreate: scale every old ReplicaSet to zero, and only
// once none of their pods runs (oldRunning false) scale the new one up.
// A finished rollout prunes old ReplicaSets beyond the history limit.
func rolloutPlan(d *appsv1.Deployment, all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet, oldRunning bool) plan {
	var p plan
	if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		for _, rs := range old {
			if replicas(rs.Spec.Replicas) > 0 {
				p.add(d, rs, 0)
			}
		}
		if len(p.resize) > 0 || oldRunning {
			return p
		}
		p.add(d, newRS, replicas(d.Spec.Replicas))
		if st := status(d, append(old, newRS), newRS); complete(d, &st) {
			p.prune = prunable(d, old)
		}
		return p
	}
	if n := newRSReplicas(d, all, newRS); n != replicas(newRS.Spec.Replicas) {
		p.add(d, newRS, n)
		return p
	}
	downs := oldScaleDowns(d, all, old, newRS)
	for _, rs := range old {
		if size, ok := downs[rs.Name]; ok {
			p.add(d, rs, size)
		}
	}
	if st := status(d, all, newRS); complete(d, &st) {
		p.prune = prunable(d, old)
	}
	return p
}

// add plans a resize unless the ReplicaSet already has that size and the
// Deployment's current annotations.
func (p *plan) add(d *appsv1.Deployment, rs *appsv1.ReplicaSet, size int32) {
	surge, _ := surgeAndUnavailable(d)
	want := replicas(d.Spec.Replicas)
	if replicas(rs.Spec.Replicas) == size && rs.Annotations[desiredReplicasAnnotation] == strconv.Itoa(int(want)) && rs.Annotations[maxReplicasAnnotation] == strconv.Itoa(int(want+surge)) {
		return
	}
	p.resize = append(p.resize, resize{rs: rs, size: size})
}

// prunable are the oldest empty old ReplicaSets beyond revisionHistoryLimit.
func prunable(d *appsv1.Deployment, old []*appsv1.ReplicaSet) []*appsv1.ReplicaSet {
	limit := ptr.Deref(d.Spec.RevisionHistoryLimit, 10)
	var empty []*appsv1.ReplicaSet
	for _, rs := range byAge(old) {
		if replicas(rs.Spec.Replicas) == 0 && rs.Status.Replicas == 0 && rs.DeletionTimestamp == nil {
			empty = append(empty, rs)
		}
	}
	if n := len(empty) - int(limit); n > 0 {
		return empty[:n]
	}
	return nil
}

// scalingEvent: the Deployment's replicas differ from what its active
// ReplicaSets were sized for.
func scalingEvent(d *appsv1.Deployment, all []*appsv1.ReplicaSet) bool {
	want := strconv.Itoa(int(replicas(d.Spec.Replicas)))
	for _, rs := range all {
		if replicas(rs.Spec.Replicas) == 0 {
			continue
		}
		if v, ok := rs.Annotations[desiredReplicasAnnotation]; ok && v != want {
			return true
		}
	}
	return false
}

// status computes the Deployment's replica counts from its ReplicaSets.
func status(d *appsv1.Deployment, all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) appsv1.DeploymentStatus {
	st := *d.Status.DeepCopy()
	st.ObservedGeneration = d.Generation
	st.Replicas, st.ReadyReplicas, st.AvailableReplicas, st.UpdatedReplicas = 0, 0, 0, 0
	for _, rs := range all {
		st.Replicas += rs.Status.Replicas
		st.ReadyReplicas += rs.Status.ReadyReplicas
		st.AvailableReplicas += rs.Status.AvailableReplicas
	}
	if newRS != nil {
		st.UpdatedReplicas = newRS.Status.Replicas
	}
	st.UnavailableReplicas = max(specReplicas(all)-st.AvailableReplicas, 0)
	return st
}

// progress maintains the Progressing condition and returns when to look
// again for the progress deadline (0: no need).
func progress(d *appsv1.Deployment, st *appsv1.DeploymentStatus, newRS *appsv1.ReplicaSet, created bool, now time.Time) time.Duration {
	cur := condition(&d.Status, appsv1.DeploymentProgressing)
	name := ""
	if newRS != nil {
		name = newRS.Name
	}
	switch {
	case d.Spec.Paused:
		setCondition(st, newCondition(appsv1.DeploymentProgressing, corev1.ConditionUnknown, "DeploymentPaused", "Deployment is paused", now))
		return 0
	case cur != nil && cur.Reason == "DeploymentPaused":
		setCondition(st, newCondition(appsv1.DeploymentProgressing, corev1.ConditionUnknown, "DeploymentResumed", "Deployment is resumed", now))
		return 0
	case complete(d, st):
		setCondition(st, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, "NewReplicaSetAvailable", fmt.Sprintf("ReplicaSet %q has successfully progressed.", name), now))
		return 0
	case created:
		setCondition(st, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, "NewReplicaSetCreated", fmt.Sprintf("Created new replica set %q", name), now))
	case progressed(&d.Status, st):
		setCondition(st, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, "ReplicaSetUpdated", fmt.Sprintf("ReplicaSet %q is progressing.", name), now))
	case cur == nil:
		setCondition(st, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, "FoundNewReplicaSet", fmt.Sprintf("Found new replica set %q", name), now))
	}
	p := condition(st, appsv1.DeploymentProgressing)
	if p == nil || p.Reason == "ProgressDeadlineExceeded" {
		return 0
	}
	deadline := p.LastUpdateTime.Add(time.Duration(*d.Spec.ProgressDeadlineSeconds) * time.Second)
	if !now.Before(deadline) {
		setCondition(st, newCondition(appsv1.DeploymentProgressing, corev1.ConditionFalse, "ProgressDeadlineExceeded", fmt.Sprintf("ReplicaSet %q has timed out progressing.", name), now))
		return 0
	}
	return deadline.Sub(now) + time.Second
}

// progressed: more pods updated, ready or available than before, or fewer
// old ones.
func progressed(before, after *appsv1.DeploymentStatus) bool {
	return after.UpdatedReplicas > before.UpdatedReplicas || after.ReadyReplicas > before.ReadyReplicas ||
		after.AvailableReplicas > before.AvailableReplicas || after.Replicas-after.UpdatedReplicas < before.Replicas-before.UpdatedReplicas
}
