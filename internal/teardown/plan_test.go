package teardown

import (
	"reflect"
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
