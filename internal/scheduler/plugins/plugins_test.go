package plugins_test

import (
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	configv1 "k8s.io/kube-scheduler/config/v1"
	"k8s.io/utils/ptr"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins"
)

func TestNodeNameUnschedulableAndPorts(t *testing.T) {
	cordoned := node("cordoned", 4, 8)
	cordoned.Spec.Unschedulable = true
	withPort := pod("web", 0, 0)
	withPort.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, HostPort: 8080}}
	e := newEnv(t, only("NodeName", "NodeUnschedulable", "NodePorts"), []*corev1.Node{node("a", 4, 8), node("b", 4, 8), cordoned}, []*corev1.Pod{on(withPort.DeepCopy(), "a")})

	named := pod("named", 0, 0)
	named.Spec.NodeName = "b"
	tolerant := pod("tolerant", 0, 0)
	tolerant.Spec.Tolerations = []corev1.Toleration{{Key: corev1.TaintNodeUnschedulable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
	samePort := withPort.DeepCopy()
	samePort.UID = "other"
	otherIP := samePort.DeepCopy()
	otherIP.Spec.Containers[0].Ports[0].HostIP = "10.0.0.1"
	udp := samePort.DeepCopy()
	udp.Spec.Containers[0].Ports[0].Protocol = corev1.ProtocolUDP
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want map[string]string
	}{
		{"spec.nodeName", named, map[string]string{"a": "node(s) didn't match the requested node name", "b": "", "cordoned": "node(s) didn't match the requested node name"}},
		{"cordoned node rejected", pod("p", 0, 0), map[string]string{"a": "", "b": "", "cordoned": "node(s) were unschedulable"}},
		{"unschedulable taint tolerated", tolerant, map[string]string{"a": "", "b": "", "cordoned": ""}},
		{"host port taken on a", samePort, map[string]string{"a": "node(s) didn't have free ports for the requested pod ports", "b": "", "cordoned": "node(s) were unschedulable"}},
		{"wildcard address conflicts with any", otherIP, map[string]string{"a": "node(s) didn't have free ports for the requested pod ports", "b": "", "cordoned": "node(s) were unschedulable"}},
		{"other protocol is free", udp, map[string]string{"a": "", "b": "", "cordoned": "node(s) were unschedulable"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := e.filter(tc.pod); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNodeResourcesFitFilter(t *testing.T) {
	full := node("full", 2, 4)
	gpu := node("gpu", 8, 16)
	gpu.Status.Allocatable["example.com/gpu"] = resource.MustParse("2")
	small := node("small", 1, 1)
	small.Status.Allocatable[corev1.ResourcePods] = resource.MustParse("1")
	e := newEnv(t, only("NodeResourcesFit"), []*corev1.Node{full, gpu, small}, []*corev1.Pod{on(pod("busy", 1500, 1024), "full"), on(pod("one", 0, 0), "small")})

	sidecar := pod("sidecar", 100, 0)
	sidecar.Spec.InitContainers = []corev1.Container{
		{Name: "init", Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("9")}}},
		{Name: "side", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways), Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}}},
	}
	overhead := pod("overhead", 7000, 0)
	overhead.Spec.Overhead = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1500m")}
	wantsGPU := pod("wants-gpu", 100, 0)
	wantsGPU.Spec.Containers[0].Resources.Requests["example.com/gpu"] = resource.MustParse("1")
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want []string
	}{
		{"fits where room is left", pod("p", 500, 512), []string{"full", "gpu"}},
		{"cpu exhausted by bound pods", pod("p", 1000, 0), []string{"gpu"}},
		{"init container larger than app containers counts", sidecar, nil},
		{"sidecar adds to app containers", func() *corev1.Pod {
			p := sidecar.DeepCopy()
			p.Spec.InitContainers = p.Spec.InitContainers[1:]
			return p
		}(), []string{"gpu"}},
		{"overhead counts", overhead, nil},
		{"extended resource only where offered", wantsGPU, []string{"gpu"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := e.fits(tc.pod); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("fits %v, want %v (%v)", got, tc.want, e.filter(tc.pod))
			}
		})
	}
	got := e.filter(pod("huge", 1000000, 100000))
	if got["small"] != "Too many pods, Insufficient cpu, Insufficient memory" || got["gpu"] != "Insufficient cpu, Insufficient memory" {
		t.Errorf("reasons: %v", got)
	}
}

