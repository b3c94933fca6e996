package kubelet

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	"github.com/skiff-sh/skiff/internal/kubelet/nodestatus"
	"github.com/skiff-sh/skiff/internal/kubelet/plan"
)

// Eviction signals, upstream's names.
const (
	signalMemoryAvailable  = "memory.available"
	signalNodefsAvailable  = "nodefs.available"
	signalImagefsAvailable = "imagefs.available"
	signalPIDAvailable     = "pid.available"
)

// Threshold is one hard eviction threshold: the signal falls below a
// quantity or a percentage of its capacity.
type Threshold struct {
	Signal   string
	Quantity *resource.Quantity
	Percent  float64
}

// DefaultEvictionHard is upstream's --eviction-hard default (Linux).
const DefaultEvictionHard = "memory.available<100Mi,nodefs.available<10%,imagefs.available<15%"

// ParseEvictionHard reads --eviction-hard: signal<quantity or
// signal<percent%, comma separated. An empty string disables eviction.
func ParseEvictionHard(s string) ([]Threshold, error) {
	var out []Threshold
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		sig, val, ok := strings.Cut(item, "<")
		if !ok {
			return nil, fmt.Errorf("--eviction-hard %q: want signal<value", item)
		}
		switch sig {
		case signalMemoryAvailable, signalNodefsAvailable, signalImagefsAvailable, signalPIDAvailable:
		default:
			return nil, fmt.Errorf("--eviction-hard %q: unknown signal %q (memory.available, nodefs.available, imagefs.available, pid.available)", item, sig)
		}
		t := Threshold{Signal: sig}
		if pct, isPct := strings.CutSuffix(val, "%"); isPct {
			f, err := strconv.ParseFloat(pct, 64)
			if err != nil || f < 0 || f > 100 {
				return nil, fmt.Errorf("--eviction-hard %q: percentage must be between 0 and 100", item)
			}
			t.Percent = f
		} else {
			q, err := resource.ParseQuantity(val)
			if err != nil || q.Sign() < 0 {
				return nil, fmt.Errorf("--eviction-hard %q: %q is not a non-negative quantity", item, val)
			}
			t.Quantity = &q
		}
		out = append(out, t)
	}
	return out, nil
}

// String is the threshold as --eviction-hard spells it.
func (t Threshold) String() string {
	if t.Quantity != nil {
		return t.Signal + "<" + t.Quantity.String()
	}
	return t.Signal + "<" + strconv.FormatFloat(t.Percent, 'f', -1, 64) + "%"
}

// limit is the threshold in the signal's unit for a given capacity.
func (t Threshold) limit(capacity int64) int64 {
	if t.Quantity != nil {
		return t.Quantity.Value()
	}
	return int64(float64(capacity) * t.Percent / 100)
}

// observation is one signal's reading.
type observation struct{ available, capacity int64 }

// breach is a threshold the node is below, with what it saw.
type breach struct {
	threshold Threshold
	obs       observation
}

// breached returns the thresholds the observations fall below, in the
// thresholds' order. Signals without an observation never breach.
func breached(thresholds []Threshold, obs map[string]observation) []breach {
	var out []breach
	for _, t := range thresholds {
		o, ok := obs[t.Signal]
		if !ok || o.capacity <= 0 {
			continue
		}
		if o.available < t.limit(o.capacity) {
			out = append(out, breach{t, o})
		}
	}
	return out
}

// pressureOf turns breaches into the node's pressure conditions.
func pressureOf(bs []breach) nodestatus.Pressure {
	var p nodestatus.Pressure
	for _, b := range bs {
		switch b.threshold.Signal {
		case signalMemoryAvailable:
			p.Memory = true
		case signalNodefsAvailable, signalImagefsAvailable:
			p.Disk = true
		case signalPIDAvailable:
			p.PID = true
		}
	}
	return p
}

// starvedResource is the pod resource a signal measures.
func starvedResource(signal string) v1.ResourceName {
	switch signal {
	case signalMemoryAvailable:
		return v1.ResourceMemory
	case signalNodefsAvailable, signalImagefsAvailable:
		return v1.ResourceEphemeralStorage
	}
	return "" // pids: no per-pod request to compare with
}

// systemCriticalPriority is the lowest priority of the system-critical
// classes; such pods are not evicted, as upstream.
const systemCriticalPriority = 2000000000

