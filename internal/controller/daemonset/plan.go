package daemonset

import (
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"
)

// defaultTolerations are added to every DaemonSet pod, as upstream: daemons
// keep running through node trouble.
func defaultTolerations(hostNetwork bool) []corev1.Toleration {
	exists := func(key string, effect corev1.TaintEffect) corev1.Toleration {
		return corev1.Toleration{Key: key, Operator: corev1.TolerationOpExists, Effect: effect}
	}
	out := []corev1.Toleration{
		exists(corev1.TaintNodeNotReady, corev1.TaintEffectNoExecute),
		exists(corev1.TaintNodeUnreachable, corev1.TaintEffectNoExecute),
		exists(corev1.TaintNodeDiskPressure, corev1.TaintEffectNoSchedule),
		exists(corev1.TaintNodeMemoryPressure, corev1.TaintEffectNoSchedule),
		exists(corev1.TaintNodePIDPressure, corev1.TaintEffectNoSchedule),
		exists(corev1.TaintNodeUnschedulable, corev1.TaintEffectNoSchedule),
	}
	if hostNetwork {
		out = append(out, exists(corev1.TaintNodeNetworkUnavailable, corev1.TaintEffectNoSchedule))
	}
	return out
}

// withTolerations adds the default tolerations the pod does not have yet.
func withTolerations(spec *corev1.PodSpec) {
	for _, d := range defaultTolerations(spec.HostNetwork) {
		has := false
		for _, t := range spec.Tolerations {
			if t.Key == d.Key && t.Effect == d.Effect {
				has = true
			}
		}
		if !has {
			spec.Tolerations = append(spec.Tolerations, d)
		}
	}
}

// placement says whether a daemon pod should be on node, and whether one
// already there may keep running (a new NoSchedule taint does not evict).
func placement(ds *appsv1.DaemonSet, node *corev1.Node) (shouldRun, mayContinue bool) {
	pod := &corev1.Pod{Spec: *ds.Spec.Template.Spec.DeepCopy()}
	withTolerations(&pod.Spec)
	if ok, _ := nodeaffinity.GetRequiredNodeAffinity(pod).Match(node); !ok {
		return false, false
	}
	log := klog.Background()
	noExec := func(t *corev1.Taint) bool { return t.Effect == corev1.TaintEffectNoExecute }
	if _, untolerated := corev1helpers.FindMatchingUntoleratedTaint(log, node.Spec.Taints, pod.Spec.Tolerations, noExec, true); untolerated {
		return false, false
	}
	noSched := func(t *corev1.Taint) bool { return t.Effect == corev1.TaintEffectNoSchedule }
	_, untolerated := corev1helpers.FindMatchingUntoleratedTaint(log, node.Spec.Taints, pod.Spec.Tolerations, noSched, true)
	return !untolerated, true
}

// newPod builds the daemon pod for node at revision rev, pinned with the
// node-name affinity upstream uses (the scheduler binds it).
func newPod(ds *appsv1.DaemonSet, node, rev string) *corev1.Pod {
	t := ds.Spec.Template.DeepCopy()
	labels := map[string]string{appsv1.ControllerRevisionHashLabelKey: rev}
	for k, v := range t.Labels {
		labels[k] = v
	}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: ds.Name + "-", Namespace: ds.Namespace, Labels: labels, Annotations: t.Annotations,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(ds, appsv1.SchemeGroupVersion.WithKind("DaemonSet"))},
		},
		Spec: t.Spec,
	}
	withTolerations(&p.Spec)
	pin := corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{node}}}}
	if p.Spec.Affinity == nil {
		p.Spec.Affinity = &corev1.Affinity{}
	}
	if p.Spec.Affinity.NodeAffinity == nil {
		p.Spec.Affinity.NodeAffinity = &corev1.NodeAffinity{}
	}
	req := p.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution
	if req == nil || len(req.NodeSelectorTerms) == 0 {
		p.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution = &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{pin}}
	} else {
		// Each term is ANDed with the pin, as upstream replaces matchFields.
		for i := range req.NodeSelectorTerms {
			req.NodeSelectorTerms[i].MatchFields = pin.MatchFields
		}
	}
	return p
}

// nodeOf is the node a daemon pod is for: where it runs, or its pin.
func nodeOf(p *corev1.Pod) string {
	if p.Spec.NodeName != "" {
		return p.Spec.NodeName
	}
	if a := p.Spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		for _, t := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
			for _, f := range t.MatchFields {
				if f.Key == "metadata.name" && len(f.Values) == 1 {
					return f.Values[0]
				}
			}
		}
	}
	return ""
}

// maxUnavailable resolves the rolling update's budget against the number
// of nodes that should run the daemon.
func maxUnavailable(ds *appsv1.DaemonSet, desired int) int {
	ru := ds.Spec.UpdateStrategy.RollingUpdate
	v := intstr.FromInt32(1)
	if ru != nil && ru.MaxUnavailable != nil {
		v = *ru.MaxUnavailable
	}
	n, _ := intstr.GetScaledValueFromIntOrPercent(&v, desired, true)
	if n < 1 {
		n = 1
	}
	return n
}

