package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/test/poll"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var getOpts = metav1.GetOptions{}

func nodeReady(n *v1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == v1.NodeReady {
			return c.Status == v1.ConditionTrue
		}
	}
	return false
}

func podReady(p *v1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == v1.PodReady {
			return c.Status == v1.ConditionTrue
		}
	}
	return false
}

// namespace creates a namespace for one test and deletes it afterwards.
func namespace(t *testing.T) string {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 50 {
		name = name[:50]
	}
	_, err := cl.client.CoreV1().Namespaces().Create(context.Background(), &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() {
		_ = cl.client.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	// Pods need the namespace's default ServiceAccount (ServiceAccount
	// admission), which the controller makes right after: wait for it, as
	// upstream's e2e framework does.
	poll.Eventually(t, 30*time.Second, func() error {
		_, err := cl.client.CoreV1().ServiceAccounts(name).Get(context.Background(), "default", getOpts)
		return err
	})
	return name
}

func getPod(t *testing.T, ns, name string) *v1.Pod {
	t.Helper()
	p, err := cl.client.CoreV1().Pods(ns).Get(context.Background(), name, getOpts)
	if err != nil {
		t.Fatalf("get pod %s/%s: %v", ns, name, err)
	}
	return p
}

func createPod(t *testing.T, p *v1.Pod) *v1.Pod {
	t.Helper()
	out, err := cl.client.CoreV1().Pods(p.Namespace).Create(context.Background(), p, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s: %v", p.Name, err)
	}
	return out
}

// waitRunningReady waits for the pod to be Running with Ready=True.
func waitRunningReady(t *testing.T, ns, name string) *v1.Pod {
	t.Helper()
	var p *v1.Pod
	poll.Eventually(t, 60*time.Second, func() error {
		var err error
		p, err = cl.client.CoreV1().Pods(ns).Get(context.Background(), name, getOpts)
		if err != nil {
			return err
		}
		if p.Status.Phase != v1.PodRunning || !podReady(p) {
			return fmt.Errorf("pod %s: phase %s, ready %v, statuses %+v", name, p.Status.Phase, podReady(p), p.Status.ContainerStatuses)
		}
		return nil
	})
	return p
}

// busyboxPod is a one-container pod running a shell script.
func busyboxPod(ns, name, script string) *v1.Pod {
	grace := int64(1)
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1.PodSpec{
			TerminationGracePeriodSeconds: &grace,
			Containers:                    []v1.Container{{Name: "main", Image: busyboxImage, Command: []string{"sh", "-c", script}}},
		},
	}
}

func podEvents(t *testing.T, ns, pod string) []v1.Event {
	t.Helper()
	list, err := cl.client.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + pod})
	if err != nil {
		t.Fatalf("list events: %v", err)
	}
	return list.Items
}

func hasEvent(events []v1.Event, reason, contains string) bool {
	for _, e := range events {
		if e.Reason == reason && strings.Contains(e.Message, contains) {
			return true
		}
	}
	return false
}

// hyphenated is an address as node names in these tests spell it.
func hyphenated(ip string) string { return strings.ReplaceAll(ip, ".", "-") }
