package teardown

import (
	"reflect"
	"slices"
	"testing"
)

func TestSkiffs(t *testing.T) {
	procs := []Process{
		{PID: 10, Args: []string{"/usr/local/bin/skiff", "server", "--data-dir", "/srv/a"}},
		{PID: 11, Args: []string{"skiff", "agent", "--data-dir=/srv/a/", "--server", "https://x"}},
		{PID: 12, Args: []string{"skiff", "server", "--data-dir", "/srv/b"}},
		{PID: 13, Args: []string{"skiff", "server"}},                                // the default data dir
		{PID: 14, Args: []string{"skiff", "killall", "--data-dir", "/srv/a"}},       // another killall
		{PID: 15, Args: []string{"/usr/bin/vim", "server", "--data-dir", "/srv/a"}}, // not skiff
		{PID: 16, Args: []string{"skiff", "server", "--data-dir", "/srv/a"}},        // self
		{PID: 17, Args: nil}, // a kernel thread
	}
	if got := Skiffs("/srv/a", 16, procs); !reflect.DeepEqual(got, []int{10, 11}) {
		t.Errorf("Skiffs(/srv/a) = %v", got)
	}
	if got := Skiffs(DefaultDataDir, 0, procs); !reflect.DeepEqual(got, []int{13}) {
		t.Errorf("Skiffs(default) = %v", got)
	}
}

func TestRuntimeProcesses(t *testing.T) {
	procs := []Process{
		{PID: 1, Args: []string{"/sbin/init"}},
		{PID: 20, PPID: 1, Args: []string{"containerd", "--config", "/srv/a/agent/containerd/config.toml"}},
		{PID: 21, PPID: 1, Args: []string{"/usr/bin/containerd-shim-runc-v2", "-namespace", "k8s.io", "-id", "abc", "-address", "/srv/a/agent/containerd/containerd.sock"}},
		{PID: 22, PPID: 21, Args: []string{"/pause"}},
		{PID: 23, PPID: 21, Args: []string{"sleep", "3600"}},
		{PID: 24, PPID: 23, Args: []string{"sh"}},
		// Another node's runtime on the same machine, and a prefix that
		// is not the directory.
		{PID: 30, PPID: 1, Args: []string{"containerd-shim-runc-v2", "-address", "/srv/ab/agent/containerd/containerd.sock"}},
		{PID: 31, PPID: 30, Args: []string{"sleep", "1"}},
		// The server itself is stopped separately, not killed with these.
		{PID: 40, PPID: 1, Args: []string{"skiff", "server", "--data-dir", "/srv/a"}},
	}
	got := RuntimeProcesses("/srv/a", 0, procs)
	want := []int{20, 22, 24, 23, 21}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("RuntimeProcesses = %v, want %v (children before parents, nothing of /srv/ab)", got, want)
	}
}

func TestUnmounts(t *testing.T) {
	mounts := []string{"/", "/proc", "/srv/a/agent/containerd/state/x/rootfs", "/srv/a/agent/pods/p/volumes/secret", "/srv/ab/y", "/srv/a/agent/pods/p/volumes/secret/sub", "/srv/a"}
	got := Unmounts("/srv/a/", mounts)
	// Deepest first; among equals, the later mount first.
	want := []string{"/srv/a/agent/pods/p/volumes/secret/sub", "/srv/a/agent/pods/p/volumes/secret", "/srv/a/agent/containerd/state/x/rootfs", "/srv/a"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Unmounts = %v, want %v", got, want)
	}
}

func TestUnescapeMount(t *testing.T) {
	if got := unescapeMount(`/srv/with\040space/x`); got != "/srv/with space/x" {
		t.Errorf("unescape: %q", got)
	}
}

func TestPlanNat(t *testing.T) {
	portmapOnly := []NatChain{
		{Name: "PREROUTING", Base: true, Rules: []NatRule{{Handle: 1, Jump: "CNI-HOSTPORT-DNAT"}}},
		{Name: "POSTROUTING", Base: true, Rules: []NatRule{{Handle: 2, Jump: "CNI-HOSTPORT-MASQ"}}},
		{Name: "CNI-HOSTPORT-DNAT", Rules: []NatRule{{Handle: 3, Jump: "CNI-DN-abc"}}},
		{Name: "CNI-DN-abc", Rules: []NatRule{{Handle: 4}}},
		{Name: "CNI-HOSTPORT-MASQ", Rules: []NatRule{{Handle: 5}}},
	}
	p := PlanNat(portmapOnly)
	if !p.Table || len(p.Chains) != 3 || !reflect.DeepEqual(p.Rules, map[string][]uint64{"PREROUTING": {1}, "POSTROUTING": {2}}) {
		t.Errorf("portmap's table: %+v", p)
	}
	shared := append(portmapOnly, NatChain{Name: "DOCKER", Rules: []NatRule{{Handle: 9}}})
	shared[1].Rules = append(shared[1].Rules, NatRule{Handle: 8, Jump: "MASQUERADE"})
	if p := PlanNat(shared); p.Table || len(p.Chains) != 3 || len(p.Rules["POSTROUTING"]) != 1 {
		t.Errorf("a table shared with others keeps theirs: %+v", p)
	}
	if p := PlanNat(nil); !p.Table {
		t.Errorf("an empty table goes: %+v", p)
	}
}

// Only the namespaces at the far end of the pod bridge's ports are pods':
// the node's own and other named namespaces stay.
func TestPodNetns(t *testing.T) {
	named := map[string]int{"cni-b": 4, "cni-a": 2, "node-5": 0, "other": 7}
	for name, tc := range map[string]struct {
		ports []int
		want  []string
	}{
		"two pods":             {[]int{2, 4}, []string{"cni-a", "cni-b"}},
		"a port of no name":    {[]int{2, 9}, []string{"cni-a"}},
		"no ports":             {nil, nil},
		"two ports in one pod": {[]int{4, 4}, []string{"cni-b"}},
	} {
		if got := PodNetns(tc.ports, named); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", name, got, tc.want)
		}
	}
}
