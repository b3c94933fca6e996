package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/test/poll"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// fakeNode plays the kubelet until ctx ends: every pod without the label
// stuck=true is reported Running and Ready a moment after it appears.
func fakeNode(ctx context.Context, cs *kubernetes.Clientset, ns string) {
	for ctx.Err() == nil {
		l, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "stuck!=true"})
		if err == nil {
			for _, p := range l.Items {
				if p.Status.Phase == corev1.PodRunning || p.DeletionTimestamp != nil {
					continue
				}
				p.Status.Phase = corev1.PodRunning
				p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
				cs.CoreV1().Pods(ns).UpdateStatus(ctx, &p, metav1.UpdateOptions{})
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestDeploymentRollouts drives Deployments through real kubectl: rollout,
// history, undo, pause and resume, scaling, Recreate, and a rollout that
// exceeds its progress deadline.
func TestDeploymentRollouts(t *testing.T) {
	s := startServer(t)
	cs := s.client()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go fakeNode(ctx, cs, "default")
	rsCount := func(d string) int {
		out := s.mustKubectl("get", "rs", "-l", "app="+d, "-o", "name")
		return len(strings.Fields(out))
	}

	s.mustKubectl("create", "deploy", "web", "--image=busybox:1", "--replicas=3")
	s.mustKubectl("rollout", "status", "deploy/web", "--timeout=60s")
	if got := s.mustKubectl("get", "deploy", "web", "-o", "jsonpath={.status.readyReplicas}/{.status.updatedReplicas}/{.metadata.annotations.deployment\\.kubernetes\\.io/revision}"); got != "3/3/1" {
		t.Errorf("after the first rollout: %s", got)
	}

	t.Run("rolling update and history", func(t *testing.T) {
		s.mustKubectl("set", "image", "deploy/web", "busybox=busybox:2")
		s.mustKubectl("rollout", "status", "deploy/web", "--timeout=60s")
		if n := rsCount("web"); n != 2 {
			t.Errorf("%d ReplicaSets after an image change, want 2", n)
		}
		sizes := s.mustKubectl("get", "rs", "-l", "app=web", "--sort-by=.metadata.annotations.deployment\\.kubernetes\\.io/revision", "-o", "jsonpath={range .items[*]}{.spec.replicas} {end}")
		if strings.TrimSpace(sizes) != "0 3" {
			t.Errorf("ReplicaSet sizes by revision: %q, want old 0, new 3", sizes)
		}
		hist := s.mustKubectl("rollout", "history", "deploy/web")
		if !strings.Contains(hist, "1 ") || !strings.Contains(hist, "2 ") {
			t.Errorf("history:\n%s", hist)
		}
		events := s.mustKubectl("get", "events", "--field-selector", "involvedObject.name=web", "-o", "custom-columns=M:.message", "--no-headers")
		if !strings.Contains(events, "Scaled up replica set") || !strings.Contains(events, "Scaled down replica set") {
			t.Errorf("events:\n%s", events)
		}
	})

	t.Run("undo to a revision", func(t *testing.T) {
		s.mustKubectl("rollout", "undo", "deploy/web", "--to-revision=1")
		s.mustKubectl("rollout", "status", "deploy/web", "--timeout=60s")
		if img := s.mustKubectl("get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}"); img != "busybox:1" {
			t.Errorf("image after undo: %s", img)
		}
		if rev := s.mustKubectl("get", "deploy", "web", "-o", "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}"); rev != "3" {
			t.Errorf("revision after undo: %s, want 3", rev)
		}
		if n := rsCount("web"); n != 2 {
			t.Errorf("undo made a new ReplicaSet instead of reusing revision 1's: %d", n)
		}
	})

	t.Run("pause and resume", func(t *testing.T) {
		s.mustKubectl("rollout", "pause", "deploy/web")
		s.mustKubectl("set", "image", "deploy/web", "busybox=busybox:3")
		time.Sleep(time.Second)
		if n := rsCount("web"); n != 2 {
			t.Errorf("a paused Deployment rolled out: %d ReplicaSets", n)
		}
		s.mustKubectl("rollout", "resume", "deploy/web")
		s.mustKubectl("rollout", "status", "deploy/web", "--timeout=60s")
		if n := rsCount("web"); n != 3 {
			t.Errorf("after resume: %d ReplicaSets, want 3", n)
		}
	})

	t.Run("scale", func(t *testing.T) {
		s.mustKubectl("scale", "deploy/web", "--replicas=5")
		s.mustKubectl("rollout", "status", "deploy/web", "--timeout=60s")
		if got := s.mustKubectl("get", "deploy", "web", "-o", "jsonpath={.status.availableReplicas}"); got != "5" {
			t.Errorf("available after scaling to 5: %s", got)
		}
	})

	t.Run("recreate", func(t *testing.T) {
		s.mustKubectl("create", "deploy", "rec", "--image=busybox:1", "--replicas=2")
		s.mustKubectl("patch", "deploy", "rec", "--type=merge", "-p", `{"spec":{"strategy":{"type":"Recreate","rollingUpdate":null}}}`)
		s.mustKubectl("rollout", "status", "deploy/rec", "--timeout=60s")
		s.mustKubectl("set", "image", "deploy/rec", "busybox=busybox:2")
		s.mustKubectl("rollout", "status", "deploy/rec", "--timeout=60s")
		sizes := s.mustKubectl("get", "rs", "-l", "app=rec", "--sort-by=.metadata.annotations.deployment\\.kubernetes\\.io/revision", "-o", "jsonpath={range .items[*]}{.spec.replicas} {end}")
		if strings.TrimSpace(sizes) != "0 2" {
			t.Errorf("Recreate ReplicaSet sizes: %q", sizes)
		}
	})

	t.Run("progress deadline", func(t *testing.T) {
		s.mustKubectl("create", "deploy", "stuck", "--image=busybox", "--replicas=1")
		s.mustKubectl("patch", "deploy", "stuck", "--type=merge", "-p", `{"spec":{"progressDeadlineSeconds":2,"template":{"metadata":{"labels":{"stuck":"true"}}}}}`)
		_, errOut, err := s.kubectl("rollout", "status", "deploy/stuck", "--timeout=60s")
		if err == nil || !strings.Contains(errOut, "exceeded its progress deadline") {
			t.Errorf("rollout status of a stuck Deployment: %v %s", err, errOut)
		}
		reason := s.mustKubectl("get", "deploy", "stuck", "-o", `jsonpath={.status.conditions[?(@.type=="Progressing")].reason}`)
		if reason != "ProgressDeadlineExceeded" {
			t.Errorf("Progressing reason %q", reason)
		}
	})
}

// TestPodDisruptionBudgetStatus checks PDB status for a Deployment's pods.
func TestPodDisruptionBudgetStatus(t *testing.T) {
	s := startServer(t)
	cs := s.client()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go fakeNode(ctx, cs, "default")
	s.mustKubectl("create", "deploy", "guarded", "--image=busybox", "--replicas=3")
	s.mustKubectl("create", "pdb", "guard", "--selector=app=guarded", "--min-available=2")
	poll.Eventually(t, settle, poll.State("PDB status", func() (bool, string) {
		got := s.mustKubectl("get", "pdb", "guard", "-o", "jsonpath={.status.expectedPods}/{.status.currentHealthy}/{.status.desiredHealthy}/{.status.disruptionsAllowed}")
		return got == "3/3/2/1", got
	}))
	if out := s.mustKubectl("get", "pdb", "guard"); !strings.Contains(out, "guard   2               N/A               1") {
		t.Errorf("kubectl get pdb:\n%s", out)
	}
}
