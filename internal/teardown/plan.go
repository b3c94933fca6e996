// Package teardown takes a node down for good (`skiff killall`, `skiff
// uninstall`): skiff's own processes of one data dir stopped, its pods
// stopped and removed through the runtime (so the CNI plugins give back
// their interfaces, addresses and network namespaces), containerd and its
// shims gone, and what skiff made on the machine removed: mounts under the
// data dir, its nftables table, its pod routes and the pod bridge.
//
// What to act on is decided from observations by pure functions (this
// file); killall.go observes and acts.
package teardown

import (
	"path/filepath"
	"sort"
	"strings"
)

// Process is one process as /proc shows it.
type Process struct {
	PID, PPID int
	Args      []string
}

// DefaultDataDir is the data dir of a skiff started without --data-dir.
const DefaultDataDir = "/var/lib/skiff"

// dataDirOf is the data dir a skiff server or agent command line runs
// with ("" when it is not one).
func dataDirOf(args []string) string {
	if len(args) < 2 || filepath.Base(args[0]) != "skiff" || (args[1] != "server" && args[1] != "agent") {
		return ""
	}
	dir := DefaultDataDir
	for i := 2; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--data-dir" && i+1 < len(args):
			dir = args[i+1]
		case strings.HasPrefix(a, "--data-dir="):
			dir = strings.TrimPrefix(a, "--data-dir=")
		}
	}
	return filepath.Clean(dir)
}

// under reports whether path is dir or inside it.
func under(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, strings.TrimSuffix(dir, "/")+"/")
}

// Skiffs are the skiff servers and agents of dataDir, never self.
func Skiffs(dataDir string, self int, procs []Process) []int {
	var out []int
	for _, p := range procs {
		if p.PID != self && dataDirOf(p.Args) == filepath.Clean(dataDir) {
			out = append(out, p.PID)
		}
	}
	return out
}

// RuntimeProcesses are containerd and its shims working in dataDir (their
// command lines name a path under it) and every process below them (the
// containers), children before parents so none is left without a parent
// to be reaped by. Skiff's own servers and agents and self are left out.
func RuntimeProcesses(dataDir string, self int, procs []Process) []int {
	dataDir = filepath.Clean(dataDir)
	children := map[int][]int{}
	for _, p := range procs {
		children[p.PPID] = append(children[p.PPID], p.PID)
	}
	var roots []int
	for _, p := range procs {
		if p.PID == self || len(p.Args) == 0 || dataDirOf(p.Args) != "" {
			continue
		}
		name := filepath.Base(p.Args[0])
		if name != "containerd" && !strings.HasPrefix(name, "containerd-shim") {
			continue
		}
		for _, a := range p.Args[1:] {
			if under(a, dataDir) || strings.Contains(a, "="+dataDir+"/") {
				roots = append(roots, p.PID)
				break
			}
		}
	}
	seen := map[int]bool{}
	var out []int
	var walk func(pid int)
	walk = func(pid int) {
		if seen[pid] || pid == self {
			return
		}
		seen[pid] = true
		for _, c := range children[pid] {
			walk(c)
		}
		out = append(out, pid)
	}
	for _, r := range roots {
		walk(r)
	}
	return out
}

// Unmounts are the mount points under dataDir, deepest first (a mount is
// undone before the one it sits on).
func Unmounts(dataDir string, mountPoints []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, m := range mountPoints {
		if under(m, filepath.Clean(dataDir)) && !seen[m] {
			seen[m] = true
			out = append(out, m)
		}
	}
	// Later mounts (and longer paths) first: mountinfo lists mounts in the
	// order they were made.
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	sort.SliceStable(out, func(i, j int) bool { return strings.Count(out[i], "/") > strings.Count(out[j], "/") })
	return out
}
