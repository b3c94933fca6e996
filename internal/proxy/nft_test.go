//go:build kernel

// Kernel tests and benchmarks: they need root, ip and nft, and make a
// network namespace each; `make e2e` runs them (go test -tags kernel).

package proxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// testNetns makes a network namespace for one test (loopback up, a dummy
// veth holding the "pod" addresses and a route for the service range) and
// returns its name and an open handle; both go at cleanup. The kernel
// tests need root, ip and nft: missing, they fail rather than skip.
func testNetns(t testing.TB) (string, *os.File) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the nftables tests need root (network namespaces)")
	}
	name := fmt.Sprintf("skiff-proxy-%d-%d", os.Getpid(), time.Now().UnixNano()%100000)
	for _, args := range [][]string{
		{"netns", "add", name},
		{"-n", name, "link", "set", "lo", "up"},
		{"-n", name, "link", "add", "pods", "type", "veth", "peer", "name", "pods-peer"},
		{"-n", name, "link", "set", "pods-peer", "up"},
		{"-n", name, "addr", "add", "10.42.0.5/32", "dev", "pods"},
		{"-n", name, "addr", "add", "10.42.0.6/32", "dev", "pods"},
		{"-n", name, "link", "set", "pods", "up"},
		{"-n", name, "route", "add", "10.43.0.0/16", "dev", "pods"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			_ = exec.Command("ip", "netns", "del", name).Run()
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	f, err := os.Open("/var/run/netns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.Close()
		_ = exec.Command("ip", "netns", "del", name).Run()
	})
	return name, f
}

// inNetns runs f on a thread switched into the namespace; sockets made
// there stay in it.
func inNetns(t testing.TB, ns *os.File, f func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		own, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			done <- err
			return
		}
		defer own.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- err
			return
		}
		f()
		if unix.Setns(int(own.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// listen serves "who am I" on addr inside the namespace until cleanup.
func listen(t testing.TB, ns *os.File, addr string) {
	t.Helper()
	var l net.Listener
	var err error
	inNetns(t, ns, func() { l, err = net.Listen("tcp", addr) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte(addr))
			c.Close()
		}
	}()
}

// get connects to addr from inside the namespace and returns what the
// server said.
func get(t *testing.T, ns *os.File, addr string) (string, error) {
	t.Helper()
	var out []byte
	var err error
	inNetns(t, ns, func() {
		var c net.Conn
		c, err = net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			return
		}
		defer c.Close()
		out, err = io.ReadAll(c)
	})
	return string(out), err
}

func nftList(t *testing.T, ns string) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "nft", "list", "table", "ip", tableName).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list: %v: %s", err, out)
	}
	return string(out)
}