func TestNodeResourcesFitScoringStrategies(t *testing.T) {
	nodes := []*corev1.Node{node("empty", 4, 8), node("half", 4, 8)}
	pods := []*corev1.Pod{on(pod("x", 2000, 4096), "half")}
	strategy := func(s configv1.ScoringStrategyType, shape ...configv1.UtilizationShapePoint) *configv1.KubeSchedulerProfile {
		p := only("NodeResourcesFit")
		args := `{"scoringStrategy":{"type":"` + string(s) + `","resources":[{"name":"cpu","weight":1},{"name":"memory","weight":1}]`
		if len(shape) > 0 {
			args += `,"requestedToCapacityRatio":{"shape":[{"utilization":0,"score":0},{"utilization":100,"score":10}]}`
		}
		p.PluginConfig = []configv1.PluginConfig{{Name: "NodeResourcesFit"}}
		p.PluginConfig[0].Args.Raw = []byte(args + "}}")
		return p
	}
	incoming := pod("p", 1000, 2048)
	for _, tc := range []struct {
		name    string
		profile *configv1.KubeSchedulerProfile
		want    map[string]int64
	}{
		// empty: (4-1)/4=75 cpu, (8-2)/8=75 mem; half: (4-3)/4=25, (8-6)/8=25.
		{"LeastAllocated spreads", only("NodeResourcesFit"), map[string]int64{"empty": 75, "half": 25}},
		{"MostAllocated packs", strategy(configv1.MostAllocated), map[string]int64{"empty": 25, "half": 75}},
		{"RequestedToCapacityRatio follows the shape", strategy(configv1.RequestedToCapacityRatio, configv1.UtilizationShapePoint{}), map[string]int64{"empty": 25, "half": 75}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := newEnv(t, tc.profile, nodes, pods).scores(incoming); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestBalancedAllocation(t *testing.T) {
	// cpu-heavy node: after the pod, cpu 3/4 and memory 2/8 → |0.75-0.25|/2 = 0.25 → 75.
	e := newEnv(t, only("NodeResourcesBalancedAllocation"), []*corev1.Node{node("cpuheavy", 4, 8), node("even", 4, 8)},
		[]*corev1.Pod{on(pod("c", 2000, 0+1), "cpuheavy"), on(pod("e", 1000, 2048), "even")})
	got := e.scores(pod("p", 1000, 2048))
	if got["even"] <= got["cpuheavy"] || got["cpuheavy"] != 75 {
		t.Errorf("scores %v: want the balanced node ahead and cpuheavy at 75", got)
	}
}

func TestTaintToleration(t *testing.T) {
	tainted := node("tainted", 4, 8)
	tainted.Spec.Taints = []corev1.Taint{{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule}}
	soft := node("soft", 4, 8)
	soft.Spec.Taints = []corev1.Taint{{Key: "spot", Value: "true", Effect: corev1.TaintEffectPreferNoSchedule}}
	e := newEnv(t, only("TaintToleration"), []*corev1.Node{node("plain", 4, 8), tainted, soft}, nil)
	got := e.filter(pod("p", 0, 0))
	want := map[string]string{"plain": "", "soft": "", "tainted": "node(s) had untolerated taint {dedicated: gpu}"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("filter %v, want %v", got, want)
	}
	tol := pod("tol", 0, 0)
	tol.Spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "gpu", Effect: corev1.TaintEffectNoSchedule}}
	if fits := e.fits(tol); !reflect.DeepEqual(fits, []string{"plain", "soft", "tainted"}) {
		t.Errorf("tolerating pod fits %v", fits)
	}
	// Score (weight 1 when enabled without one): the PreferNoSchedule
	// node scores 0, the others 100.
	if s := e.scores(tol); s["plain"] != 100 || s["soft"] != 0 || s["tainted"] != 100 {
		t.Errorf("scores %v", s)
	}
}

func TestNodeAffinity(t *testing.T) {
	nodes := []*corev1.Node{node("a", 4, 8, "disk", "ssd", "zone", "z1"), node("b", 4, 8, "disk", "hdd", "zone", "z2"), node("c", 4, 8)}
	e := newEnv(t, only("NodeAffinity"), nodes, nil)
	sel := pod("sel", 0, 0)
	sel.Spec.NodeSelector = map[string]string{"disk": "ssd"}
	req := pod("req", 0, 0)
	req.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{
		{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"z2"}}}},
		{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "disk", Operator: corev1.NodeSelectorOpDoesNotExist}}},
	}}}}
	fieldsPod := pod("fields", 0, 0)
	fieldsPod.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{
		{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"a"}}}},
	}}}}
	nowhere := pod("nowhere", 0, 0)
	nowhere.Spec.NodeSelector = map[string]string{"gpu": "yes"}
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want []string
	}{
		{"nodeSelector", sel, []string{"a"}},
		{"required terms are ORed", req, []string{"b", "c"}},
		{"matchFields on metadata.name", fieldsPod, []string{"a"}},
		{"label no node has", nowhere, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := e.fits(tc.pod); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("fits %v, want %v", got, tc.want)
			}
		})
	}
	if r := e.filter(nowhere)["a"]; r != "node(s) didn't match Pod's node affinity/selector" {
		t.Errorf("reason %q", r)
	}
	pref := pod("pref", 0, 0)
	pref.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{
		{Weight: 80, Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "disk", Operator: corev1.NodeSelectorOpIn, Values: []string{"ssd"}}}}},
		{Weight: 20, Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpExists}}}},
	}}}
	// Raw 100/20/0 normalized so the best is 100.
	if s := e.scores(pref); !reflect.DeepEqual(s, map[string]int64{"a": 100, "b": 20, "c": 0}) {
		t.Errorf("scores %v", s)
	}
}

