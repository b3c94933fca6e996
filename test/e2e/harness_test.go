// Package e2e runs skiff end to end with its real node agent: containerd,
// runc and the CNI plugins, inside network namespaces the tests create, so
// nothing touches the machine's own network. kubectl and client-go reach
// the cluster from inside the namespace.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/test/serverlog"

	"golang.org/x/sys/unix"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-sh/skiff/internal/image"
)

var (
	skiffBin string
	cl       *cluster
)

// Images every test may use; tagged, so the default pull policy is
// IfNotPresent and no registry is needed.
const busyboxImage = "docker.io/library/busybox:1.35"

// required are the system parts the tests run for real; a machine without
// them fails the suite loudly rather than skipping.
var required = []string{"containerd", "containerd-shim-runc-v2", "runc", "ctr", "ip", "nsenter", "/usr/lib/cni/bridge", "/usr/lib/cni/host-local", "/usr/lib/cni/loopback", "/bin/busybox"}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "e2e: must run as root (network namespaces, containerd)")
		return 1
	}
	for _, bin := range required {
		if _, err := exec.LookPath(bin); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: %s is missing (make test installs it): %v\n", bin, err)
			return 1
		}
	}
	skiffBin = os.Getenv("SKIFF_BIN")
	// Pod network namespaces the suite's runtimes leave behind (a sandbox
	// torn down with its runtime) are removed at the end; others stay.
	before := podNetns()
	defer removeNewPodNetns(before)
	work, err := os.MkdirTemp("", "skiff-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(work)
	if skiffBin == "" {
		skiffBin = filepath.Join(work, "skiff")
		// make stamps the versions the embedded kubectl reports.
		build := exec.Command("make", "-C", "../..", "build", "BIN="+skiffBin)
		build.Stdout, build.Stderr = os.Stdout, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build skiff:", err)
			return 1
		}
	}
	imageTar := filepath.Join(work, "busybox.tar")
	b, err := image.Busybox(busyboxImage, "/bin/busybox")
	if err == nil {
		err = b.WriteLayoutFile(imageTar)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "busybox image:", err)
		return 1
	}
	cl, err = startCluster(work, "skiff-e2e-"+fmt.Sprint(os.Getpid()), "10.77.0.1")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e cluster:", err)
		if cl != nil {
			cl.dumpLogs()
			cl.stop()
		}
		return 1
	}
	if out, err := cl.skiff("images", "import", "--data-dir", cl.dataDir, imageTar); err != nil {
		fmt.Fprintln(os.Stderr, "import busybox:", err, out)
		cl.stop()
		return 1
	}
	code := m.Run()
	if refused := serverlog.Refusals(cl.logs.String()); refused != "" {
		fmt.Fprintf(os.Stderr, "e2e: the server refused its own components (a gap in the bootstrap policy):\n%s\n", refused)
		code = 1
	}
	if code != 0 {
		cl.dumpLogs()
	}
	cl.stop()
	return code
}

