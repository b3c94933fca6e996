package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/test/poll"
)

// TestKillallAndUninstall: on a node running pods (one with a Secret
// volume, one with a hostPort), `skiff killall` leaves nothing of skiff
// that ps, ip, nft or mount would show: no process of its data dir, no pod
// bridge, veth, route or nftables rule in the node's network namespace, no
// mount under the data dir, no pod network namespace without a process.
// The same when containerd cannot be started to remove the pods. A
// second run finds nothing to do; `skiff uninstall --yes` then removes the
// data dir.
func TestKillallAndUninstall(t *testing.T) {
	const ip = "10.77.0.5"
	netns, dir := secondHost(t, "n5", ip)
	t.Cleanup(func() { _ = cl.client.CoreV1().Nodes().Delete(context.Background(), "node-5", metav1.DeleteOptions{}) })
	startAgent(t, netns, dir, "--node-name", "node-5", "--node-ip", ip, "--pod-cidr", "10.42.4.0/24")
	waitNodeReady(t, "node-5")
	if out, err := cl.skiff("images", "import", "--data-dir", dir, filepath.Join(filepath.Dir(cl.dataDir), "busybox.tar")); err != nil {
		t.Fatalf("import into node-5: %v %s", err, out)
	}
	before := podNetns()
	ns := namespace(t)
	ctx := context.Background()
	if _, err := cl.client.CoreV1().Secrets(ns).Create(ctx, &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"}, StringData: map[string]string{"k": "v"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	withSecret := busyboxPod(ns, "with-secret", "while true; do sleep 1; done")
	withSecret.Spec.NodeName = "node-5"
	withSecret.Spec.Volumes = []v1.Volume{{Name: "s", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "s"}}}}
	withSecret.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "s", MountPath: "/s"}}
	createPod(t, withSecret)
	web := webPod(ns, "web", "node-5")
	web.Spec.NodeSelector, web.Spec.NodeName = nil, "node-5"
	web.Spec.Containers[0].Ports[0].HostPort = 18080
	createPod(t, web)
	first := map[string]string{}
	for _, name := range []string{"with-secret", "web"} {
		first[name] = waitRunningReady(t, ns, name).Status.ContainerStatuses[0].ContainerID
	}
	if got := mountsUnder(dir); len(got) == 0 {
		t.Fatal("no mounts under the data dir while pods run: the test would prove nothing")
	}
	inNetns := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("ip", append([]string{"-n", netns}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
		return string(out)
	}
	if !strings.Contains(inNetns("link"), "cni0") {
		t.Fatal("no pod bridge while pods run")
	}

	killall := func(env ...string) (string, error) {
		t.Helper()
		cmd := exec.Command("/usr/bin/nsenter", "--net=/var/run/netns/"+netns, skiffBin, "killall", "--data-dir", dir)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	nothingLeft := func(when string) {
		t.Helper()
		if pids := processesNaming(dir); len(pids) > 0 {
			t.Errorf("%s: processes of the data dir left: %v", when, pids)
		}
		if links := inNetns("-o", "link"); strings.Contains(links, "cni0") || strings.Contains(links, "veth") {
			t.Errorf("%s: links left:\n%s", when, links)
		}
		if routes := inNetns("route", "show", "proto", "77"); strings.TrimSpace(routes) != "" {
			t.Errorf("%s: pod routes left:\n%s", when, routes)
		}
		if out, err := exec.Command("nsenter", "--net=/var/run/netns/"+netns, "nft", "list", "ruleset").CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "" {
			t.Errorf("%s: nftables rules left (%v):\n%s", when, err, out)
		}
		if got := mountsUnder(dir); len(got) > 0 {
			t.Errorf("%s: mounts left: %v", when, got)
		}
		for name := range podNetns() {
			if before[name] {
				continue
			}
			if pids, err := exec.Command("ip", "netns", "pids", name).Output(); err == nil && len(bytes.TrimSpace(pids)) == 0 {
				t.Errorf("%s: pod network namespace %s left with no process in it", when, name)
			}
		}
	}
	if out, err := killall(); err != nil {
		t.Fatalf("skiff killall: %v\n%s", err, out)
	}
	nothingLeft("after killall")

	// Again with pods running, but containerd cannot be started to
	// remove them (not on the PATH): killall says so, and still leaves
	// nothing, the pods' network namespaces included.
	startAgent(t, netns, dir, "--node-name", "node-5", "--node-ip", ip, "--pod-cidr", "10.42.4.0/24")
	for name, was := range first {
		// Running again in a new sandbox (the status the agent had
		// reported before killall says Running too).
		poll.Eventually(t, 60*time.Second, func() error {
			p, err := cl.client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if len(p.Status.ContainerStatuses) == 0 || p.Status.ContainerStatuses[0].ContainerID == was || p.Status.ContainerStatuses[0].State.Running == nil {
				return fmt.Errorf("pod %s not running again: %+v", name, p.Status.ContainerStatuses)
			}
			return nil
		})
	}
	if len(podNetns()) < len(before)+2 {
		t.Fatal("the pods' network namespaces are not there while they run: the test would prove nothing")
	}
	out, err := killall("PATH=/nonexistent")
	if err == nil || !strings.Contains(out, "pods could not be removed through the runtime") || !strings.Contains(out, "removed a pod network namespace the runtime left") {
		t.Errorf("killall without containerd: %v\n%s", err, out)
	}
	nothingLeft("after killall without containerd")
	if out, err := killall(); err != nil { // nothing left to do, and no error
		t.Errorf("killall again: %v\n%s", err, out)
	}
	if out, err := exec.Command("nsenter", "--net=/var/run/netns/"+netns, skiffBin, "uninstall", "--yes", "--data-dir", dir).CombinedOutput(); err != nil {
		t.Fatalf("skiff uninstall: %v\n%s", err, out)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the data dir is still there: %v", err)
	}
}

// mountsUnder lists the mount points under dir.
func mountsUnder(dir string) []string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			out = append(out, f[4])
		}
	}
	return out
}

// processesNaming lists the processes whose command line names a path
// under dir.
func processesNaming(dir string) []string {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var out []string
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if cmd := strings.ReplaceAll(string(b), "\x00", " "); strings.Contains(cmd, dir+"/") || strings.HasSuffix(strings.TrimSpace(cmd), dir) {
			out = append(out, filepath.Base(filepath.Dir(p))+": "+cmd)
		}
	}
	return out
}
