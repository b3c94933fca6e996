package kubelet

import (
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/skiff-sh/skiff/internal/kubelet/nodestatus"
)

func TestParseEvictionHard(t *testing.T) {
	got, err := ParseEvictionHard(DefaultEvictionHard)
	if err != nil {
		t.Fatal(err)
	}
	var spelled []string
	for _, th := range got {
		spelled = append(spelled, th.String())
	}
	if strings.Join(spelled, ",") != DefaultEvictionHard {
		t.Errorf("round trip: %v", spelled)
	}
	if th := got[0]; th.limit(1<<30) != 100<<20 {
		t.Errorf("memory limit %d", th.limit(1<<30))
	}
	if th := got[1]; th.limit(1000) != 100 {
		t.Errorf("nodefs 10%% of 1000 = %d", th.limit(1000))
	}
	if none, err := ParseEvictionHard(""); err != nil || len(none) != 0 {
		t.Errorf("empty: %v %v", none, err)
	}
	for _, bad := range []string{"memory.available", "memory.free<1Gi", "nodefs.available<120%", "memory.available<lots", "memory.available<-1Gi"} {
		if _, err := ParseEvictionHard(bad); err == nil || !strings.Contains(err.Error(), "--eviction-hard") {
			t.Errorf("%q: err %v", bad, err)
		}
	}
}

func TestBreachedAndPressure(t *testing.T) {
	ths, _ := ParseEvictionHard("memory.available<100Mi,nodefs.available<10%,pid.available<5%")
	cases := []struct {
		name string
		obs  map[string]observation
		want nodestatus.Pressure
	}{
		{"plenty", map[string]observation{signalMemoryAvailable: {available: 1 << 30, capacity: 8 << 30}, signalNodefsAvailable: {available: 50, capacity: 100}}, nodestatus.Pressure{}},
		{"low memory", map[string]observation{signalMemoryAvailable: {available: 50 << 20, capacity: 8 << 30}}, nodestatus.Pressure{Memory: true}},
		{"disk at exactly the threshold is fine", map[string]observation{signalNodefsAvailable: {available: 10, capacity: 100}}, nodestatus.Pressure{}},
		{"disk below", map[string]observation{signalNodefsAvailable: {available: 9, capacity: 100}}, nodestatus.Pressure{Disk: true}},
		{"pids", map[string]observation{signalPIDAvailable: {available: 100, capacity: 32768}}, nodestatus.Pressure{PID: true}},
		{"no reading never breaches", map[string]observation{}, nodestatus.Pressure{}},
	}
	for _, c := range cases {
		if got := pressureOf(breached(ths, c.obs)); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

func evictionPod(name string, prio int32, memRequest string) *v1.Pod {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID(name)}, Spec: v1.PodSpec{Priority: ptr.To(prio),
		Containers: []v1.Container{{Name: "c"}}}}
	if memRequest != "" {
		p.Spec.Containers[0].Resources.Requests = v1.ResourceList{v1.ResourceMemory: resource.MustParse(memRequest)}
	}
	return p
}

func TestEvictionCandidates(t *testing.T) {
	finished := evictionPod("finished", 0, "")
	finished.Status.Phase = v1.PodSucceeded
	pods := []*v1.Pod{
		evictionPod("within-request", 0, "1Gi"),
		evictionPod("high-prio-over", 1000, "100Mi"),
		evictionPod("besteffort-small", 0, ""),
		evictionPod("besteffort-big", 0, ""),
		evictionPod("critical", systemCriticalPriority, ""),
		evictionPod("static", 0, ""),
		finished,
	}
	usage := map[types.UID]int64{
		"within-request": 512 << 20, "high-prio-over": 200 << 20,
		"besteffort-small": 10 << 20, "besteffort-big": 300 << 20, "critical": 900 << 20, "static": 900 << 20,
	}
	isStatic := func(uid types.UID) bool { return uid == "static" }
	var got []string
	for _, p := range evictionCandidates(pods, usage, v1.ResourceMemory, isStatic) {
		got = append(got, p.Name)
	}
	// Over their requests first (low priority before high), then the rest.
	want := "besteffort-big,besteffort-small,high-prio-over,within-request"
	if strings.Join(got, ",") != want {
		t.Errorf("order %v, want %s", got, want)
	}
	// PID pressure has no per-pod request: priority alone decides.
	got = nil
	for _, p := range evictionCandidates(pods[:3], nil, "", isStatic) {
		got = append(got, p.Name)
	}
	if strings.Join(got, ",") != "within-request,besteffort-small,high-prio-over" {
		t.Errorf("pid order %v", got)
	}
}

func TestPodRequest(t *testing.T) {
	mem := func(q string) v1.ResourceRequirements {
		return v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceMemory: resource.MustParse(q)}}
	}
	p := &v1.Pod{Spec: v1.PodSpec{
		InitContainers: []v1.Container{{Name: "side", Resources: mem("100Mi"), RestartPolicy: ptr.To(v1.ContainerRestartPolicyAlways)}, {Name: "big-init", Resources: mem("1Gi")}},
		Containers:     []v1.Container{{Name: "a", Resources: mem("200Mi")}, {Name: "b", Resources: mem("200Mi")}},
	}}
	// max(apps 400Mi + sidecar 100Mi, sidecar 100Mi + init 1Gi)
	if got, want := podRequest(p, v1.ResourceMemory), int64(1<<30+100<<20); got != want {
		t.Errorf("request %d, want %d", got, want)
	}
}

func TestEvictionMessage(t *testing.T) {
	ths, _ := ParseEvictionHard("memory.available<100Mi")
	b := breach{threshold: ths[0], obs: observation{available: 50 << 20, capacity: 8 << 30}}
	if got, want := evictionMessage(b), "The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi. "; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
}

func TestAdmitUnderPressure(t *testing.T) {
	bestEffort := evictionPod("be", 0, "")
	burstable := evictionPod("bu", 0, "64Mi")
	tolerant := evictionPod("tol", 0, "")
	tolerant.Spec.Tolerations = []v1.Toleration{{Key: v1.TaintNodeMemoryPressure, Operator: v1.TolerationOpExists, Effect: v1.TaintEffectNoSchedule}}
	critical := evictionPod("crit", systemCriticalPriority+1000, "")
	cases := []struct {
		name string
		pod  *v1.Pod
		p    nodestatus.Pressure
		ok   bool
		msg  string
	}{
		{"no pressure", bestEffort, nodestatus.Pressure{}, true, ""},
		{"memory pressure turns away BestEffort", bestEffort, nodestatus.Pressure{Memory: true}, false, "The node had condition: [MemoryPressure]. "},
		{"memory pressure admits Burstable", burstable, nodestatus.Pressure{Memory: true}, true, ""},
		{"a toleration of the memory-pressure taint admits", tolerant, nodestatus.Pressure{Memory: true}, true, ""},
		{"disk pressure turns away everyone", burstable, nodestatus.Pressure{Disk: true}, false, "The node had condition: [DiskPressure]. "},
		{"both named", bestEffort, nodestatus.Pressure{Memory: true, Disk: true}, false, "The node had condition: [MemoryPressure, DiskPressure]. "},
		{"critical pods start anyway", critical, nodestatus.Pressure{Memory: true, Disk: true, PID: true}, true, ""},
	}
	for _, c := range cases {
		ok, msg := admitUnderPressure(c.pod, c.p)
		if ok != c.ok || msg != c.msg {
			t.Errorf("%s: %v %q, want %v %q", c.name, ok, msg, c.ok, c.msg)
		}
	}
}
