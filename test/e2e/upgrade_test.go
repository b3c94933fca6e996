package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-sh/skiff/test/poll"
)

// previousCommit is what the previous skiff's /version reports (its
// Makefile stamps the commit's first seven digits).
func previousCommit(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile("previous/commit")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(raw))[:7]
}

// kubectl runs this skiff's kubectl against h from inside its namespace
// and answers what it printed on stdout (stderr goes into the error).
func (h *haServer) kubectl(stdin string, args ...string) (string, error) {
	argv := append([]string{"--net=/var/run/netns/" + h.netns, skiffBin, "kubectl", "--kubeconfig", filepath.Join(h.dir, "admin.kubeconfig")}, args...)
	cmd := exec.Command("nsenter", argv...)
	cmd.Stdin = strings.NewReader(stdin)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%w: %s", err, stderr.String())
	}
	return string(out), nil
}

func (h *haServer) gitCommit(t *testing.T) string {
	t.Helper()
	v, err := h.client(t).Discovery().ServerVersion()
	if err != nil {
		t.Fatalf("version of %s: %v", h.ip, err)
	}
	return v.GitCommit
}

const upgradeCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: boats.upgrade.skiff.test}
spec:
  group: upgrade.skiff.test
  scope: Namespaced
  names: {plural: boats, singular: boat, kind: Boat}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              length: {type: integer, minimum: 1}
