package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// compatManifest is what a user of an older kubectl applies: kinds whose
// strategic merges go by key (containers, ports, env).
const compatManifest = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: REPLICAS
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: IMAGE
        ports: [{containerPort: 80}]
        env: [{name: MODE, value: prod}]
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web
data: {mode: prod}
`

func compatObjects(replicas, image string) string {
	return strings.NewReplacer("REPLICAS", replicas, "IMAGE", image).Replace(compatManifest)
}

// TestOlderKubectl drives kubectl releases older than the embedded one
// (built by `make test` from test/kubectl-compat) through what they read
// from /openapi/v2: client-side apply with its strategic merge schema,
// server-side dry run, which they send only for kinds the document says
// support it, diff, server-side apply and explain.
func TestOlderKubectl(t *testing.T) {
	bins := strings.Fields(os.Getenv("SKIFF_COMPAT_KUBECTL"))
	if len(bins) == 0 {
		t.Fatal("SKIFF_COMPAT_KUBECTL names no kubectl binaries; run through `make test`, which builds them")
	}
	s := startServer(t)
	for _, bin := range bins {
		t.Run(filepath.Base(bin), func(t *testing.T) {
			ns := strings.ReplaceAll(filepath.Base(bin), ".", "-")
			home := t.TempDir()
			// run returns stdout; a failure's error carries stderr.
			run := func(stdin string, args ...string) (string, error) {
				cmd := exec.Command(bin, append([]string{"--kubeconfig", s.kubeconfig, "-n", ns}, args...)...)
				cmd.Env = append(os.Environ(), "KUBECONFIG=", "HOME="+home)
				var out, errOut bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &errOut
				cmd.Stdin = strings.NewReader(stdin)
				if err := cmd.Run(); err != nil {
					return out.String(), fmt.Errorf("%w: %s", err, errOut.String())
				}
				return out.String(), nil
			}
			must := func(stdin string, args ...string) string {
				t.Helper()
				out, err := run(stdin, args...)
				if err != nil {
					t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
				}
				return out
			}
			var v struct {
				Server struct{ GitVersion string } `json:"serverVersion"`
			}
			if err := json.Unmarshal([]byte(must("", "version", "-o", "json")), &v); err != nil || !strings.HasPrefix(v.Server.GitVersion, "v1.37.") {
				t.Fatalf("server version %+v %v", v, err)
			}
			must("", "create", "namespace", ns)
			must(compatObjects("1", "nginx:1"), "apply", "-f", "-")

			out := must(compatObjects("2", "nginx:1"), "apply", "--dry-run=server", "-f", "-")
			if !strings.Contains(out, "deployment.apps/web configured (server dry run)") {
				t.Errorf("server dry run: %s", out)
			}
			if r := must("", "get", "deployment", "web", "-o", "jsonpath={.spec.replicas}"); r != "1" {
				t.Errorf("a dry run changed replicas to %s", r)
			}

			out, err := run(compatObjects("2", "nginx:2"), "diff", "-f", "-")
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(out, "-  replicas: 1") || !strings.Contains(out, "+  replicas: 2") || !strings.Contains(out, "+        image: nginx:2") {
				t.Errorf("diff of a changed Deployment: %v\n%s", err, out)
			}

			must(compatObjects("2", "nginx:2"), "apply", "-f", "-")
			got := must("", "get", "deployment", "web", "-o", "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].env[0].value}")
			if got != "2 nginx:2 prod" {
				t.Errorf("after apply: %q, want \"2 nginx:2 prod\"", got)
			}
			if out, err := run(compatObjects("2", "nginx:2"), "diff", "-f", "-"); err != nil {
				t.Errorf("diff after apply: %v\n%s", err, out)
			}

			must(compatObjects("3", "nginx:2"), "apply", "--server-side", "--force-conflicts", "-f", "-")
			if r := must("", "get", "deployment", "web", "-o", "jsonpath={.spec.replicas}"); r != "3" {
				t.Errorf("server-side apply: replicas %s", r)
			}
			if out := must("", "explain", "deployment.spec.replicas"); !strings.Contains(out, "replicas") {
				t.Errorf("explain: %s", out)
			}
			must(compatObjects("3", "nginx:2"), "delete", "-f", "-")
		})
	}
}
