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

	v1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/test/poll"
)

// TestInClusterClient: an unmodified in-cluster client-go program (built
// here as a static binary, imported as an image) lists pods in its
// namespace, which a Role lets its ServiceAccount do, is refused in
// kube-system, and keeps working after the node renewed its token (the
// e2e cluster renews projected tokens every 15 s).
func TestInClusterClient(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(root, "incluster"), "./testdata/incluster")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the in-cluster program: %v\n%s", err, out)
	}
	const image = "skiff.test/incluster:1"
	tar := filepath.Join(dir, "incluster.tar")
	if out, err := cl.skiff("images", "build", "--tag", image, "--from", root, "--entrypoint", "/incluster", "-o", tar); err != nil {
		t.Fatalf("image: %v %s", err, out)
	}
	if out, err := cl.skiff("images", "import", "--data-dir", cl.dataDir, tar); err != nil {
		t.Fatalf("import: %v %s", err, out)
	}

	ctx := context.Background()
	ns := namespace(t)
	if _, err := cl.client.CoreV1().ServiceAccounts(ns).Create(ctx, &v1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "reader"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.client.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "pod-lister"},
		Rules: []rbacv1.PolicyRule{{Verbs: []string{"list"}, APIGroups: []string{""}, Resources: []string{"pods"}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.client.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "reader-lists"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "pod-lister"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "reader", Namespace: ns}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	grace := int64(1)
	createPod(t, &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "client", Namespace: ns}, Spec: v1.PodSpec{
		ServiceAccountName: "reader", TerminationGracePeriodSeconds: &grace,
		Containers: []v1.Container{{Name: "main", Image: image, ImagePullPolicy: v1.PullNever}},
	}})
	p := waitRunningReady(t, ns, "client")
	mounted := false
	for _, m := range p.Spec.Containers[0].VolumeMounts {
		mounted = mounted || (m.MountPath == "/var/run/secrets/kubernetes.io/serviceaccount" && strings.HasPrefix(m.Name, "kube-api-access-"))
	}
	if !mounted {
		t.Errorf("no kube-api-access volume mounted: %+v", p.Spec.Containers[0].VolumeMounts)
	}
	// Two tokens seen, and the lists after the second still allowed.
	poll.Eventually(t, 90*time.Second, func() error {
		out, err := cl.skiff("kubectl", "-n", ns, "logs", "client")
		if err != nil {
			return fmt.Errorf("logs: %v %s", err, out)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		var tokens []string
		lastOwn, lastSystem := "", ""
		for _, l := range lines {
			switch {
			case strings.HasPrefix(l, "token: "):
				if id := strings.TrimPrefix(l, "token: "); len(tokens) == 0 || tokens[len(tokens)-1] != id {
					tokens = append(tokens, id)
				}
			case strings.HasPrefix(l, "own: "):
				lastOwn = l
				if len(tokens) >= 2 && l != "own: 1 pods" {
					return fmt.Errorf("after the renewal: %q", l)
				}
			case strings.HasPrefix(l, "kube-system: "):
				lastSystem = l
			}
		}
		if lastOwn != "own: 1 pods" || lastSystem != "kube-system: forbidden" {
			return fmt.Errorf("last results %q, %q; output:\n%s", lastOwn, lastSystem, out)
		}
		if len(tokens) < 3 {
			return fmt.Errorf("tokens seen %v: not renewed twice yet", tokens)
		}
		return nil
	})
}