func TestImageLocality(t *testing.T) {
	withImage := node("cached", 4, 8)
	withImage.Status.Images = []corev1.ContainerImage{{Names: []string{"registry.local/app:1"}, SizeBytes: 500 << 20}}
	e := newEnv(t, only("ImageLocality"), []*corev1.Node{withImage, node("cold", 4, 8)}, nil)
	p := pod("p", 0, 0)
	p.Spec.Containers[0].Image = "registry.local/app:1"
	s := e.scores(p)
	// 500MiB × 1/2 nodes = 250MiB, scaled between 23MiB and 1000MiB.
	if s["cold"] != 0 || s["cached"] != 100*(250-23)/(1000-23) {
		t.Errorf("scores %v", s)
	}
}

func TestSchedulingGatesAndPrioritySort(t *testing.T) {
	e := newEnv(t, only("SchedulingGates"), []*corev1.Node{node("a", 1, 1)}, nil)
	gated := pod("g", 0, 0)
	gated.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "example.com/wait"}}
	if s := e.fwk.RunPreEnqueue(t.Context(), gated); s.IsSuccess() || !strings.Contains(s.Message(), "example.com/wait") {
		t.Errorf("gated pod: %v", s.Message())
	}
	if s := e.fwk.RunPreEnqueue(t.Context(), pod("free", 0, 0)); !s.IsSuccess() {
		t.Errorf("ungated pod: %v", s.Message())
	}
}

