package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/test/poll"
)

// TestKubectlEverydayCommands drives the real kubectl through the commands
// a user types every day and checks what they print and store.
func TestKubectlEverydayCommands(t *testing.T) {
	s := startServer(t)

	out := s.mustKubectl("apply", "-f", "testdata/app.yaml")
	for _, want := range []string{"namespace/demo created", "configmap/web-config created", "secret/web-secret created", "deployment.apps/web created", "service/web created"} {
		if !strings.Contains(out, want) {
			t.Errorf("apply output lacks %q:\n%s", want, out)
		}
	}

	t.Run("version", func(t *testing.T) {
		// The embedded kubectl carries the release of its module, stamped
		// at build time; unstamped, kubectl cannot parse it and exits 1.
		var v struct {
			ClientVersion, ServerVersion struct{ GitVersion, Major, Minor string }
		}
		if err := json.Unmarshal([]byte(s.mustKubectl("version", "-o", "json")), &v); err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`^v1\.\d+\.\d+\+skiff$`).MatchString(v.ClientVersion.GitVersion) || v.ClientVersion.Major != "1" ||
			v.ClientVersion.GitVersion != v.ServerVersion.GitVersion {
			t.Errorf("kubectl version: client %+v, server %+v", v.ClientVersion, v.ServerVersion)
		}
	})

	t.Run("get output formats", func(t *testing.T) {
		wide := s.mustKubectl("get", "deploy", "-n", "demo", "-o", "wide")
		if !regexp.MustCompile(`(?m)^NAME\s+READY\s+UP-TO-DATE\s+AVAILABLE\s+AGE\s+CONTAINERS\s+IMAGES\s+SELECTOR$`).MatchString(wide) ||
			!regexp.MustCompile(`(?m)^web\s+0/2\s+\d\s+0\s+\S+\s+web\s+busybox:1.36\s+app=web$`).MatchString(wide) {
			t.Errorf("get -o wide:\n%s", wide)
		}
		svc := s.mustKubectl("get", "svc", "web", "-n", "demo")
		if !regexp.MustCompile(`(?m)^web\s+ClusterIP\s+10\.43\.\d+\.\d+\s+<none>\s+80/TCP\s+\S+$`).MatchString(svc) {
			t.Errorf("get svc:\n%s", svc)
		}
		y := s.mustKubectl("get", "deploy", "web", "-n", "demo", "-o", "yaml")
		for _, want := range []string{"kind: Deployment", "revisionHistoryLimit: 10", "progressDeadlineSeconds: 600", "terminationMessagePath: /dev/termination-log", "generation: 1"} {
			if !strings.Contains(y, want) {
				t.Errorf("-o yaml lacks %q", want)
			}
		}
		var obj map[string]any
		if err := json.Unmarshal([]byte(s.mustKubectl("get", "secret", "web-secret", "-n", "demo", "-o", "json")), &obj); err != nil {
			t.Fatalf("-o json: %v", err)
		}
		if obj["data"].(map[string]any)["password"] != "czNjcmV0" || obj["type"] != "Opaque" {
			t.Errorf("secret: %v", obj)
		}
		if got := s.mustKubectl("get", "cm", "web-config", "-n", "demo", "-o", "jsonpath={.data.greeting}"); got != "hello" {
			t.Errorf("jsonpath: %q", got)
		}
		cc := s.mustKubectl("get", "svc", "-n", "demo", "-o", "custom-columns=NAME:.metadata.name,PORT:.spec.ports[0].port")
		if !regexp.MustCompile(`(?m)^web\s+80$`).MatchString(cc) {
			t.Errorf("custom-columns:\n%s", cc)
		}
		if got := s.mustKubectl("get", "cm", "-n", "demo", "-o", "name"); !strings.Contains(got, "configmap/web-config\n") {
			t.Errorf("-o name: %q", got)
		}
		ns := s.mustKubectl("get", "ns")
		for _, n := range []string{"default", "kube-system", "kube-public", "kube-node-lease", "demo"} {
			if !regexp.MustCompile(`(?m)^` + n + `\s+Active\s+`).MatchString(ns) {
				t.Errorf("namespace %s missing:\n%s", n, ns)
			}
		}
	})

	t.Run("describe", func(t *testing.T) {
		d := s.mustKubectl("describe", "deployment", "web", "-n", "demo")
		for _, want := range []string{"Name:                   web", "Namespace:              demo", "Replicas:               2 desired", "StrategyType:           RollingUpdate", "Image:         busybox:1.36"} {
			if !strings.Contains(d, want) {
				t.Errorf("describe lacks %q:\n%s", want, d)
			}
		}
	})

	t.Run("label annotate scale", func(t *testing.T) {
		s.mustKubectl("label", "deploy", "web", "-n", "demo", "tier=front")
		s.mustKubectl("annotate", "deploy", "web", "-n", "demo", "note=hello")
		if out := s.mustKubectl("scale", "deploy", "web", "-n", "demo", "--replicas=5"); !strings.Contains(out, "scaled") {
			t.Errorf("scale: %s", out)
		}
		got := s.mustKubectl("get", "deploy", "web", "-n", "demo", "-o", "jsonpath={.spec.replicas} {.metadata.labels.tier} {.metadata.annotations.note} {.metadata.generation}")
		if got != "5 front hello 2" {
			t.Errorf("after label/annotate/scale: %q", got)
		}
		// The scale subresource has upstream's Table columns.
		table := strings.Fields(s.mustKubectl("get", "deploy", "web", "-n", "demo", "--subresource=scale"))
		if len(table) != 8 || strings.Join(table[:4], " ") != "NAME DESIRED AVAILABLE AGE" || table[4] != "web" || table[5] != "5" {
			t.Errorf("kubectl get --subresource=scale: %q", table)
		}
		if _, _, err := s.kubectl("label", "deploy", "web", "-n", "demo", "bad key=x"); err == nil {
			t.Error("invalid label key accepted")
		}
	})

	t.Run("patch three kinds", func(t *testing.T) {
		s.mustKubectl("patch", "deploy", "web", "-n", "demo", "--type=merge", "-p", `{"spec":{"replicas":3}}`)
		s.mustKubectl("patch", "deploy", "web", "-n", "demo", "--type=json", "-p", `[{"op":"replace","path":"/spec/minReadySeconds","value":4}]`)
		s.mustKubectl("patch", "deploy", "web", "-n", "demo", "-p", `{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"busybox:1.37"}]}}}}`)
		got := s.mustKubectl("get", "deploy", "web", "-n", "demo", "-o", "jsonpath={.spec.replicas} {.spec.minReadySeconds} {.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].ports[0].name}")
		if got != "3 4 busybox:1.37 http" {
			t.Errorf("after patches: %q (strategic merge must keep the port of the merged container)", got)
		}
	})

	t.Run("edit with EDITOR", func(t *testing.T) {
		cmd := exec.Command(skiffBin, "kubectl", "--kubeconfig", s.kubeconfig, "edit", "cm", "web-config", "-n", "demo")
		cmd.Env = append(os.Environ(), "KUBECONFIG=", "EDITOR=sed -i s/hello/bonjour/", "HOME="+s.dataDir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("edit: %v\n%s", err, out)
		}
		if got := s.mustKubectl("get", "cm", "web-config", "-n", "demo", "-o", "jsonpath={.data.greeting}"); got != "bonjour" {
			t.Errorf("after edit: %q", got)
		}
	})

	t.Run("server-side apply conflicts", func(t *testing.T) {
		dir := t.TempDir()
		write := func(name, value string) string {
			p := filepath.Join(dir, name)
			os.WriteFile(p, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: owned\n  namespace: demo\ndata:\n  key: \""+value+"\"\n"), 0o644)
			return p
		}
		s.mustKubectl("apply", "--server-side", "--field-manager=alice", "-f", write("a.yaml", "1"))
		_, errOut, err := s.kubectl("apply", "--server-side", "--field-manager=bob", "-f", write("b.yaml", "2"))
		if err == nil || !strings.Contains(errOut, `conflict with "alice"`) || !strings.Contains(errOut, ".data.key") {
			t.Fatalf("want a conflict with alice on .data.key, got err=%v:\n%s", err, errOut)
		}
		s.mustKubectl("apply", "--server-side", "--field-manager=bob", "--force-conflicts", "-f", write("b.yaml", "2"))
		got := s.mustKubectl("get", "cm", "owned", "-n", "demo", "-o", "jsonpath={.data.key} {.metadata.managedFields[*].manager}")
		if got != "2 bob" {
			t.Errorf("after forced apply: %q", got)
		}
	})

	t.Run("diff", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "cm.yaml")
		os.WriteFile(p, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: owned\n  namespace: demo\ndata:\n  key: \"3\"\n"), 0o644)
		out, _, err := s.kubectl("diff", "-f", p)
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Fatalf("diff should exit 1 with differences, got %v", err)
		}
		if !strings.Contains(out, `-  key: "2"`) || !strings.Contains(out, `+  key: "3"`) {
			t.Errorf("diff output:\n%s", out)
		}
		if got := s.mustKubectl("get", "cm", "owned", "-n", "demo", "-o", "jsonpath={.data.key}"); got != "2" {
			t.Errorf("diff changed the object: %q", got)
		}
	})

	t.Run("explain and api-resources", func(t *testing.T) {
		ex := s.mustKubectl("explain", "deployment.spec.replicas")
		if !strings.Contains(ex, "FIELD: replicas <integer>") || !strings.Contains(ex, "Number of desired pods") {
			t.Errorf("explain:\n%s", ex)
		}
		ar := s.mustKubectl("api-resources")
		for _, re := range []string{`(?m)^pods\s+po\s+v1\s+true\s+Pod$`, `(?m)^deployments\s+deploy\s+apps/v1\s+true\s+Deployment$`, `(?m)^horizontalpodautoscalers\s+hpa\s+autoscaling/v2\s+true\s+HorizontalPodAutoscaler$`, `(?m)^leases\s+coordination.k8s.io/v1\s+true\s+Lease$`} {
			if !regexp.MustCompile(re).MatchString(ar) {
				t.Errorf("api-resources lacks %s", re)
			}
		}
	})

	t.Run("wait for jsonpath", func(t *testing.T) {
		done := make(chan error, 1)
		go func() {
			_, _, err := s.kubectl("wait", "--for=jsonpath={.data.ready}=yes", "cm/web-config", "-n", "demo", "--timeout=20s")
			done <- err
		}()
		time.Sleep(500 * time.Millisecond)
		s.mustKubectl("patch", "cm", "web-config", "-n", "demo", "--type=merge", "-p", `{"data":{"ready":"yes"}}`)
		if err := <-done; err != nil {
			t.Errorf("wait: %v", err)
		}
	})

	t.Run("get --watch", func(t *testing.T) {
		cmd := exec.Command(skiffBin, "kubectl", "--kubeconfig", s.kubeconfig, "get", "cm", "-n", "demo", "--watch", "--request-timeout=60s")
		buf := &logBuffer{}
		cmd.Stdout = buf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		// The initial list first (however long a loaded machine takes to
		// start kubectl), then the changes as they happen.
		poll.Eventually(t, 20*time.Second, func() error {
			if !strings.Contains(buf.String(), "web-config") {
				return fmt.Errorf("no initial list yet: %q", buf.String())
			}
			return nil
		})
		s.mustKubectl("create", "cm", "watched", "-n", "demo", "--from-literal=a=b")
		s.mustKubectl("delete", "cm", "watched", "-n", "demo")
		poll.Eventually(t, 20*time.Second, func() error {
			if strings.Count(buf.String(), "watched") < 2 {
				return fmt.Errorf("the create and delete not both printed: %q", buf.String())
			}
			return nil
		})
		if out := buf.String(); strings.Count(out, "NAME") != 1 {
			t.Errorf("get --watch printed:\n%s", out)
		}
	})

	t.Run("delete cascade and selectors", func(t *testing.T) {
		// Foreground and orphan deletion go through the garbage collector,
		// which lets a Deployment without dependents go at once.
		for _, cascade := range []string{"foreground", "orphan"} {
			name := "gone-" + cascade
			s.mustKubectl("create", "deploy", name, "-n", "demo", "--image=busybox")
			s.mustKubectl("delete", "deploy", name, "-n", "demo", "--cascade="+cascade, "--timeout=30s")
			if _, errOut, err := s.kubectl("get", "deploy", name, "-n", "demo"); err == nil || !strings.Contains(errOut, "NotFound") {
				t.Errorf("deployment deleted with --cascade=%s still there: %v %s", cascade, err, errOut)
			}
		}
		for _, n := range []string{"x1", "x2", "keep"} {
			s.mustKubectl("create", "cm", n, "-n", "demo")
		}
		s.mustKubectl("label", "cm", "x1", "x2", "-n", "demo", "sweep=yes")
		out := s.mustKubectl("delete", "cm", "-n", "demo", "-l", "sweep=yes")
		if !strings.Contains(out, `"x1" deleted`) || !strings.Contains(out, `"x2" deleted`) {
			t.Errorf("delete -l: %s", out)
		}
		left := s.mustKubectl("get", "cm", "-n", "demo", "-o", "name")
		if strings.Contains(left, "x1") || strings.Contains(left, "x2") || !strings.Contains(left, "configmap/keep") {
			t.Errorf("after delete -l: %s", left)
		}
		// A namespace waits for its content to be cleaned up: an object with
		// a finalizer holds it in Terminating, with conditions saying why.
		if _, errOut, err := s.kubectlStdin(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"held","namespace":"demo","finalizers":["test.skiff.sh/hold"]}}`, "create", "-f", "-"); err != nil {
			t.Fatalf("create held: %v %s", err, errOut)
		}
		s.mustKubectl("delete", "ns", "demo", "--wait=false")
		if got := s.mustKubectl("get", "ns", "demo", "-o", "jsonpath={.status.phase}"); got != "Terminating" {
			t.Errorf("namespace phase after delete: %q", got)
		}
		if _, errOut, err := s.kubectl("create", "cm", "late", "-n", "demo"); err == nil || !strings.Contains(errOut, "being terminated") {
			t.Errorf("create in terminating namespace: %v %s", err, errOut)
		}
		s.mustKubectl("wait", "ns/demo", "--for=condition=NamespaceFinalizersRemaining", "--timeout=30s")
		msg := s.mustKubectl("get", "ns", "demo", "-o", `jsonpath={.status.conditions[?(@.type=="NamespaceContentRemaining")].message}`)
		if !strings.Contains(msg, "configmaps has 1 resource instances") {
			t.Errorf("NamespaceContentRemaining message: %q", msg)
		}
		s.mustKubectl("patch", "cm", "held", "-n", "demo", "--type=merge", "-p", `{"metadata":{"finalizers":null}}`)
		s.mustKubectl("wait", "ns/demo", "--for=delete", "--timeout=30s")
	})
}
