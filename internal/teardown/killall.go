package teardown

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-sh/skiff/internal/runtime"
)

// Names of what the node agent makes in its network namespace.
const (
	nftTable      = "skiff"
	podBridge     = "cni0"
	routeProtocol = netlink.RouteProtocol(77)
)

// skiffStopTimeout is how long a server or agent gets to stop on SIGTERM.
const skiffStopTimeout = 30 * time.Second

// Killall stops everything skiff runs for dataDir on this machine and
// removes what it made, leaving the data dir itself. It is safe to run
// again: each step finds nothing left to do.
func Killall(ctx context.Context, dataDir string, log *slog.Logger) error {
	dataDir, err := filepath.Abs(dataDir)
	if err != nil {
		return err
	}
	self := os.Getpid()
	var errs []error
	procs, err := processes()
	if err != nil {
		return err
	}
	if pids := Skiffs(dataDir, self, procs); len(pids) > 0 {
		log.Info("stopping skiff", "pids", pids)
		stop(pids, skiffStopTimeout)
	}
	if err := removePods(ctx, dataDir, log); err != nil {
		// The processes below are killed all the same.
		log.Warn("pods could not be removed through the runtime", "err", err)
		errs = append(errs, err)
	}
	if procs, err = processes(); err != nil {
		return err
	}
	if pids := RuntimeProcesses(dataDir, self, procs); len(pids) > 0 {
		log.Info("killing containerd, shims and containers", "pids", len(pids))
		kill(pids)
	}
	mounts, err := mountPoints()
	if err != nil {
		return err
	}
	for _, m := range Unmounts(dataDir, mounts) {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m, err))
		}
	}
	errs = append(errs, removeNetwork(log)...)
	return errors.Join(errs...)
}

// processes reads every process's parent and command line.
func processes() ([]Process, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []Process
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// After the command, which ends at the last ')': state, then ppid.
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		raw, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		if len(raw) == 0 {
			args = nil
		}
		out = append(out, Process{PID: pid, PPID: ppid, Args: args})
	}
	return out, nil
}

