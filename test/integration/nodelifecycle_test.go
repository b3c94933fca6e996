package integration

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/test/poll"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

// TestNodeLifecycle plays a node agent that renews its Lease, then goes
// silent: the node turns Unknown, gets the unreachable taints, and pods are
// evicted as their tolerations run out; when the agent reports again the
// taints go.
func TestNodeLifecycle(t *testing.T) {
	s := startServer(t, "--node-monitor-grace-period=2s", "--node-eviction-rate=10")
	cs := s.client()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()

	node, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	reportReady := func() {
		t.Helper()
		// Controllers write the Node too: retry on a conflict, as a kubelet.
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			n, err := cs.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
			if err != nil {
				return err
			}
			now := metav1.Now()
			n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: now, LastTransitionTime: now}}
			_, err = cs.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	reportReady()
	var alive atomic.Bool
	alive.Store(true)
	leases := cs.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	lease, err := leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "n1"},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("n1"), LeaseDurationSeconds: ptr.To[int32](40), RenewTime: &metav1.MicroTime{Time: time.Now()}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for ctx.Err() == nil {
			if alive.Load() {
				lease.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
				if out, err := leases.Update(ctx, lease, metav1.UpdateOptions{}); err == nil {
					lease = out
				}
			}
			time.Sleep(300 * time.Millisecond)
		}
	}()
	mkPod := func(name string, tol *corev1.Toleration) {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{NodeName: node.Name, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
		if tol != nil {
			p.Spec.Tolerations = []corev1.Toleration{*tol}
		}
		if _, err := cs.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mkPod("short", &corev1.Toleration{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](1)})
	mkPod("forever", &corev1.Toleration{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute})
	mkPod("default", nil) // gets the 300 s default toleration at admission

	// A live node stays untouched past the grace period.
	time.Sleep(3 * time.Second)
	if n, _ := cs.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{}); len(n.Spec.Taints) != 0 {
		t.Fatalf("a node renewing its Lease got taints %v", n.Spec.Taints)
	}

	alive.Store(false)
	poll.Eventually(t, settle, poll.State("silent node Unknown and tainted", func() (bool, string) {
		n, _ := cs.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
		var taints []string
		for _, tt := range n.Spec.Taints {
			taints = append(taints, tt.Key+":"+string(tt.Effect))
		}
		ready := ""
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				ready = string(c.Status)
			}
		}
		got := ready + " " + strings.Join(taints, ",")
		return got == "Unknown node.kubernetes.io/unreachable:NoSchedule,node.kubernetes.io/unreachable:NoExecute", got
	}))
	poll.Eventually(t, settle, poll.State("pod with a 1 s toleration evicted", func() (bool, string) {
		p, err := cs.CoreV1().Pods("default").Get(ctx, "short", metav1.GetOptions{})
		return err != nil || p.DeletionTimestamp != nil, "still there"
	}))
	for _, name := range []string{"forever", "default"} {
		if p, err := cs.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{}); err != nil || p.DeletionTimestamp != nil {
			t.Errorf("pod %s evicted early: %v", name, err)
		}
	}

	alive.Store(true)
	reportReady()
	poll.Eventually(t, settle, poll.State("taints removed when the node reports again", func() (bool, string) {
		n, _ := cs.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
		return len(n.Spec.Taints) == 0, fmt.Sprintf("taints %v", n.Spec.Taints)
	}))
}
