package scheduler

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/events"
	configv1 "k8s.io/kube-scheduler/config/v1"
	"k8s.io/utils/ptr"

	"github.com/skiff-sh/skiff/internal/scheduler/config"
	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

// benchHandle serves a snapshot to the plugins without a server.
type benchHandle struct {
	snap *framework.Snapshot
	fwk  *framework.Framework
	l    framework.Listers
}

func (h *benchHandle) Snapshot() *framework.Snapshot          { return h.snap }
func (h *benchHandle) Listers() *framework.Listers            { return &h.l }
func (h *benchHandle) Client() kubernetes.Interface           { return nil }
func (h *benchHandle) Recorder() events.EventRecorder         { return nil }
func (h *benchHandle) NamespaceLabels(string) labels.Set      { return nil }
func (h *benchHandle) Nominator() framework.Nominator         { return nil }
func (h *benchHandle) Runner() framework.Runner               { return h.fwk }
func (h *benchHandle) WaitingPod(string) framework.WaitingPod { return nil }
func (h *benchHandle) Parallel(ctx context.Context, n int, f func(int)) {
	(&handle{s: &Scheduler{cfg: &config.Config{Parallelism: 16}}}).Parallel(ctx, n, f)
}

// BenchmarkScheduleOne is one scheduling attempt (PreFilter through
// selecting a host) over 5,000 nodes holding 10,000 pods, with the
// default plugins; the variants add required anti-affinity or a zone
// spread constraint to every pod.
func BenchmarkScheduleOne(b *testing.B) {
	for _, mode := range []string{"plain", "anti-affinity", "spread"} {
		b.Run(mode, func(b *testing.B) {
			const nodes, pods = 5000, 10000
			var ns []*corev1.Node
			capacity := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("128Gi"), corev1.ResourcePods: resource.MustParse("110")}
			for i := range nodes {
				name := fmt.Sprintf("n%05d", i)
				ns = append(ns, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name, corev1.LabelTopologyZone: fmt.Sprintf("z%d", i%10)}},
					Status: corev1.NodeStatus{Allocatable: capacity}})
			}
			mk := func(i int) *corev1.Pod {
				group := fmt.Sprintf("g%d", i/100)
				p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprint(i), Namespace: "ns", UID: types.UID(fmt.Sprint(i)), Labels: map[string]string{"group": group}},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}}}}}}
				sel := &metav1.LabelSelector{MatchLabels: map[string]string{"group": group}}
				switch mode {
				case "anti-affinity":
					p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{TopologyKey: corev1.LabelHostname, LabelSelector: sel}}}}
				case "spread":
					p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: corev1.LabelTopologyZone, WhenUnsatisfiable: corev1.DoNotSchedule, LabelSelector: sel}}
				}
				return p
			}
			var existing []*corev1.Pod
			for i := range pods {
				p := mk(i)
				p.Spec.NodeName = fmt.Sprintf("n%05d", (i*7)%nodes)
				existing = append(existing, p)
			}
			h := &benchHandle{snap: framework.NewSnapshot(existing, ns)}
			profile := &configv1.KubeSchedulerProfile{SchedulerName: ptr.To("default-scheduler"), Plugins: &configv1.Plugins{MultiPoint: configv1.PluginSet{Disabled: []configv1.Plugin{{Name: "VolumeBinding"}, {Name: "VolumeRestrictions"}, {Name: "DefaultPreemption"}}}}}
			fwk, err := config.Build(profile, h)
			if err != nil {
				b.Fatal(err)
			}
			h.fwk = fwk
			a := &algorithm{snapshot: h.snap}
			// The incoming pod joins group 0, whose 100 pods are already
			// placed, as every pod after a group's first does.
			in := mk(0)
			in.Name, in.UID = "incoming", "incoming"
			incoming := framework.NewPodInfo(in)
			b.ResetTimer()
			for b.Loop() {
				if _, err := a.schedule(context.Background(), fwk, framework.NewCycleState(), incoming); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