// stop sends SIGTERM, then SIGKILL to those still running after timeout.
func stop(pids []int, timeout time.Duration) {
	for _, p := range pids {
		_ = syscall.Kill(p, syscall.SIGTERM)
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		alive := false
		for _, p := range pids {
			alive = alive || running(p)
		}
		if !alive {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, p := range pids {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
}

// running reports whether pid is a live (not zombie) process.
func running(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(stat), ')')
	return i < 0 || len(stat) < i+3 || stat[i+2] != 'Z'
}

// kill stops pids (children first) with SIGKILL, each stopped first so it
// makes no new children meanwhile, and waits for them to go.
func kill(pids []int) {
	for _, p := range pids {
		_ = syscall.Kill(p, syscall.SIGSTOP)
	}
	for _, p := range pids {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, p := range pids {
		for running(p) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// removePods starts the node's containerd again (it finds the shims of
// the pods still running) and stops and removes every pod sandbox through
// the CRI, so the CNI plugins release each pod's interface, address and
// network namespace as they would for a deleted pod.
func removePods(ctx context.Context, dataDir string, log *slog.Logger) error {
	agent := filepath.Join(dataDir, "agent")
	cd := runtime.Containerd{Dir: filepath.Join(agent, "containerd"), CNIConfDir: filepath.Join(agent, "cni"), Log: log}
	if _, err := os.Stat(filepath.Join(cd.Dir, "config.toml")); err != nil {
		return nil // no node agent ever ran here
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	supCtx, stopSup := context.WithCancel(context.Background())
	sup, err := runtime.Start(supCtx, cd)
	if err != nil {
		stopSup()
		return err
	}
	defer func() {
		stopSup()
		select {
		case <-sup.Done():
		case <-time.After(15 * time.Second):
		}
	}()
	rt, err := runtime.Dial(ctx, cd.Socket())
	if err != nil {
		return err
	}
	defer rt.Close()
	list, err := rt.ListPodSandbox(ctx, &cri.ListPodSandboxRequest{})
	if err != nil {
		return err
	}
	var errs []error
	for _, sb := range list.Items {
		if _, err := rt.StopPodSandbox(ctx, &cri.StopPodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			errs = append(errs, fmt.Errorf("stop pod %s/%s: %w", sb.Metadata.GetNamespace(), sb.Metadata.GetName(), err))
			continue
		}
		if _, err := rt.RemovePodSandbox(ctx, &cri.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			errs = append(errs, fmt.Errorf("remove pod %s/%s: %w", sb.Metadata.GetNamespace(), sb.Metadata.GetName(), err))
		}
	}
	log.Info("pods removed", "count", len(list.Items)-len(errs))
	return errors.Join(errs...)
}

// removeNetwork deletes, in this network namespace, skiff's nftables
// table, its pod routes and the pod bridge.
func removeNetwork(log *slog.Logger) []error {
	var errs []error
	if conn, err := nftables.New(); err == nil {
		tables, err := conn.ListTablesOfFamily(nftables.TableFamilyIPv4)
		if err != nil {
			errs = append(errs, fmt.Errorf("nftables: %w", err))
		}
		for _, t := range tables {
			if t.Name == nftTable {
				conn.DelTable(t)
				if err := conn.Flush(); err != nil {
					errs = append(errs, fmt.Errorf("delete nftables table %s: %w", nftTable, err))
				} else {
					log.Info("removed the nftables table", "table", nftTable)
				}
			}
		}
	} else {
		errs = append(errs, fmt.Errorf("nftables: %w", err))
	}
	errs = append(errs, removeCNINat(log)...)
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Protocol: routeProtocol}, netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		errs = append(errs, fmt.Errorf("routes: %w", err))
	}
	for i := range routes {
		if err := netlink.RouteDel(&routes[i]); err != nil {
			errs = append(errs, fmt.Errorf("delete route %s: %w", routes[i].Dst, err))
		}
	}
	errs = append(errs, removePodNetns(log)...)
	if link, err := netlink.LinkByName(podBridge); err == nil {
		if err := netlink.LinkDel(link); err != nil {
			errs = append(errs, fmt.Errorf("delete %s: %w", podBridge, err))
		} else {
			log.Info("removed the pod bridge", "link", podBridge)
		}
	}
	return errs
}

// netnsDir holds the named network namespaces (ip netns, and the
// runtime's pod namespaces).
const netnsDir = "/var/run/netns"

// removePodNetns removes the network namespaces of pods whose interfaces
// still hang on the pod bridge: what the CNI plugins would have given back
// had the runtime removed the pods (it could not be started again). The
// containers are gone by now, so removing the name frees the namespace,
// and its interface with it.
func removePodNetns(log *slog.Logger) []error {
	bridge, err := netlink.LinkByName(podBridge)
	if err != nil {
		return nil
	}
	links, err := netlink.LinkList()
	if err != nil {
		return []error{fmt.Errorf("links: %w", err)}
	}
	var ports []int
	for _, l := range links {
		if a := l.Attrs(); a.MasterIndex == bridge.Attrs().Index && a.NetNsID >= 0 {
			ports = append(ports, a.NetNsID)
		}
	}
	if len(ports) == 0 {
		return nil
	}
	entries, err := os.ReadDir(netnsDir)
	if err != nil {
		return []error{fmt.Errorf("network namespaces: %w", err)}
	}
	named := map[string]int{}
	for _, e := range entries {
		f, err := os.Open(filepath.Join(netnsDir, e.Name()))
		if err != nil {
			continue
		}
		if id, err := netlink.GetNetNsIdByFd(int(f.Fd())); err == nil && id >= 0 {
			named[e.Name()] = id
		}
		f.Close()
	}
	var errs []error
	for _, name := range PodNetns(ports, named) {
		path := filepath.Join(netnsDir, name)
		if err := syscall.Unmount(path, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", path, err))
			continue
		}
		if err := os.Remove(path); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", path, err))
			continue
		}
		log.Info("removed a pod network namespace the runtime left", "netns", name)
	}
	return errs
}

// mountPoints lists the mount points of this mount namespace.
func mountPoints() ([]string, error) {
	raw, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 {
			out = append(out, unescapeMount(f[4]))
		}
	}
	return out, nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// removeCNINat removes what the portmap CNI plugin made in the nat tables
// (through iptables-nft) as PlanNat decides.
func removeCNINat(log *slog.Logger) []error {
	conn, err := nftables.New()
	if err != nil {
		return []error{fmt.Errorf("nftables: %w", err)}
	}
	var errs []error
	for _, family := range []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyIPv6} {
		tables, err := conn.ListTablesOfFamily(family)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, t := range tables {
			if t.Name != "nat" {
				continue
			}
			all, err := conn.ListChainsOfTableFamily(family)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			byName := map[string]*nftables.Chain{}
			var chains []NatChain
			for _, c := range all {
				if c.Table == nil || c.Table.Name != t.Name {
					continue
				}
				byName[c.Name] = c
				nc := NatChain{Name: c.Name, Base: c.Hooknum != nil}
				rules, err := conn.GetRules(t, c)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				for _, r := range rules {
					nr := NatRule{Handle: r.Handle}
					for _, e := range r.Exprs {
						if v, ok := e.(*expr.Verdict); ok && (v.Kind == expr.VerdictJump || v.Kind == expr.VerdictGoto) {
							nr.Jump = v.Chain
						}
					}
					nc.Rules = append(nc.Rules, nr)
				}
				chains = append(chains, nc)
			}
			plan := PlanNat(chains)
			if len(plan.Chains) == 0 && len(plan.Rules) == 0 && !plan.Table {
				continue
			}
			if plan.Table {
				conn.DelTable(t)
			} else {
				for chain, handles := range plan.Rules {
					for _, h := range handles {
						if err := conn.DelRule(&nftables.Rule{Table: t, Chain: byName[chain], Handle: h}); err != nil {
							errs = append(errs, err)
						}
					}
				}
				// Flushed first: a CNI chain may jump into another.
				for _, name := range plan.Chains {
					conn.FlushChain(byName[name])
				}
				for _, name := range plan.Chains {
					conn.DelChain(byName[name])
				}
			}
			if err := conn.Flush(); err != nil {
				errs = append(errs, fmt.Errorf("remove the CNI plugins' nat rules: %w", err))
			} else {
				log.Info("removed the CNI plugins' nat rules", "table", t.Name, "chains", plan.Chains, "whole table", plan.Table)
			}
		}
	}
	return errs
}
