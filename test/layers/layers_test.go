// Package layers keeps the import rules of docs/architecture.md: the node's
// packages stand on client-go and the shared kits only; controllers and the
// scheduler talk to the API server through client-go, never through its
// registry or storage.
package layers

import (
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/skiff-sh/skiff/internal/"

// serverSide are the API server's and controller manager's packages (a
// trailing slash also forbids everything below).
var serverSide = []string{"registry", "storage", "apiserver", "controlplane", "quota", "controller", "controller/", "scheduler", "scheduler/", "ingress"}

// rules say which packages (a trailing slash: and those below) may not
// depend, even indirectly, on which.
var rules = []struct {
	from      []string
	forbidden []string
}{
	// The node agent and its network parts.
	{[]string{"agent", "kubelet", "kubelet/", "proxy", "dns", "netpol", "podnet", "runtime", "runtime/", "image", "procmem", "join"}, serverSide},
	// The node agent's decisions and node-side helpers (its plan, volume
	// files, node status) stand below the agent and its runtime client.
	{[]string{"kubelet/"}, []string{"kubelet", "agent", "runtime", "runtime/"}},
	// The shared kits are leaves for both sides.
	{[]string{"work", "kubeclient", "podspec", "leader", "pki", "component"}, append(serverSide, "kubelet", "agent", "proxy", "dns")},
	// Controllers and the scheduler use the API, not its implementation.
	{[]string{"controller", "controller/", "scheduler", "scheduler/"}, []string{"registry", "storage", "apiserver", "controlplane", "kubelet", "agent"}},
}

func matches(pkg, pattern string) bool {
	if strings.HasSuffix(pattern, "/") {
		return strings.HasPrefix(pkg, pattern)
	}
	return pkg == pattern
}

func TestLayers(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, "../../internal/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg, ok := strings.CutPrefix(fields[0], mod)
		if !ok {
			t.Fatalf("unexpected package %q", fields[0])
		}
		for _, r := range rules {
			if !anyMatch(pkg, r.from) {
				continue
			}
			checked++
			for _, dep := range fields[1:] {
				d, ok := strings.CutPrefix(dep, mod)
				if ok && anyMatch(d, r.forbidden) {
					t.Errorf("%s depends on %s, which its layer may not use", pkg, d)
				}
			}
		}
	}
	// The rules must have found the packages they name (a rename would
	// otherwise silently turn the check off).
	if checked < 40 {
		t.Errorf("only %d package checks ran; are the package names in the rules stale?", checked)
	}
}

func anyMatch(pkg string, patterns []string) bool {
	for _, p := range patterns {
		if matches(pkg, p) {
			return true
		}
	}
	return false
}