// cluster is one `skiff server` with its node agent, in its own network
// namespace.
type cluster struct {
	netns, nodeIP, dataDir string
	cmd                    *exec.Cmd
	logs                   *syncBuffer
	client                 kubernetes.Interface
	kubeconfig             string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startCluster makes the namespace (loopback plus a veth pair whose one end
// carries the node address) and starts skiff server inside it.
func startCluster(work, netns, nodeIP string) (*cluster, error) {
	c := &cluster{netns: netns, nodeIP: nodeIP, dataDir: filepath.Join(work, netns), logs: &syncBuffer{}}
	for _, args := range [][]string{
		{"netns", "add", netns},
		{"-n", netns, "link", "set", "lo", "up"},
		{"-n", netns, "link", "add", "host0", "type", "veth", "peer", "name", "host0p"},
		{"-n", netns, "addr", "add", nodeIP + "/24", "dev", "host0"},
		{"-n", netns, "link", "set", "host0", "up"},
		{"-n", netns, "link", "set", "host0p", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return c, fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	// The API listens on every address of the namespace (loopback and
	// host0), so that a second node in another test namespace can join.
	// Only the network namespace is entered: a new mount namespace would
	// hide the cgroup mounts runc needs (RUNTIME-NOTES).
	c.cmd = exec.Command("nsenter", "--net=/var/run/netns/"+netns, skiffBin, "server",
		"--data-dir", c.dataDir, "--bind-address", "0.0.0.0", "--node-ip", nodeIP, "--node-name", "node-"+strings.ReplaceAll(nodeIP, ".", "-"),
		"--advertise-address", nodeIP, "--ingress", "--log-level", "debug",
		// Projected tokens renew within the in-cluster test's run.
		"--service-account-token-refresh", "15s")
	c.cmd.Stdout, c.cmd.Stderr = c.logs, c.logs
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := c.cmd.Start(); err != nil {
		return c, fmt.Errorf("start skiff server: %w", err)
	}
	c.kubeconfig = filepath.Join(c.dataDir, "admin.kubeconfig")
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(c.kubeconfig); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return c, fmt.Errorf("no kubeconfig after 60s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	rest, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	if err != nil {
		return c, err
	}
	rest.Dial = c.dialInNetns
	rest.QPS, rest.Burst = 100, 200
	if c.client, err = kubernetes.NewForConfig(rest); err != nil {
		return c, err
	}
	for {
		node, err := c.client.CoreV1().Nodes().Get(context.Background(), "node-"+strings.ReplaceAll(nodeIP, ".", "-"), getOpts)
		if err == nil && nodeReady(node) {
			return c, nil
		}
		if time.Now().After(deadline) {
			return c, fmt.Errorf("node not Ready after 60s (last error %v)", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// dialInNetns opens a TCP connection from inside the cluster's network
// namespace.
func (c *cluster) dialInNetns(ctx context.Context, network, addr string) (net.Conn, error) {
	return dialIn(ctx, c.netns, network, addr)
}

// dialIn opens a connection from inside a test network namespace: a
// socket keeps the namespace it was created in, so only the dial runs on
// a thread switched into it.
func dialIn(ctx context.Context, netns, network, addr string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		own, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer own.Close()
		target, err := os.Open("/var/run/netns/" + netns)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("setns: %w", err)}
			return
		}
		conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		// Back to the original namespace before the thread serves other
		// goroutines; if that fails the thread stays locked and dies with
		// this goroutine. (A dying thread would also fire the Pdeathsig of
		// children it forked, so restoring matters.)
		if unix.Setns(int(own.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{conn, err}
	}()
	r := <-ch
	return r.conn, r.err
}

// skiff runs the skiff binary inside the namespace (kubectl, images ...).
func (c *cluster) skiff(args ...string) (string, error) {
	return c.skiffCtx(context.Background(), nil, args...)
}

func (c *cluster) skiffCtx(ctx context.Context, stdin []byte, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--net=/var/run/netns/" + c.netns, skiffBin}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.kubeconfig)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// kubectl runs the real kubectl against the cluster.
func (c *cluster) kubectl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := c.skiff(append([]string{"kubectl"}, args...)...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (c *cluster) dumpLogs() {
	logs := c.logs.String()
	if len(logs) > 60000 {
		logs = logs[len(logs)-60000:]
	}
	fmt.Fprintf(os.Stderr, "---- skiff server log (%s), tail ----\n%s\n", c.netns, logs)
}

// stop removes every pod (so the agent tears its containers, mounts and
// cgroups down), stops the server, clears anything left and deletes the
// namespace with every link in it.
func (c *cluster) stop() {
	if c.client != nil && c.cmd != nil && c.cmd.Process != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		_, _ = c.skiffCtx(ctx, nil, "kubectl", "delete", "pods", "--all", "--all-namespaces", "--grace-period=0", "--force", "--wait=false")
		for ctx.Err() == nil {
			entries, _ := os.ReadDir(filepath.Join(c.dataDir, "agent", "pods"))
			if len(entries) == 0 {
				break
			}
			time.Sleep(300 * time.Millisecond)
		}
		cancel()
	}
	stopProcess(c.cmd)
	killShims(c.dataDir)
	unmountUnder(c.dataDir)
	_ = exec.Command("ip", "netns", "del", c.netns).Run()
	_ = os.RemoveAll(c.dataDir)
}

// killShims stops containerd shims still serving containers of this data
// dir (they outlive containerd by design) and every process below them:
// the containers' processes would otherwise outlive the test.
func killShims(dataDir string) {
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	children := map[int][]int{}
	var shims []int
	for _, p := range procs {
		var pid int
		fmt.Sscanf(filepath.Base(filepath.Dir(p)), "%d", &pid)
		if stat, err := os.ReadFile(p); err == nil {
			// Fields after the command, which ends at the last ')': state, ppid.
			if i := bytes.LastIndexByte(stat, ')'); i > 0 {
				var state string
				var ppid int
				fmt.Sscanf(string(stat[i+1:]), " %s %d", &state, &ppid)
				children[ppid] = append(children[ppid], pid)
			}
		}
		b, err := os.ReadFile(filepath.Join(filepath.Dir(p), "cmdline"))
		if err != nil {
			continue
		}
		cmd := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(cmd, "containerd-shim") && strings.Contains(cmd, dataDir+"/") {
			shims = append(shims, pid)
		}
	}
	var kill func(pid int)
	kill = func(pid int) {
		_ = syscall.Kill(pid, syscall.SIGSTOP) // no new children while we look
		for _, c := range children[pid] {
			kill(c)
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, pid := range shims {
		kill(pid)
	}
	time.Sleep(200 * time.Millisecond)
}

func unmountUnder(dir string) {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var mounts []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			mounts = append(mounts, f[4])
		}
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		_ = syscall.Unmount(mounts[i], syscall.MNT_DETACH)
	}
}

// podNetns lists the CNI sandbox namespaces under /var/run/netns.
func podNetns() map[string]bool {
	out := map[string]bool{}
	entries, _ := os.ReadDir("/var/run/netns")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "cni-") {
			out[e.Name()] = true
		}
	}
	return out
}

// removeNewPodNetns deletes the sandbox namespaces that appeared since
// before and hold no process any more: this suite's containerds made them
// (a live sandbox elsewhere on the machine keeps its pause process).
func removeNewPodNetns(before map[string]bool) {
	for name := range podNetns() {
		if before[name] {
			continue
		}
		if pids, err := exec.Command("ip", "netns", "pids", name).Output(); err == nil && len(bytes.TrimSpace(pids)) == 0 {
			_ = exec.Command("ip", "netns", "del", name).Run()
		}
	}
}