`

// TestRollingUpgrade: three servers and a node agent of the previous skiff
// version (built from the repository's history, test/e2e/previous) are
// upgraded to this one a server at a time, under writes, as docs/ha.md
// tells operators to. While the versions run side by side each serves
// what the other wrote (ConfigMaps, Secrets, custom objects), Service
// addresses stay unique, the controllers keep working wherever their lease
// is, and a key rotation waits for the older servers and stops, changing
// nothing they cannot read. At the end no acknowledged write is lost, the
// pod kept its container through the servers' and its agent's upgrade,
// and a rotation reaches every server.
func TestRollingUpgrade(t *testing.T) {
	previous := os.Getenv("SKIFF_PREVIOUS_BIN")
	if previous == "" {
		t.Fatal("SKIFF_PREVIOUS_BIN is not set: `make e2e` builds the previous skiff (test/e2e/previous/build.sh) and names it")
	}
	oldCommit := previousCommit(t)
	hn := newHANet(t, "upg", "10.81.0")
	servers := hn.servers(3)
	first := servers[0]
	first.bin, first.args = previous, []string{"--cluster-init"}
	first.start(t)
	first.waitReady(t, 60*time.Second)
	token, err := os.ReadFile(filepath.Join(first.dir, "server-token"))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range servers[1:] {
		h.bin, h.args = previous, []string{"--server", "https://10.81.0.1:6443", "--token", strings.TrimSpace(string(token))}
		h.start(t)
		h.waitReady(t, 90*time.Second)
	}
	for _, h := range servers {
		if got := h.gitCommit(t); got != oldCommit {
			t.Fatalf("server %s runs %q, not the previous skiff %s", h.ip, got, oldCommit)
		}
	}
	ctx := context.Background()
	nodeTok, _ := os.ReadFile(filepath.Join(first.dir, "node-token"))
	hn.nodeToken = strings.TrimSpace(string(nodeTok))
	agent := hn.agent(func() kubernetes.Interface { return servers[1].client(t) }, "a1", "upg-node", 10,
		"https://10.81.0.1:6443,https://10.81.0.2:6443,https://10.81.0.3:6443", previous)

	// What the old version holds before the upgrade: a pod, a Deployment,
	// a Secret, a custom resource and its object.
	cs := servers[1].client(t)
	steady := busyboxPod("default", "steady", "while true; do sleep 1; done")
	steady.Spec.NodeName = "upg-node"
	if _, err := cs.CoreV1().Pods("default").Create(ctx, steady, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var before *v1.Pod
	poll.Eventually(t, 60*time.Second, func() (err error) { before, err = runningPodIn(cs, "default", "steady"); return err })
	one := int32(1)
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: appsv1.DeploymentSpec{Replicas: &one,
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		Template: v1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}}, Spec: busyboxPod("", "", "while true; do sleep 1; done").Spec}}}
	if _, err := cs.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Secrets("default").Create(ctx, &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "old-secret"}, StringData: map[string]string{"v": "from-old"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if out, err := servers[0].kubectl(upgradeCRD, "apply", "-f", "-"); err != nil {
		t.Fatalf("CRD: %v %s", err, out)
	}
	poll.Eventually(t, 30*time.Second, func() error {
		out, err := servers[2].kubectl("apiVersion: upgrade.skiff.test/v1\nkind: Boat\nmetadata: {name: old-boat, namespace: default}\nspec: {length: 7}\n", "apply", "-f", "-")
		if err != nil {
			return fmt.Errorf("%v %s", err, out)
		}
		return nil
	})

	// Writers through every server, all through the upgrade.
	var clients []kubernetes.Interface
	for w := range 6 {
		clients = append(clients, servers[w%3].client(t))
	}
	load := startWrites(clients, 20*time.Millisecond)

	for i, h := range servers {
		upgradeAt := time.Now()
		h.stop()
		h.bin, h.args = skiffBin, nil
		h.start(t)
		h.waitReady(t, 90*time.Second)
		t.Logf("server %s upgraded: ready %s after it was stopped", h.ip, time.Since(upgradeAt).Round(time.Millisecond))
		if got := h.gitCommit(t); got == oldCommit {
			t.Fatalf("server %s still reports the previous commit %s", h.ip, got)
		}
		if i < len(servers)-1 {
			mixedVersions(t, h, servers[i+1], i)
		}
	}
	n, failed := load.finish(t, servers[0])
	t.Logf("%d acknowledged writes through the upgrade, all present; %d failed while their server restarted", n, failed)

	// The node agent last (agents may be older than their servers, never
	// newer): its pod keeps its container.
	agent.stop()
	agent.bin = skiffBin
	agent.start(t)
	cs = servers[2].client(t)
	poll.Eventually(t, 60*time.Second, func() error {
		n, err := cs.CoreV1().Nodes().Get(ctx, "upg-node", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if !nodeReady(n) {
			return fmt.Errorf("upg-node after its upgrade: %+v", n.Status.Conditions)
		}
		return nil
	})
	poll.Eventually(t, 60*time.Second, func() error {
		after, err := runningPodIn(cs, "default", "steady")
		if err != nil {
			return err
		}
		if after.Status.ContainerStatuses[0].ContainerID != before.Status.ContainerStatuses[0].ContainerID || after.Status.ContainerStatuses[0].RestartCount != 0 {
			return fmt.Errorf("the pod did not keep its container through the upgrade: %+v, was %+v", after.Status.ContainerStatuses[0], before.Status.ContainerStatuses[0])
		}
		return nil
	})
	for _, name := range []string{"old-secret", "mixed-secret-0", "mixed-secret-1"} {
		if s, err := cs.CoreV1().Secrets("default").Get(ctx, name, metav1.GetOptions{}); err != nil || len(s.Data["v"]) == 0 {
			t.Errorf("secret %s after the upgrade: %v %v", name, s, err)
		}
	}
	// Every server runs this version now: a rotation reaches them all.
	out, err := servers[0].secretsEncrypt("rotate")
	if err != nil {
		t.Fatalf("rotate after the upgrade: %v\n%s", err, out)
	}
	key := statusLine(out, "Write key:")
	st, err := servers[2].secretsEncrypt("status")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range servers {
		if !strings.Contains(st, fmt.Sprintf("Server %s: %s", h.ip, key)) {
			t.Errorf("server %s does not hold %s after the rotation:\n%s", h.ip, key, st)
		}
	}
	if s, err := servers[1].client(t).CoreV1().Secrets("default").Get(ctx, "old-secret", metav1.GetOptions{}); err != nil || string(s.Data["v"]) != "from-old" {
		t.Errorf("old-secret after the rotation: %v %v", s, err)
	}
	for _, h := range servers {
		h.stop()
	}
}

// mixedVersions checks a cluster whose server upgraded runs this version
// and older runs the previous one (round i of the upgrade).
func mixedVersions(t *testing.T, upgraded, older *haServer, i int) {
	t.Helper()
	ctx := context.Background()
	up, old := upgraded.client(t), older.client(t)
	// Each reads what the other writes.
	for _, c := range []struct {
		from, to kubernetes.Interface
		name     string
	}{{up, old, fmt.Sprintf("from-new-%d", i)}, {old, up, fmt.Sprintf("from-old-%d", i)}} {
		if _, err := c.from.CoreV1().ConfigMaps("default").Create(ctx, &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: c.name}, Data: map[string]string{"k": c.name}}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("write %s: %v", c.name, err)
		}
		poll.Eventually(t, 10*time.Second, func() error {
			got, err := c.to.CoreV1().ConfigMaps("default").Get(ctx, c.name, metav1.GetOptions{})
			if err != nil || got.Data["k"] != c.name {
				return fmt.Errorf("%s read through the other version: %v %v", c.name, got, err)
			}
			return nil
		})
	}
	secret := fmt.Sprintf("mixed-secret-%d", i)
	if _, err := up.CoreV1().Secrets("default").Create(ctx, &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: secret}, StringData: map[string]string{"v": secret}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{secret: secret, "old-secret": "from-old"} {
		if s, err := old.CoreV1().Secrets("default").Get(ctx, name, metav1.GetOptions{}); err != nil || string(s.Data["v"]) != want {
			t.Errorf("secret %s through the previous version: %v %v", name, s, err)
		}
	}
	if out, err := upgraded.kubectl("", "get", "boat", "old-boat", "-o", "jsonpath={.spec.length}"); err != nil || out != "7" {
		t.Errorf("the custom object through the new version: %v %q", err, out)
	}
	// Service addresses come from one allocation, whichever version
	// assigns them.
	ips := map[string]string{}
	for j, c := range []kubernetes.Interface{up, old, up, old} {
		svc := &v1.Service{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("mixed-%d-%d", i, j)}, Spec: v1.ServiceSpec{Ports: []v1.ServicePort{{Port: 80}}}}
		got, err := c.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if other, dup := ips[got.Spec.ClusterIP]; dup {
			t.Errorf("%s and %s share the address %s", other, got.Name, got.Spec.ClusterIP)
		}
		ips[got.Spec.ClusterIP] = got.Name
	}
	// The controllers go on, on whichever server holds their lease: the
	// Deployment scaled through the new version gets its pods.
	replicas := int32(i + 2)
	scale, err := up.AppsV1().Deployments("default").GetScale(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	scale.Spec.Replicas = replicas
	if _, err := up.AppsV1().Deployments("default").UpdateScale(ctx, "web", scale, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 90*time.Second, func() error {
		d, err := old.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil || d.Status.ReadyReplicas != replicas {
			return fmt.Errorf("web: %+v %v", d.Status, err)
		}
		return nil
	})
	if i == 0 {
		// A rotation while an older server runs waits for it to load
		// the new key and stops without sealing anything with it.
		before, err := upgraded.secretsEncrypt("status")
		if err != nil {
			t.Fatalf("status: %v\n%s", err, before)
		}
		out, err := upgraded.secretsEncrypt("rotate", "--server-wait", "5s")
		t.Logf("a rotation beside the previous version: %v\n%s", err, out)
		if err == nil || !strings.Contains(out, older.ip) || !strings.Contains(out, "every Secret still reads on every server") {
			t.Errorf("a rotation beside the previous version: %v\n%s", err, out)
		}
		if s, err := old.CoreV1().Secrets("default").Get(ctx, secret, metav1.GetOptions{}); err != nil || string(s.Data["v"]) != secret {
			t.Errorf("%s after the stopped rotation: %v %v", secret, s, err)
		}
		st, err := upgraded.secretsEncrypt("status")
		if key := statusLine(before, "Write key:"); err != nil || statusLine(st, "Write key:") != key || !strings.Contains(st, "Secrets sealed with "+key+": 2") {
			t.Errorf("after the stopped rotation (before it:\n%s):\n%v\n%s", before, err, st)
		}
	}
}

// runningPodIn is the pod once its first container runs.
func runningPodIn(cs kubernetes.Interface, ns, name string) (*v1.Pod, error) {
	p, err := cs.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	if p.Status.Phase != v1.PodRunning || len(p.Status.ContainerStatuses) == 0 || p.Status.ContainerStatuses[0].State.Running == nil {
		return nil, fmt.Errorf("pod %s: %s %+v", name, p.Status.Phase, p.Status.ContainerStatuses)
	}
	return p, nil
}