// evictionCandidates ranks the pods the node may evict to reclaim res,
// first to go first, as upstream's ranking: pods using more than they
// request, then lower priority, then the most usage above requests. Static
// pods, system-critical pods and finished pods are never candidates.
func evictionCandidates(pods []*v1.Pod, usage map[types.UID]int64, res v1.ResourceName, static func(types.UID) bool) []*v1.Pod {
	type ranked struct {
		pod      *v1.Pod
		exceeds  bool
		priority int32
		above    int64
	}
	var rs []ranked
	for _, p := range pods {
		if static(p.UID) || isMirror(p) || p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed || p.DeletionTimestamp != nil {
			continue
		}
		prio := int32(0)
		if p.Spec.Priority != nil {
			prio = *p.Spec.Priority
		}
		if prio >= systemCriticalPriority {
			continue
		}
		r := ranked{pod: p, priority: prio}
		if res != "" {
			req := podRequest(p, res)
			r.above = usage[p.UID] - req
			r.exceeds = r.above > 0
		}
		rs = append(rs, r)
	}
	sort.SliceStable(rs, func(i, j int) bool {
		a, b := rs[i], rs[j]
		if a.exceeds != b.exceeds {
			return a.exceeds
		}
		if a.priority != b.priority {
			return a.priority < b.priority
		}
		return a.above > b.above
	})
	out := make([]*v1.Pod, len(rs))
	for i, r := range rs {
		out[i] = r.pod
	}
	return out
}

// podRequest is the pod's effective request of res: the larger of its app
// containers' (with sidecars) sum and its largest init container's.
func podRequest(p *v1.Pod, res v1.ResourceName) int64 {
	var apps, initMax, sidecars int64
	for _, c := range p.Spec.Containers {
		apps += c.Resources.Requests.Name(res, resource.BinarySI).Value()
	}
	for i := range p.Spec.InitContainers {
		c := &p.Spec.InitContainers[i]
		v := c.Resources.Requests.Name(res, resource.BinarySI).Value()
		if plan.IsSidecar(c) {
			sidecars += v
			continue
		}
		initMax = max(initMax, sidecars+v)
	}
	return max(apps+sidecars, initMax)
}

// evictionMessage is upstream's wording for an evicted pod.
func evictionMessage(b breach) string {
	res := starvedResource(b.threshold.Signal)
	name := string(res)
	if res == "" {
		name = "pids"
	}
	avail := resource.NewQuantity(b.obs.available, resource.BinarySI)
	limit := resource.NewQuantity(b.threshold.limit(b.obs.capacity), resource.BinarySI)
	if res == "" {
		avail = resource.NewQuantity(b.obs.available, resource.DecimalSI)
		limit = resource.NewQuantity(b.threshold.limit(b.obs.capacity), resource.DecimalSI)
	}
	return fmt.Sprintf("The node was low on resource: %s. Threshold quantity: %s, available: %s. ", name, limit.String(), avail.String())
}

// admitUnderPressure says whether a new pod may start on a node under p,
// and if not why, as upstream's eviction admission: memory pressure turns
// away BestEffort pods that do not tolerate the memory-pressure taint, disk
// and PID pressure every pod; system-critical pods always start.
func admitUnderPressure(pod *v1.Pod, p nodestatus.Pressure) (bool, string) {
	if pod.Spec.Priority != nil && *pod.Spec.Priority >= systemCriticalPriority {
		return true, ""
	}
	var conds []string
	memTaint := v1.Taint{Key: v1.TaintNodeMemoryPressure, Effect: v1.TaintEffectNoSchedule}
	tolerates := false
	for _, t := range pod.Spec.Tolerations {
		if t.ToleratesTaint(klog.Background(), &memTaint, true) {
			tolerates = true
		}
	}
	if p.Memory && qosClass(pod) == v1.PodQOSBestEffort && !tolerates {
		conds = append(conds, string(v1.NodeMemoryPressure))
	}
	if p.Disk {
		conds = append(conds, string(v1.NodeDiskPressure))
	}
	if p.PID {
		conds = append(conds, string(v1.NodePIDPressure))
	}
	if len(conds) == 0 {
		return true, ""
	}
	return false, fmt.Sprintf("The node had condition: [%s]. ", strings.Join(conds, ", "))
}

// qosClass is the pod's QoS class as the API server recorded it; a pod
// without one (a static pod read from disk) is BestEffort when it asks for
// no resources at all, else counted Burstable (admission needs no finer).
func qosClass(pod *v1.Pod) v1.PodQOSClass {
	if pod.Status.QOSClass != "" {
		return pod.Status.QOSClass
	}
	all := append(append([]v1.Container(nil), pod.Spec.InitContainers...), pod.Spec.Containers...)
	for _, c := range all {
		if len(c.Resources.Requests) > 0 || len(c.Resources.Limits) > 0 {
			return v1.PodQOSBurstable
		}
	}
	return v1.PodQOSBestEffort
}
