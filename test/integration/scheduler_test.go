package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/test/poll"

	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

// addNode creates a Ready node with 4 CPUs and 8Gi, as a kubelet would
// register it.
func addNode(t *testing.T, cs kubernetes.Interface, name string, labels map[string]string, taints ...corev1.Taint) {
	t.Helper()
	ctx := context.Background()
	l := map[string]string{corev1.LabelHostname: name}
	for k, v := range labels {
		l[k] = v
	}
	n, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l}, Spec: corev1.NodeSpec{Taints: taints}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	capacity := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("8Gi"), corev1.ResourcePods: resource.MustParse("110")}
	// Controllers (node IPAM) may write the new Node first: retry on a
	// conflict as a kubelet does.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n.Status = corev1.NodeStatus{Capacity: capacity, Allocatable: capacity, Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: metav1.Now()}}}
		_, err := cs.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			if fresh, gerr := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{}); gerr == nil {
				n = fresh
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// finishTerminating plays the kubelet for pods being deleted: once a pod
// has a deletion timestamp its containers are "gone" and it is removed.
func finishTerminating(ctx context.Context, cs kubernetes.Interface, ns string) {
	for ctx.Err() == nil {
		if l, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); err == nil {
			for _, p := range l.Items {
				if p.DeletionTimestamp != nil {
					cs.CoreV1().Pods(ns).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func nodeOfPod(s *server, name string) string {
	out, _, _ := s.kubectl("get", "pod", name, "-o", "jsonpath={.spec.nodeName}")
	return out
}

// TestScheduler places pods through the real scheduler: constraints,
// spreading, taints, impossible pods, a node that appears later, and
// preemption, observed the way users observe them.
func TestScheduler(t *testing.T) {
	s := startServer(t)
	cs := s.client()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go finishTerminating(ctx, cs, "default")
	addNode(t, cs, "a1", map[string]string{corev1.LabelTopologyZone: "a", "disk": "ssd"})
	addNode(t, cs, "a2", map[string]string{corev1.LabelTopologyZone: "a"})
	addNode(t, cs, "b1", map[string]string{corev1.LabelTopologyZone: "b"})
	addNode(t, cs, "b2", map[string]string{corev1.LabelTopologyZone: "b"})
	addNode(t, cs, "gpu", map[string]string{corev1.LabelTopologyZone: "c"}, corev1.Taint{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule})

	t.Run("nodeSelector", func(t *testing.T) {
		s.mustKubectl("run", "ssd", "--image=busybox", `--overrides={"spec":{"nodeSelector":{"disk":"ssd"}}}`)
		poll.Eventually(t, settle, poll.State("pod on a1", func() (bool, string) { n := nodeOfPod(s, "ssd"); return n == "a1", n }))
		out := s.mustKubectl("get", "events", "--field-selector", "involvedObject.name=ssd,reason=Scheduled", "-o", "jsonpath={.items[*].message}")
		if !strings.Contains(out, "Successfully assigned default/ssd to a1") {
			t.Errorf("Scheduled event: %q", out)
		}
	})

	t.Run("topology spread evens zones and taints keep pods off", func(t *testing.T) {
		manifest := `apiVersion: apps/v1
kind: Deployment
metadata: {name: spread}
spec:
  replicas: 6
  selector: {matchLabels: {app: spread}}
  template:
    metadata: {labels: {app: spread}}
    spec:
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: spread}}, nodeTaintsPolicy: Honor}
      containers: [{name: c, image: busybox, resources: {requests: {cpu: 100m}}}]
`
		if _, stderr, err := s.kubectlStdin(manifest, "apply", "-f", "-"); err != nil {
			t.Fatal(stderr)
		}
		poll.Eventually(t, settle, poll.State("six spread pods bound, three per zone", func() (bool, string) {
			out, _, _ := s.kubectl("get", "pods", "-l", "app=spread", "-o", "jsonpath={range .items[*]}{.spec.nodeName} {end}")
			zones := map[string]int{}
			bound := 0
			for _, n := range strings.Fields(out) {
				bound++
				zones[n[:1]]++
			}
			return bound == 6 && zones["a"] == 3 && zones["b"] == 3 && zones["g"] == 0, out
		}))
	})

	t.Run("tolerating pod may use the tainted node", func(t *testing.T) {
		s.mustKubectl("run", "trainer", "--image=busybox", `--overrides={"spec":{"nodeSelector":{"topology.kubernetes.io/zone":"c"},"tolerations":[{"key":"dedicated","operator":"Equal","value":"gpu","effect":"NoSchedule"}]}}`)
		poll.Eventually(t, settle, poll.State("trainer on gpu", func() (bool, string) { n := nodeOfPod(s, "trainer"); return n == "gpu", n }))
	})

	t.Run("impossible pod stays pending with the reason", func(t *testing.T) {
		s.mustKubectl("run", "huge", "--image=busybox", `--overrides={"spec":{"containers":[{"name":"huge","image":"busybox","resources":{"requests":{"cpu":"1000"}}}]}}`)
		want := "0/5 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 4 Insufficient cpu. preemption: 0/5 nodes are available: 5 Preemption is not helpful for scheduling."
		poll.Eventually(t, settle, poll.State("PodScheduled=False with the summary", func() (bool, string) {
			out, _, _ := s.kubectl("get", "pod", "huge", "-o", `jsonpath={.status.conditions[?(@.type=="PodScheduled")].reason}|{.status.conditions[?(@.type=="PodScheduled")].message}`)
			return out == "Unschedulable|"+want, out
		}))
		desc := s.mustKubectl("describe", "pod", "huge")
		if !strings.Contains(desc, "FailedScheduling") || !strings.Contains(desc, "4 Insufficient cpu") {
			t.Errorf("describe lacks the FailedScheduling event:\n%s", desc)
		}
	})

	t.Run("pod with resource claims stays pending with the reason", func(t *testing.T) {
		claim := &resourcev1.ResourceClaim{ObjectMeta: metav1.ObjectMeta{Name: "gpu"}, Spec: resourcev1.ResourceClaimSpec{Devices: resourcev1.DeviceClaim{
			Requests: []resourcev1.DeviceRequest{{Name: "gpu", Exactly: &resourcev1.ExactDeviceRequest{DeviceClassName: "gpu.example.com"}}}}}}
		if _, err := cs.ResourceV1().ResourceClaims("default").Create(ctx, claim, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "claims-gpu"}, Spec: corev1.PodSpec{
			ResourceClaims: []corev1.PodResourceClaim{{Name: "gpu", ResourceClaimName: ptr.To("gpu")}},
			Containers:     []corev1.Container{{Name: "c", Image: "busybox", Resources: corev1.ResourceRequirements{Claims: []corev1.ResourceClaim{{Name: "gpu"}}}}},
		}}
		if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		poll.Eventually(t, settle, poll.State("PodScheduled=False naming dynamic resources", func() (bool, string) {
			out, _, _ := s.kubectl("get", "pod", "claims-gpu", "-o", `jsonpath={.spec.nodeName}|{.status.conditions[?(@.type=="PodScheduled")].reason}|{.status.conditions[?(@.type=="PodScheduled")].message}`)
			return strings.HasPrefix(out, "|Unschedulable|") && strings.Contains(out, "does not allocate dynamic resources"), out
		}))
	})

	t.Run("pending pod is scheduled when a fitting node appears", func(t *testing.T) {
		s.mustKubectl("run", "needs-arm", "--image=busybox", `--overrides={"spec":{"nodeSelector":{"kubernetes.io/arch":"arm64"}}}`)
		poll.Eventually(t, settle, poll.State("needs-arm unschedulable", func() (bool, string) {
			out, _, _ := s.kubectl("get", "pod", "needs-arm", "-o", `jsonpath={.status.conditions[?(@.type=="PodScheduled")].message}`)
			return strings.Contains(out, "1 node(s) had untolerated taint {dedicated: gpu}, 4 node(s) didn't match Pod's node affinity/selector"), out
		}))
		addNode(t, cs, "arm", map[string]string{"kubernetes.io/arch": "arm64"})
		poll.Eventually(t, settle, poll.State("needs-arm on the new node", func() (bool, string) { n := nodeOfPod(s, "needs-arm"); return n == "arm", n }))
	})

	t.Run("preemption", func(t *testing.T) {
		manifest := `apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: critical-app}
value: 100000
---
apiVersion: v1
kind: Pod
metadata: {name: filler, labels: {app: filler}}
spec:
  nodeSelector: {kubernetes.io/hostname: arm}
  containers: [{name: c, image: busybox, resources: {requests: {cpu: "3500m"}}}]
`
		if _, stderr, err := s.kubectlStdin(manifest, "apply", "-f", "-"); err != nil {
			t.Fatal(stderr)
		}
		poll.Eventually(t, settle, poll.State("filler bound", func() (bool, string) { n := nodeOfPod(s, "filler"); return n == "arm", n }))
		vip := `apiVersion: v1
kind: Pod
metadata: {name: vip}
spec:
  priorityClassName: critical-app
  nodeSelector: {kubernetes.io/hostname: arm}
  containers: [{name: c, image: busybox, resources: {requests: {cpu: "2"}}}]
`
		if _, stderr, err := s.kubectlStdin(vip, "apply", "-f", "-"); err != nil {
			t.Fatal(stderr)
		}
		if got := s.mustKubectl("get", "pod", "vip", "-o", "jsonpath={.spec.priority}/{.spec.preemptionPolicy}"); got != "100000/PreemptLowerPriority" {
			t.Errorf("priority admission: %s", got)
		}
		poll.Eventually(t, settle, poll.State("vip bound to arm after preempting filler", func() (bool, string) { n := nodeOfPod(s, "vip"); return n == "arm", n }))
		if _, _, err := s.kubectl("get", "pod", "filler"); err == nil {
			t.Errorf("the victim still exists")
		}
		out := s.mustKubectl("get", "events", "--field-selector", "involvedObject.name=filler,reason=Preempted", "-o", "jsonpath={.items[*].message}")
		if !strings.Contains(out, "Preempted by pod") || !strings.Contains(out, "on node arm") {
			t.Errorf("Preempted event: %q", out)
		}
		if _, stderr, err := s.kubectlStdin("apiVersion: v1\nkind: Pod\nmetadata: {name: nope}\nspec:\n  priorityClassName: missing\n  containers: [{name: c, image: busybox}]\n", "apply", "-f", "-"); err == nil || !strings.Contains(stderr, "no PriorityClass with name missing was found") {
			t.Errorf("unknown PriorityClass: %v %s", err, stderr)
		}
	})

	t.Run("pods for other schedulers are left alone", func(t *testing.T) {
		s.mustKubectl("run", "other", "--image=busybox", `--overrides={"spec":{"schedulerName":"my-scheduler"}}`)
		time.Sleep(time.Second)
		if n := nodeOfPod(s, "other"); n != "" {
			t.Errorf("pod for my-scheduler bound to %q", n)
		}
	})
}

// TestSchedulerConfigFile runs a second profile from a configuration file
// and checks that a malformed file stops start-up naming the field.
func TestSchedulerConfigFile(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nprofiles:\n- schedulerName: default-scheduler\n  plugins:\n    score:\n      enabled: [{name: NodeResourcesFit, weight: 500}]\n"), 0o600)
	out, err := exec.Command(skiffBin, "server", "--data-dir", filepath.Join(dir, "data"), "--scheduler-config", bad).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "profiles[0].plugins.score.enabled[0].weight: Invalid value: 500") {
		t.Fatalf("bad config: err %v, output %s", err, out)
	}

	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte(`apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: default-scheduler
- schedulerName: packer
  pluginConfig:
  - name: NodeResourcesFit
    args: {scoringStrategy: {type: MostAllocated, resources: [{name: cpu, weight: 1}]}}
  plugins:
    score:
      disabled: [{name: NodeResourcesBalancedAllocation}, {name: PodTopologySpread}]
`), 0o600)
	s := startServer(t, "--scheduler-config", good)
	cs := s.client()
	addNode(t, cs, "n1", nil)
	addNode(t, cs, "n2", nil)
	// Two pods for the packing profile end up on the same node.
	for i := range 3 {
		s.mustKubectl("run", fmt.Sprintf("packed-%d", i), "--image=busybox", `--overrides={"spec":{"schedulerName":"packer","containers":[{"name":"c","image":"busybox","resources":{"requests":{"cpu":"1"}}}]}}`)
	}
	poll.Eventually(t, settle, poll.State("packed pods share a node", func() (bool, string) {
		a, b, c := nodeOfPod(s, "packed-0"), nodeOfPod(s, "packed-1"), nodeOfPod(s, "packed-2")
		return a != "" && a == b && b == c, a + " " + b + " " + c
	}))
	reporter := s.mustKubectl("get", "events", "--field-selector", "involvedObject.name=packed-0,reason=Scheduled", "-o", "jsonpath={.items[*].reportingComponent}")
	if !strings.Contains(reporter, "packer") {
		t.Errorf("event reported by %q, want the packer profile", reporter)
	}
}