// maxSurge resolves the rolling update's surge (0: no surge, the default)
// against the number of nodes that should run the daemon.
func maxSurge(ds *appsv1.DaemonSet, desired int) int {
	if ds.Spec.UpdateStrategy.Type == appsv1.OnDeleteDaemonSetStrategyType {
		return 0
	}
	ru := ds.Spec.UpdateStrategy.RollingUpdate
	if ru == nil || ru.MaxSurge == nil {
		return 0
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(ru.MaxSurge, desired, true)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// nodePods are the daemon's pods on one node that should run it.
type nodePods struct {
	node string
	pods []*corev1.Pod // oldest first
}

// surgeUpdate is the rolling update with maxSurge: on a node whose pod is
// outdated a new pod starts beside the old one, and the old one goes once
// the new one is ready. Nodes whose old pod is not ready anyway get their new
// pod at once; at most surge nodes run two pods for a ready old one. Extra
// new pods on a node are removed (the oldest stays).
func surgeUpdate(nodes []nodePods, hash string, surge int) (creates []string, deletes []*corev1.Pod) {
	var candidates []string
	for _, np := range nodes {
		var fresh, old []*corev1.Pod
		for _, p := range np.pods {
			if p.Labels[appsv1.ControllerRevisionHashLabelKey] == hash {
				fresh = append(fresh, p)
			} else {
				old = append(old, p)
			}
		}
		switch {
		case len(fresh) > 0:
			deletes = append(deletes, fresh[1:]...)
			if ready(fresh[0]) {
				deletes = append(deletes, old...)
			} else if len(old) > 0 && ready(old[0]) {
				surge-- // a surge in progress
			}
		case len(old) > 0 && !ready(old[0]):
			creates = append(creates, np.node)
		case len(old) > 0:
			candidates = append(candidates, np.node)
		}
	}
	for _, n := range candidates {
		if surge <= 0 {
			break
		}
		creates = append(creates, n)
		surge--
	}
	return creates, deletes
}

// plan is what one sync decides for a DaemonSet, as data: the nodes that
// get a pod, the pods to delete, and the status to report.
type plan struct {
	creates []string
	deletes []*corev1.Pod
	status  appsv1.DaemonSetStatus
}

// decide plans a sync from the DaemonSet, the cluster's nodes, the set's
// live pods by node name, and the hash of the current template revision:
// a pod on every node that should run one, none elsewhere, failed pods
// replaced, and a rolling update within maxUnavailable (or maxSurge).
func decide(ds *appsv1.DaemonSet, nodes []*corev1.Node, byNode map[string][]*corev1.Pod, hash string) plan {
	var creates []string
	var deletes []*corev1.Pod
	st := appsv1.DaemonSetStatus{ObservedGeneration: ds.Generation, CollisionCount: ds.Status.CollisionCount, Conditions: ds.Status.Conditions}
	var old []*corev1.Pod
	var surging []nodePods
	unavailable := 0
	known := map[string]bool{}
	desired := 0
	for _, n := range nodes {
		if shouldRun, _ := placement(ds, n); shouldRun {
			desired++
		}
	}
	surge := maxSurge(ds, desired)
	for _, n := range nodes {
		known[n.Name] = true
		shouldRun, mayContinue := placement(ds, n)
		pods := byNode[n.Name]
		sort.Slice(pods, func(i, j int) bool { return pods[i].CreationTimestamp.Before(&pods[j].CreationTimestamp) })
		if shouldRun {
			st.DesiredNumberScheduled++
		}
		switch {
		case len(pods) == 0 && shouldRun:
			creates = append(creates, n.Name)
			unavailable++
			continue
		case len(pods) > 0 && !mayContinue:
			deletes = append(deletes, pods...)
			st.NumberMisscheduled++
			continue
		case len(pods) == 0:
			continue
		}
		if pods[0].Status.Phase == corev1.PodFailed {
			deletes = append(deletes, pods[0]) // recreated on the next sync
		}
		if surge > 0 && shouldRun {
			// Two pods on a node are a surge in progress: surgeUpdate
			// decides. Status counts the node once, ready if either is.
			surging = append(surging, nodePods{node: n.Name, pods: pods})
			st.CurrentNumberScheduled++
			anyReady, updated := false, false
			for _, p := range pods {
				anyReady = anyReady || ready(p)
				updated = updated || p.Labels[appsv1.ControllerRevisionHashLabelKey] == hash
			}
			if anyReady {
				st.NumberReady++
				st.NumberAvailable++
			} else {
				unavailable++
			}
			if updated {
				st.UpdatedNumberScheduled++
			}
			continue
		}
		deletes = append(deletes, pods[1:]...)
		p := pods[0]
		if !shouldRun {
			st.NumberMisscheduled++
		} else {
			st.CurrentNumberScheduled++
		}
		if ready(p) {
			st.NumberReady++
			st.NumberAvailable++
		} else if shouldRun {
			unavailable++
		}
		if p.Labels[appsv1.ControllerRevisionHashLabelKey] == hash {
			st.UpdatedNumberScheduled++
		} else {
			old = append(old, p)
		}
	}
	for n, pods := range byNode {
		if !known[n] {
			deletes = append(deletes, pods...) // their node is gone
		}
	}
	st.NumberUnavailable = max(st.DesiredNumberScheduled-st.NumberAvailable, 0)
	// Rolling update: replace old pods, not-ready ones first, within
	// maxUnavailable.
	if surge > 0 && len(creates) == 0 {
		c2, d2 := surgeUpdate(surging, hash, surge)
		creates, deletes = append(creates, c2...), append(deletes, d2...)
	} else if ds.Spec.UpdateStrategy.Type != appsv1.OnDeleteDaemonSetStrategyType && len(creates) == 0 {
		sort.SliceStable(old, func(i, j int) bool { return !ready(old[i]) && ready(old[j]) })
		budget := maxUnavailable(ds, int(st.DesiredNumberScheduled)) - unavailable
		for _, p := range old {
			if !ready(p) {
				deletes = append(deletes, p)
				continue
			}
			if budget <= 0 {
				break
			}
			deletes = append(deletes, p)
			budget--
		}
	}
	return plan{creates: creates, deletes: deletes, status: st}
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue && p.DeletionTimestamp == nil
		}
	}
	return false
}
