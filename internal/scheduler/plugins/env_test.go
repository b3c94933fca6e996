package plugins_test

import (
	"context"
	"fmt"
	"sort"
	"testing"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	policylisters "k8s.io/client-go/listers/policy/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	configv1 "k8s.io/kube-scheduler/config/v1"
	"k8s.io/utils/ptr"

	"github.com/skiff-sh/skiff/internal/scheduler/config"
	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

// env is a cluster for plugin tests: a snapshot, listers over plain
// indexers, and a framework built from a profile.
type env struct {
	t         *testing.T
	snap      *framework.Snapshot
	listers   framework.Listers
	fwk       *framework.Framework
	nominated map[string][]*framework.PodInfo
	client    *fake.Clientset
}

type testHandle struct{ e *env }

func (h testHandle) Snapshot() *framework.Snapshot          { return h.e.snap }
func (h testHandle) Listers() *framework.Listers            { return &h.e.listers }
func (h testHandle) Client() kubernetes.Interface           { return h.e.client }
func (h testHandle) Recorder() events.EventRecorder         { return nil }
func (h testHandle) Nominator() framework.Nominator         { return h }
func (h testHandle) Runner() framework.Runner               { return h.e.fwk }
func (h testHandle) WaitingPod(string) framework.WaitingPod { return nil }
func (h testHandle) NamespaceLabels(ns string) labels.Set {
	n, err := h.e.listers.Namespaces.Get(ns)
	if err != nil {
		return nil
	}
	return n.Labels
}
func (h testHandle) Parallel(ctx context.Context, n int, f func(int)) {
	for i := 0; i < n && ctx.Err() == nil; i++ {
		f(i)
	}
}
func (h testHandle) NominatedPodsForNode(node string) []*framework.PodInfo {
	return h.e.nominated[node]
}

// only is a profile with just the named plugins (plus sort and bind).
func only(names ...string) *configv1.KubeSchedulerProfile {
	ps := &configv1.Plugins{MultiPoint: configv1.PluginSet{Disabled: []configv1.Plugin{{Name: "*"}}}}
	for _, n := range append([]string{"PrioritySort", "DefaultBinder"}, names...) {
		ps.MultiPoint.Enabled = append(ps.MultiPoint.Enabled, configv1.Plugin{Name: n})
	}
	return &configv1.KubeSchedulerProfile{SchedulerName: ptr.To("test"), Plugins: ps}
}

// newEnv builds the cluster; objs may be namespaces, claims, volumes,
// classes, budgets, services and ReplicaSets.
func newEnv(t *testing.T, profile *configv1.KubeSchedulerProfile, nodes []*corev1.Node, pods []*corev1.Pod, objs ...runtime.Object) *env {
	t.Helper()
	idx := map[string]cache.Indexer{}
	get := func(k string) cache.Indexer {
		if idx[k] == nil {
			idx[k] = cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
		}
		return idx[k]
	}
	for _, o := range objs {
		var kind string
		switch o.(type) {
		case *corev1.Namespace:
			kind = "ns"
		case *corev1.PersistentVolumeClaim:
			kind = "pvc"
		case *corev1.PersistentVolume:
			kind = "pv"
		case *storagev1.StorageClass:
			kind = "sc"
		case *policyv1.PodDisruptionBudget:
			kind = "pdb"
		case *corev1.Service:
			kind = "svc"
		default:
			kind = "rs"
		}
		if err := get(kind).Add(o); err != nil {
			t.Fatal(err)
		}
	}
	e := &env{t: t, snap: framework.NewSnapshot(pods, nodes), nominated: map[string][]*framework.PodInfo{}, client: fake.NewClientset()}
	e.listers = framework.Listers{
		Namespaces:             corelisters.NewNamespaceLister(get("ns")),
		PVCs:                   corelisters.NewPersistentVolumeClaimLister(get("pvc")),
		PVs:                    corelisters.NewPersistentVolumeLister(get("pv")),
		StorageClasses:         storagelisters.NewStorageClassLister(get("sc")),
		PDBs:                   policylisters.NewPodDisruptionBudgetLister(get("pdb")),
		Services:               corelisters.NewServiceLister(get("svc")),
		ReplicationControllers: corelisters.NewReplicationControllerLister(get("rc")),
		ReplicaSets:            appslisters.NewReplicaSetLister(get("rs")),
		StatefulSets:           appslisters.NewStatefulSetLister(get("ss")),
	}
	fwk, err := config.Build(profile, testHandle{e})
	if err != nil {
		t.Fatal(err)
	}
	e.fwk = fwk
	return e
}

// filter returns, per node, "" when the pod fits or the rejection reasons.
func (e *env) filter(pod *corev1.Pod) map[string]string {
	e.t.Helper()
	ctx := context.Background()
	pi := framework.NewPodInfo(pod)
	state := framework.NewCycleState()
	out := map[string]string{}
	pre, s, _ := e.fwk.RunPreFilter(ctx, state, pi)
	for _, ni := range e.snap.NodeInfoList {
		switch {
		case !s.IsSuccess():
			out[ni.Name()] = s.Message()
		case pre != nil && pre.NodeNames != nil && !pre.NodeNames.Has(ni.Name()):
			out[ni.Name()] = "filtered out by prefilter"
		default:
			out[ni.Name()] = e.fwk.RunFilterWithNominatedPods(ctx, state, pi, ni).Message()
		}
	}
	return out
}

// fits lists the nodes that pass, sorted.
func (e *env) fits(pod *corev1.Pod) []string {
	var out []string
	for n, r := range e.filter(pod) {
		if r == "" {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// scores returns the weighted total per feasible node.
func (e *env) scores(pod *corev1.Pod) map[string]int64 {
	e.t.Helper()
	ctx := context.Background()
	pi := framework.NewPodInfo(pod)
	state := framework.NewCycleState()
	if _, s, _ := e.fwk.RunPreFilter(ctx, state, pi); !s.IsSuccess() {
		e.t.Fatalf("prefilter: %v", s.Message())
	}
	var feasible []*framework.NodeInfo
	for _, ni := range e.snap.NodeInfoList {
		if e.fwk.RunFilter(ctx, state, pi, ni).IsSuccess() {
			feasible = append(feasible, ni)
		}
	}
	if s := e.fwk.RunPreScore(ctx, state, pi, feasible); !s.IsSuccess() {
		e.t.Fatalf("prescore: %v", s.Message())
	}
	totals := make([]int64, len(feasible))
	if s := e.fwk.RunScore(ctx, state, pi, feasible, totals); !s.IsSuccess() {
		e.t.Fatalf("score: %v", s.Message())
	}
	out := map[string]int64{}
	for i, ni := range feasible {
		out[ni.Name()] = totals[i]
	}
	return out
}

// node builds a Ready node with cpu (cores), memory (GiB) and 110 pods.
func node(name string, cpu, memGi int64, lbls ...string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name}}}
	for i := 0; i+1 < len(lbls); i += 2 {
		n.Labels[lbls[i]] = lbls[i+1]
	}
	n.Status.Allocatable = corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewQuantity(cpu, resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(memGi<<30, resource.BinarySI),
		corev1.ResourcePods:   *resource.NewQuantity(110, resource.DecimalSI),
	}
	return n
}

var uidSeq int

// pod builds a pod in namespace "ns" requesting cpu (millicores) and
// memory (MiB); lbls are label key/value pairs.
func pod(name string, cpuMilli, memMi int64, lbls ...string) *corev1.Pod {
	uidSeq++
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID(fmt.Sprintf("%s-%d", name, uidSeq)), Labels: map[string]string{}}}
	for i := 0; i+1 < len(lbls); i += 2 {
		p.Labels[lbls[i]] = lbls[i+1]
	}
	c := corev1.Container{Name: "c", Image: "img"}
	if cpuMilli > 0 || memMi > 0 {
		c.Resources.Requests = corev1.ResourceList{}
		if cpuMilli > 0 {
			c.Resources.Requests[corev1.ResourceCPU] = *resource.NewMilliQuantity(cpuMilli, resource.DecimalSI)
		}
		if memMi > 0 {
			c.Resources.Requests[corev1.ResourceMemory] = *resource.NewQuantity(memMi<<20, resource.BinarySI)
		}
	}
	p.Spec.Containers = []corev1.Container{c}
	return p
}

// on places a pod on a node.
func on(p *corev1.Pod, n string) *corev1.Pod {
	p.Spec.NodeName = n
	return p
}