// The table, programmed into a real kernel: a ClusterIP reaches both
// endpoints, an endpoint change touches one chain, a service without
// endpoints refuses at once, and removal leaves only the base.
func TestTableInKernel(t *testing.T) {
	name, ns := testNetns(t)
	listen(t, ns, "10.42.0.5:8080")
	listen(t, ns, "10.42.0.6:8080")
	tbl, err := NewTable(testConfig(), int(ns.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Close()

	both := ep{ip: "10.42.0.6", node: "node-a", ready: true, serving: true}
	svcs := []*v1.Service{service("web")}
	st, err := tbl.Apply(Build(testConfig(), svcs, []*discoveryv1.EndpointSlice{slice("web", 8080, readyA, both)}))
	if err != nil {
		t.Fatalf("apply: %v\n%s", err, nftList(t, name))
	}
	if !st.Rebuilt || st.ChainsAdded != 3 {
		t.Errorf("first apply %+v", st)
	}
	listing := nftList(t, name)
	for _, want := range []string{
		"10.43.0.20 . tcp . 80 : goto svc-",
		"numgen random mod 2 vmap { 0 : goto ep-",
		"dnat to 10.42.0.5:8080",
		"ip daddr . meta l4proto . th dport vmap @service-ips",
		"numgen random mod 2 vmap { 0 : goto ep-G",
		"fib daddr type local",
	} {
		if !strings.Contains(listing, want) && !strings.Contains(strings.ReplaceAll(listing, "\"", ""), want) {
			t.Errorf("table lacks %q:\n%s", want, listing)
		}
	}
	seen := map[string]bool{}
	for i := 0; i < 40 && len(seen) < 2; i++ {
		out, err := get(t, ns, "10.43.0.20:80")
		if err != nil {
			t.Fatalf("through the ClusterIP: %v\n%s", err, listing)
		}
		seen[out] = true
	}
	if len(seen) != 2 {
		t.Errorf("40 connections reached only %v", seen)
	}

	// One endpoint goes: the service chain changes, one endpoint chain
	// goes, nothing else is sent again.
	st, err = tbl.Apply(Build(testConfig(), svcs, []*discoveryv1.EndpointSlice{slice("web", 8080, both)}))
	if err != nil {
		t.Fatal(err)
	}
	if st.Rebuilt || st.ChainsAdded != 0 || st.ChainsChanged != 1 || st.ChainsRemoved != 1 || st.Elements != 0 {
		t.Errorf("endpoint removal applied %+v", st)
	}
	for i := 0; i < 10; i++ {
		if out, err := get(t, ns, "10.43.0.20:80"); err != nil || out != "10.42.0.6:8080" {
			t.Fatalf("after the change: %q %v", out, err)
		}
	}

	// No endpoints: refused at once rather than timing out.
	if _, err := tbl.Apply(Build(testConfig(), svcs, nil)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = get(t, ns, "10.43.0.20:80")
	if !errors.Is(err, syscall.ECONNREFUSED) || time.Since(start) > time.Second {
		t.Errorf("no endpoints: %v after %v, want connection refused at once\n%s", err, time.Since(start), nftList(t, name))
	}

	if _, err := tbl.Apply(Build(testConfig(), nil, nil)); err != nil {
		t.Fatal(err)
	}
	if l := nftList(t, name); strings.Contains(l, "svc-") || strings.Contains(l, "ep-") || strings.Contains(l, "10.43.0.20") {
		t.Errorf("leftovers after removing the service:\n%s", l)
	}
	if err := tbl.Delete(); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ip", "netns", "exec", name, "nft", "list", "tables").CombinedOutput(); err != nil || strings.Contains(string(out), tableName) {
		t.Errorf("table still there: %s %v", out, err)
	}
}

// sessionAffinity ClientIP in the kernel: once a client has landed on an
// endpoint, its next connections go there too.
func TestTableAffinityInKernel(t *testing.T) {
	name, ns := testNetns(t)
	listen(t, ns, "10.42.0.5:8080")
	listen(t, ns, "10.42.0.6:8080")
	tbl, err := NewTable(testConfig(), int(ns.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Close()
	svc := service("web", func(s *v1.Service) { s.Spec.SessionAffinity = v1.ServiceAffinityClientIP })
	other := ep{ip: "10.42.0.6", node: "node-a", ready: true, serving: true}
	if _, err := tbl.Apply(Build(testConfig(), []*v1.Service{svc}, []*discoveryv1.EndpointSlice{slice("web", 8080, readyA, other)})); err != nil {
		t.Fatalf("apply: %v\n%s", err, nftList(t, name))
	}
	first, err := get(t, ns, "10.43.0.20:80")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if out, err := get(t, ns, "10.43.0.20:80"); err != nil || out != first {
			t.Fatalf("connection %d went to %q (%v), the client's endpoint is %s\n%s", i, out, err, first, nftList(t, name))
		}
	}
	if l := nftList(t, name); !strings.Contains(l, "timeout 3h") || !strings.Contains(l, "update @aff-") {
		t.Errorf("affinity sets or updates missing:\n%s", l)
	}
}

// A table removed behind the proxy's back is noticed and rebuilt whole.
func TestTableRebuiltAfterRemoval(t *testing.T) {
	name, ns := testNetns(t)
	listen(t, ns, "10.42.0.5:8080")
	tbl, err := NewTable(testConfig(), int(ns.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Close()
	rs := Build(testConfig(), []*v1.Service{service("web")}, []*discoveryv1.EndpointSlice{slice("web", 8080, readyA)})
	if _, err := tbl.Apply(rs); err != nil {
		t.Fatal(err)
	}
	if ok, err := tbl.Check(); !ok || err != nil {
		t.Fatalf("check of a present table: %v %v", ok, err)
	}
	if out, err := exec.Command("ip", "netns", "exec", name, "nft", "flush", "ruleset").CombinedOutput(); err != nil {
		t.Fatalf("nft flush ruleset: %v %s", err, out)
	}
	if ok, err := tbl.Check(); ok || err != nil {
		t.Fatalf("check after the flush: %v %v", ok, err)
	}
	st, err := tbl.Apply(rs)
	if err != nil || !st.Rebuilt || st.ChainsAdded != 2 {
		t.Fatalf("apply after the flush: %+v %v", st, err)
	}
	if out, err := get(t, ns, "10.43.0.20:80"); err != nil || out != "10.42.0.5:8080" {
		t.Errorf("service after the rebuild: %q %v", out, err)
	}
}

// A restarted agent takes its predecessor's table over: every chain is
// rewritten in place and the dispatch maps are left alone, so Services
// stay reachable throughout; a table without the base marker is rebuilt.
func TestTableAdoptedAfterRestart(t *testing.T) {
	name, ns := testNetns(t)
	listen(t, ns, "10.42.0.5:8080")
	other := ep{ip: "10.42.0.6", node: "node-a", ready: true, serving: true}
	svcs := []*v1.Service{service("web"), service("sticky", func(s *v1.Service) {
		s.Spec.ClusterIP, s.Spec.ClusterIPs, s.Spec.SessionAffinity = "10.43.0.21", nil, v1.ServiceAffinityClientIP
	})}
	slices := []*discoveryv1.EndpointSlice{slice("web", 8080, readyA), slice("sticky", 8080, readyA, other)}
	rs := Build(testConfig(), svcs, slices)
	first, err := NewTable(testConfig(), int(ns.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	if st, err := first.Apply(rs); err != nil || !st.Rebuilt || st.Adopted {
		t.Fatalf("first agent: %+v %v", st, err)
	}
	first.Close()

	second, err := NewTable(testConfig(), int(ns.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	st, err := second.Apply(Build(testConfig(), svcs, slices))
	if err != nil {
		t.Fatalf("adopting apply: %v\n%s", err, nftList(t, name))
	}
	if !st.Adopted || st.Rebuilt || st.ChainsAdded != 0 || st.ChainsChanged != len(rs.Chains) || st.ChainsRemoved != 0 || st.Elements != 0 {
		t.Errorf("adopting apply %+v, want every one of %d chains rewritten and no element sent", st, len(rs.Chains))
	}
	if out, err := get(t, ns, "10.43.0.20:80"); err != nil || out != "10.42.0.5:8080" {
		t.Errorf("after adoption: %q %v", out, err)
	}
	// Later changes go on incrementally from what was adopted.
	st, err = second.Apply(Build(testConfig(), svcs[:1], slices[:1]))
	if err != nil || st.ChainsRemoved != 3 || st.Elements != 0 {
		t.Errorf("removing the sticky service after adoption: %+v %v", st, err)
	}
	if l := nftList(t, name); strings.Contains(l, "10.43.0.21") || strings.Contains(l, "aff-") {
		t.Errorf("sticky service left behind:\n%s", l)
	}

	// A table of another layout (no marker) is rebuilt, not adopted.
	if out, err := exec.Command("ip", "netns", "exec", name, "nft", "delete", "chain", "ip", tableName, baseMarker).CombinedOutput(); err != nil {
		t.Fatalf("delete marker: %v %s", err, out)
	}
	third, err := NewTable(testConfig(), int(ns.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	if st, err := third.Apply(Build(testConfig(), svcs, slices)); err != nil || st.Adopted || !st.Rebuilt {
		t.Errorf("table without the marker: %+v %v", st, err)
	}
}
