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

// NatChain is one chain of an iptables-nft nat table, as the portmap CNI
// plugin fills them (hostPort): its rules, each by the chain it jumps to.
type NatChain struct {
	Name  string
	Base  bool // hooked (PREROUTING, OUTPUT, POSTROUTING)
	Rules []NatRule
}

// NatRule is a rule by its handle and the chain it jumps to ("" none).
type NatRule struct {
	Handle uint64
	Jump   string
}

// cniChain reports whether a nat chain is the portmap plugin's: its shared
// hostPort chains and one chain per container.
func cniChain(name string) bool {
	return strings.HasPrefix(name, "CNI-HOSTPORT-") || strings.HasPrefix(name, "CNI-DN-")
}

// NatPlan is what to remove from one nat table.
type NatPlan struct {
	Rules  map[string][]uint64 // chain → handles of rules jumping to a CNI chain
	Chains []string            // the CNI chains themselves
	// Table: nothing else is left in it (only empty hooked chains), so
	// the table goes too.
	Table bool
}

// PlanNat decides what of a nat table the CNI plugins made: the rules of
// other chains that jump into theirs, their chains, and the table when
// nothing but empty hooked chains would remain. Rules and chains of
// anyone else stay.
func PlanNat(chains []NatChain) NatPlan {
	p := NatPlan{Rules: map[string][]uint64{}, Table: true}
	for _, c := range chains {
		if cniChain(c.Name) {
			p.Chains = append(p.Chains, c.Name)
			continue
		}
		kept := 0
		for _, r := range c.Rules {
			if cniChain(r.Jump) {
				p.Rules[c.Name] = append(p.Rules[c.Name], r.Handle)
			} else {
				kept++
			}
		}
		if !c.Base || kept > 0 {
			p.Table = false
		}
	}
	return p
}

// PodNetns are the named network namespaces (name to its id as this
// namespace knows it) that hold the far end of a pod bridge port (the ids
// of the ports' peers' namespaces), sorted.
func PodNetns(portNsIDs []int, named map[string]int) []string {
	ids := map[int]bool{}
	for _, id := range portNsIDs {
		ids[id] = true
	}
	var out []string
	for name, id := range named {
		if ids[id] {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}
