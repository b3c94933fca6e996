package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/skiff-sh/skiff/test/poll"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestStatefulSet scales a StatefulSet up in order and down in reverse,
// keeps its PVCs, and rolls out a template change through kubectl.
func TestStatefulSet(t *testing.T) {
	s := startServer(t)
	cs := s.client()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go fakeNode(ctx, cs, "default")
	manifest := `{"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"db"},"spec":{"serviceName":"db","replicas":3,
"selector":{"matchLabels":{"app":"db"}},
"template":{"metadata":{"labels":{"app":"db"}},"spec":{"containers":[{"name":"c","image":"busybox:1","volumeMounts":[{"name":"data","mountPath":"/data"}]}]}},
"volumeClaimTemplates":[{"metadata":{"name":"data"},"spec":{"accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"1Gi"}}}}]}}`
	if _, errOut, err := s.kubectlStdin(manifest, "apply", "-f", "-"); err != nil {
		t.Fatalf("apply: %v %s", err, errOut)
	}
	s.mustKubectl("rollout", "status", "sts/db", "--timeout=60s")

	pods, _ := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=db"})
	created := map[string]metav1.Time{}
	for _, p := range pods.Items {
		created[p.Name] = p.CreationTimestamp
		if p.Spec.Hostname != p.Name || p.Spec.Subdomain != "db" || p.Spec.Volumes[0].PersistentVolumeClaim.ClaimName != "data-"+p.Name {
			t.Errorf("pod %s: hostname %q subdomain %q volumes %+v", p.Name, p.Spec.Hostname, p.Spec.Subdomain, p.Spec.Volumes)
		}
	}
	if len(created) != 3 {
		t.Fatalf("pods %v", created)
	}
	creates := s.mustKubectl("get", "events", "--field-selector", "involvedObject.name=db,reason=SuccessfulCreate", "--sort-by=.metadata.creationTimestamp", "-o", "custom-columns=M:.message", "--no-headers")
	if i0, i1, i2 := strings.Index(creates, "Pod db-0 "), strings.Index(creates, "Pod db-1 "), strings.Index(creates, "Pod db-2 "); !(i0 >= 0 && i0 < i1 && i1 < i2) {
		t.Errorf("pods not created in order:\n%s", creates)
	}
	for i := range 3 {
		if _, err := cs.CoreV1().PersistentVolumeClaims("default").Get(ctx, fmt.Sprintf("data-db-%d", i), metav1.GetOptions{}); err != nil {
			t.Errorf("claim %d: %v", i, err)
		}
	}

	s.mustKubectl("scale", "sts/db", "--replicas=1")
	poll.Eventually(t, settle, poll.State("scaled down to db-0", func() (bool, string) {
		l, _ := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=db"})
		var names []string
		for _, p := range l.Items {
			names = append(names, p.Name)
		}
		return len(names) == 1 && names[0] == "db-0", strings.Join(names, ",")
	}))
	deletes := s.mustKubectl("get", "events", "--field-selector", "involvedObject.name=db,reason=SuccessfulDelete", "-o", "custom-columns=M:.message", "--no-headers")
	if i2, i1 := strings.Index(deletes, "Pod db-2 "), strings.Index(deletes, "Pod db-1 "); !(i2 >= 0 && i1 > i2) {
		t.Errorf("pods not deleted in reverse order:\n%s", deletes)
	}
	if l, _ := cs.CoreV1().PersistentVolumeClaims("default").List(ctx, metav1.ListOptions{}); len(l.Items) != 3 {
		t.Errorf("claims after scale-down: %d, want all 3 kept", len(l.Items))
	}

	s.mustKubectl("scale", "sts/db", "--replicas=3")
	s.mustKubectl("rollout", "status", "sts/db", "--timeout=60s")
	s.mustKubectl("set", "image", "sts/db", "c=busybox:2")
	s.mustKubectl("rollout", "status", "sts/db", "--timeout=60s")
	l, _ := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=db"})
	for _, p := range l.Items {
		if p.Spec.Containers[0].Image != "busybox:2" {
			t.Errorf("pod %s still runs %s", p.Name, p.Spec.Containers[0].Image)
		}
	}
	if got := s.mustKubectl("get", "sts", "db", "-o", "jsonpath={.status.currentRevision}={.status.updateRevision}"); strings.Count(got, "db-") != 2 || got[:strings.Index(got, "=")] != got[strings.Index(got, "=")+1:] {
		t.Errorf("revisions after the rollout: %s", got)
	}
	if hist := s.mustKubectl("rollout", "history", "sts/db"); !strings.Contains(hist, "1 ") || !strings.Contains(hist, "2 ") {
		t.Errorf("history:\n%s", hist)
	}
}

// A StatefulSet adopts an orphan pod that carries one of its names and
// matches its selector instead of creating a second one, and releases a
// pod whose labels leave the selector. (OnDelete: with RollingUpdate the
// adopted pod, lacking the set's revision label, would be replaced.)
func TestStatefulSetAdoptsOrphans(t *testing.T) {
	s := startServer(t)
	cs := s.client()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go fakeNode(ctx, cs, "default")
	orphan, err := cs.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-0", Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox:1"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	manifest := `{"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"web"},"spec":{"serviceName":"web","replicas":1,"updateStrategy":{"type":"OnDelete"},
"selector":{"matchLabels":{"app":"web"}},
"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"c","image":"busybox:1"}]}}}}`
	if _, errOut, err := s.kubectlStdin(manifest, "apply", "-f", "-"); err != nil {
		t.Fatalf("apply: %v %s", err, errOut)
	}
	poll.Eventually(t, settle, poll.State("web-0 adopted", func() (bool, string) {
		p, err := cs.CoreV1().Pods("default").Get(ctx, "web-0", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		ref := metav1.GetControllerOf(p)
		return p.UID == orphan.UID && ref != nil && ref.Kind == "StatefulSet" && ref.Name == "web", fmt.Sprintf("uid %s owner %+v", p.UID, ref)
	}))
	// Relabelled out of the selector: released, and a new web-0 cannot take
	// the name while the old pod holds it, so the released pod stays.
	if _, err := cs.CoreV1().Pods("default").Patch(ctx, "web-0", "application/merge-patch+json", []byte(`{"metadata":{"labels":{"app":"other"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, settle, poll.State("web-0 released", func() (bool, string) {
		p, err := cs.CoreV1().Pods("default").Get(ctx, "web-0", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return metav1.GetControllerOf(p) == nil, fmt.Sprintf("owner %+v", p.OwnerReferences)
	}))
}
