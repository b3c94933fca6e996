package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
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
	const image = "skiff.test/incluster:1"
	programImage(t, "incluster", image)

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

// TestNodeAPIAuthorization: the node agent's HTTPS API asks the API server
// who a token is and what it may do: a ServiceAccount granted nodes/stats
// reads /stats/summary and nothing else there; one without the grant and a
// request without credentials are refused.
func TestNodeAPIAuthorization(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	for _, sa := range []string{"stats-reader", "nobody"} {
		if _, err := cl.client.CoreV1().ServiceAccounts(ns).Create(ctx, &v1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	role := "e2e-node-stats-" + ns
	if _, err := cl.client.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: role},
		Rules: []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"nodes/stats"}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cl.client.RbacV1().ClusterRoles().Delete(context.Background(), role, metav1.DeleteOptions{})
	})
	if _, err := cl.client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: role},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "stats-reader", Namespace: ns}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cl.client.RbacV1().ClusterRoleBindings().Delete(context.Background(), role, metav1.DeleteOptions{})
	})
	token := func(sa string) string {
		tr, err := cl.client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authnv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: cl.dialInNetns, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	get := func(path, tok string) int {
		req, _ := http.NewRequest("GET", "https://"+cl.nodeIP+":10250"+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	reader, nobody := token("stats-reader"), token("nobody")
	poll.Eventually(t, 20*time.Second, func() error {
		if code := get("/stats/summary", reader); code != http.StatusOK {
			return fmt.Errorf("stats with nodes/stats: %d", code)
		}
		return nil
	})
	for _, c := range []struct {
		path, tok string
		want      int
	}{
		{"/pods", reader, http.StatusForbidden},
		{"/stats/summary", nobody, http.StatusForbidden},
		{"/stats/summary", "", http.StatusUnauthorized},
		{"/stats/summary", "forged", http.StatusUnauthorized},
	} {
		if code := get(c.path, c.tok); code != c.want {
			t.Errorf("GET %s with token %.8q: %d, want %d", c.path, c.tok, code, c.want)
		}
	}
}

// programImage builds the Go program ./testdata/<name> (static) into an
// image whose entrypoint it is, and imports it into the cluster's node.
func programImage(t *testing.T, name, image string) {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(root, name), "./testdata/"+name)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, out)
	}
	tar := filepath.Join(dir, name+".tar")
	if out, err := cl.skiff("images", "build", "--tag", image, "--from", root, "--entrypoint", "/"+name, "-o", tar); err != nil {
		t.Fatalf("image: %v %s", err, out)
	}
	if out, err := cl.skiff("images", "import", "--data-dir", cl.dataDir, tar); err != nil {
		t.Fatalf("import: %v %s", err, out)
	}
}