func TestVolumeBinding(t *testing.T) {
	wffc := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "local"}, Provisioner: "kubernetes.io/no-provisioner", VolumeBindingMode: ptr.To(storagev1.VolumeBindingWaitForFirstConsumer)}
	dynamic := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "dyn"}, Provisioner: "skiff.io/local-path", VolumeBindingMode: ptr.To(storagev1.VolumeBindingWaitForFirstConsumer)}
	immediate := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "now"}, Provisioner: "x"}
	claim := func(name, class, volume string) *corev1.PersistentVolumeClaim {
		return &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}, Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: &class, VolumeName: volume, AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}}}
	}
	localPV := func(name, nodeName, class string) *corev1.PersistentVolume {
		return &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PersistentVolumeSpec{
			StorageClassName: class, AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Capacity:     corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("5Gi")},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{nodeName}}}}}}},
		}, Status: corev1.PersistentVolumeStatus{Phase: corev1.VolumeAvailable}}
	}
	boundPV := localPV("pv-bound", "b", "local")
	boundPV.Spec.ClaimRef = &corev1.ObjectReference{Namespace: "ns", Name: "bound"}
	boundPV.Status.Phase = corev1.VolumeBound
	e := newEnv(t, only("VolumeBinding"), []*corev1.Node{node("a", 4, 8), node("b", 4, 8)}, nil,
		wffc, dynamic, immediate, localPV("pv-a", "a", "local"), boundPV,
		claim("waits", "local", ""), claim("bound", "local", "pv-bound"), claim("immediate", "now", ""), claim("dyn", "dyn", ""), claim("dangling", "local", "gone"))
	using := func(claims ...string) *corev1.Pod {
		p := pod("p", 0, 0)
		for _, c := range claims {
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: c, VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: c}}})
		}
		return p
	}
	for _, tc := range []struct {
		name   string
		pod    *corev1.Pod
		want   []string
		reason string
	}{
		{"no claims", using(), []string{"a", "b"}, ""},
		{"missing claim", using("nope"), nil, `persistentvolumeclaim "nope" not found`},
		{"unbound immediate claim", using("immediate"), nil, "pod has unbound immediate PersistentVolumeClaims"},
		{"bound volume pins the node", using("bound"), []string{"b"}, "node(s) had volume node affinity conflict"},
		{"waiting claim finds the local volume", using("waits"), []string{"a"}, "node(s) didn't find available persistent volumes to bind"},
		{"dynamic class provisions anywhere", using("dyn"), []string{"a", "b"}, ""},
		{"bound to a missing volume", using("dangling"), nil, "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := e.fits(tc.pod)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("fits %v, want %v", got, tc.want)
			}
			if tc.reason != "" {
				found := false
				for _, r := range e.filter(tc.pod) {
					found = found || r == tc.reason
				}
				if !found {
					t.Errorf("reasons %v lack %q", e.filter(tc.pod), tc.reason)
				}
			}
		})
	}
}

func TestVolumeRestrictions(t *testing.T) {
	rwop := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "solo", Namespace: "ns"}, Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOncePod}}}
	withClaim := func(name string) *corev1.Pod {
		p := pod(name, 0, 0)
		p.Spec.Volumes = []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "solo"}}}}
		return p
	}
	withDisk := func(name string) *corev1.Pod {
		p := pod(name, 0, 0)
		p.Spec.Volumes = []corev1.Volume{{Name: "d", VolumeSource: corev1.VolumeSource{AWSElasticBlockStore: &corev1.AWSElasticBlockStoreVolumeSource{VolumeID: "vol-1"}}}}
		return p
	}
	e := newEnv(t, only("VolumeRestrictions"), []*corev1.Node{node("a", 4, 8), node("b", 4, 8)}, []*corev1.Pod{on(withClaim("user"), "a"), on(withDisk("disk"), "b")}, rwop)
	if got := e.filter(withClaim("second")); got["a"] != "node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode" || got["b"] != got["a"] {
		t.Errorf("ReadWriteOncePod: %v", got)
	}
	if got := e.fits(withDisk("second-disk")); !reflect.DeepEqual(got, []string{"a"}) {
		t.Errorf("exclusive disk fits %v, want [a]", got)
	}
}

func TestDynamicResources(t *testing.T) {
	e := newEnv(t, only("DynamicResources"), []*corev1.Node{node("a", 1, 1)}, nil)
	claims := pod("claims", 0, 0)
	claims.Spec.ResourceClaims = []corev1.PodResourceClaim{{Name: "gpu", ResourceClaimName: ptr.To("gpu")}}
	_, s, _ := e.fwk.RunPreFilter(t.Context(), framework.NewCycleState(), framework.NewPodInfo(claims))
	if s.Code() != framework.UnschedulableAndUnresolvable || s.Message() != plugins.ErrReasonDynamicResources {
		t.Errorf("pod with claims: %v %q", s.Code(), s.Message())
	}
	_, s, _ = e.fwk.RunPreFilter(t.Context(), framework.NewCycleState(), framework.NewPodInfo(pod("plain", 0, 0)))
	if !s.IsSuccess() {
		t.Errorf("pod without claims: %v", s.Message())
	}
}
