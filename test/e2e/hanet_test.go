package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-sh/skiff/test/poll"
)

// haNet is a bridge in a network namespace the test made and the hosts
// (network namespaces of their own, each on a veth) it joins: the machines
// of a cluster of servers and agents. Every process started under work
// must be gone when the test ends.
type haNet struct {
	t          *testing.T
	hub, work  string
	subnet     string // the first three octets, "10.80.0"
	nodeToken  string
	busyboxTar string
}

func newHANet(t *testing.T, name, subnet string) *haNet {
	n := &haNet{t: t, hub: fmt.Sprintf("skiff-%s-%d", name, os.Getpid()), work: t.TempDir(), subnet: subnet,
		busyboxTar: filepath.Join(filepath.Dir(cl.dataDir), "busybox.tar")}
	n.ip("netns", "add", n.hub)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", n.hub).Run() })
	n.ip("-n", n.hub, "link", "add", "br0", "type", "bridge")
	n.ip("-n", n.hub, "link", "set", "br0", "up")
	// Registered first, so it runs after every other cleanup: nothing the
	// test started may be left running.
	t.Cleanup(func() {
		if left := processesNaming(n.work); len(left) > 0 {
			t.Errorf("processes left after the test: %v", left)
			for _, p := range left {
				var pid int
				fmt.Sscanf(p, "%d:", &pid)
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	return n
}

// ip runs the ip command; a failure ends the test.
func (n *haNet) ip(args ...string) {
	n.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		n.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// host makes the network namespace <hub>-<link> with address
// <subnet>.<octet> on the bridge, and answers its name and address.
func (n *haNet) host(link string, octet int) (netns, ip string) {
	n.t.Helper()
	netns, ip = n.hub+"-"+link, fmt.Sprintf("%s.%d", n.subnet, octet)
	n.ip("netns", "add", netns)
	n.t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", netns).Run() })
	n.ip("-n", netns, "link", "set", "lo", "up")
	n.ip("-n", netns, "link", "add", "eth0", "type", "veth", "peer", "name", link, "netns", n.hub)
	n.ip("-n", netns, "addr", "add", ip+"/24", "dev", "eth0")
	n.ip("-n", netns, "link", "set", "eth0", "up")
	n.ip("-n", n.hub, "link", "set", link, "master", "br0")
	n.ip("-n", n.hub, "link", "set", link, "up")
	return netns, ip
}

// servers makes count server hosts, s1 at <subnet>.1 and on; none runs yet.
func (n *haNet) servers(count int) []*haServer {
	out := make([]*haServer, count)
	for i := range out {
		name := fmt.Sprintf("s%d", i+1)
		netns, ip := n.host(name, i+1)
		h := &haServer{netns: netns, ip: ip, dir: filepath.Join(n.work, name)}
		out[i] = h
		n.t.Cleanup(func() {
			h.kill()
			if h.node != "" {
				// Its node agent's containerd, shims and pods outlive a
				// killed server by design: take them down as an operator
				// would.
				_ = exec.Command("nsenter", "--net=/var/run/netns/"+h.netns, skiffBin, "killall", "--data-dir", h.dir).Run()
			}
			killShims(h.dir)
			unmountUnder(h.dir)
		})
		n.t.Cleanup(func() {
			if n.t.Failed() {
				n.t.Logf("server %s log:\n%s", h.ip, tail(h.logs.String(), 6000))
			}
		})
	}
	return out
}

// haAgent is a `skiff agent` on a host of its own.
type haAgent struct {
	netns, ip, dir, node string
	// servers is its --server list; bin the skiff it runs.
	servers, token, bin string
	cmd                 *exec.Cmd
	logs                *syncBuffer
}

// agent makes a host for a node agent (link names it, at <subnet>.<octet>)
// and starts it with the node token; it answers once the Node is Ready
// (seen through cs) and has the busybox image.
func (n *haNet) agent(cs func() kubernetes.Interface, link, node string, octet int, servers, bin string) *haAgent {
	n.t.Helper()
	netns, ip := n.host(link, octet)
	a := &haAgent{netns: netns, ip: ip, dir: filepath.Join(n.work, link), node: node, servers: servers, token: n.nodeToken, bin: bin}
	n.t.Cleanup(func() {
		a.stop()
		_ = exec.Command("nsenter", "--net=/var/run/netns/"+netns, skiffBin, "killall", "--data-dir", a.dir).Run()
		killShims(a.dir)
		unmountUnder(a.dir)
	})
	n.t.Cleanup(func() {
		if n.t.Failed() && a.logs != nil {
			n.t.Logf("agent %s log:\n%s", node, tail(a.logs.String(), 6000))
		}
	})
	a.start(n.t)
	poll.Eventually(n.t, 60*time.Second, func() error { return nodeIsReady(cs(), node) })
	if out, err := exec.Command("nsenter", "--net=/var/run/netns/"+netns, skiffBin, "images", "import", "--data-dir", a.dir, n.busyboxTar).CombinedOutput(); err != nil {
		n.t.Fatalf("import into %s: %v %s", node, err, out)
	}
	return a
}

func (a *haAgent) start(t *testing.T) {
	t.Helper()
	a.logs = &syncBuffer{}
	a.cmd = exec.Command("nsenter", "--net=/var/run/netns/"+a.netns, a.bin, "agent", "--server", a.servers,
		"--token", a.token, "--data-dir", a.dir, "--node-name", a.node, "--node-ip", a.ip)
	a.cmd.Stdout, a.cmd.Stderr = a.logs, a.logs
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
}

// stop ends the agent with SIGTERM (its pods go on running), or SIGKILL
// after 30 s.
func (a *haAgent) stop() {
	stopProcess(a.cmd)
}

// stopProcess sends SIGTERM to a process started with exec.Cmd and waits
// for it, or kills it after 30 s; a process not running is left alone.
func stopProcess(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil || cmd.ProcessState != nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// nodeIsReady is nil when the Node is Ready.
func nodeIsReady(cs kubernetes.Interface, name string) error {
	node, err := cs.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if !nodeReady(node) {
		return fmt.Errorf("%s not Ready: %+v", name, node.Status.Conditions)
	}
	return nil
}

// haServer is one `skiff server` of a cluster of servers, in a network
// namespace of its own on a bridge the test made.
type haServer struct {
	netns, ip, dir string
	args           []string
	// bin is the skiff binary it runs (skiffBin when empty).
	bin string
	// node, when set, runs the server's node agent as this Node.
	node string
	cmd  *exec.Cmd
	logs *syncBuffer
}

func (h *haServer) start(t *testing.T) {
	t.Helper()
	h.logs = &syncBuffer{}
	argv := []string{"--net=/var/run/netns/" + h.netns, h.binary(), "server", "--data-dir", h.dir,
		"--bind-address", "0.0.0.0", "--advertise-address", h.ip}
	if h.node == "" {
		argv = append(argv, "--disable-agent")
	} else {
		argv = append(argv, "--node-name", h.node, "--node-ip", h.ip)
	}
	argv = append(argv, h.args...)
	h.cmd = exec.Command("nsenter", argv...)
	h.cmd.Stdout, h.cmd.Stderr = h.logs, h.logs
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
}

func (h *haServer) binary() string {
	if h.bin != "" {
		return h.bin
	}
	return skiffBin
}

func (h *haServer) kill() {
	if h.cmd != nil && h.cmd.Process != nil && h.cmd.ProcessState == nil {
		_ = h.cmd.Process.Kill()
		_ = h.cmd.Wait()
	}
}

func (h *haServer) stop() { stopProcess(h.cmd) }

// client reaches this server's API from inside its namespace; the admin
// kubeconfig of any server works for all (they share the CA).
func (h *haServer) client(t *testing.T) kubernetes.Interface {
	t.Helper()
	return kubernetes.NewForConfigOrDie(h.restConfig(t))
}

func (h *haServer) restConfig(t *testing.T) *rest.Config {
	t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", filepath.Join(h.dir, "admin.kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	netns := h.netns
	rc.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return dialIn(ctx, netns, network, addr)
	}
	rc.Timeout = 10 * time.Second
	return rc
}

// warnings collects the Warning headers a client receives.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, msg)
}

func (h *haServer) waitReady(t *testing.T, within time.Duration) {
	t.Helper()
	poll.Eventually(t, within, func() error {
		if _, err := os.Stat(filepath.Join(h.dir, "admin.kubeconfig")); err != nil {
			return fmt.Errorf("%s: no kubeconfig yet", h.ip)
		}
		body, err := h.client(t).Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(context.Background())
		if err != nil || string(body) != "ok" {
			return fmt.Errorf("%s not ready: %v %s\n%s", h.ip, err, body, tail(h.logs.String(), 2000))
		}
		return nil
	})
}

// writeLoad creates ConfigMaps named w<worker>-<n> in default, one worker
// per client, until finish, and remembers every write the API
// acknowledged.
type writeLoad struct {
	acked    sync.Map
	failures atomic.Int64
	stop     chan struct{}
	wg       sync.WaitGroup
}

// startWrites starts a worker per client, each pausing between writes.
func startWrites(clients []kubernetes.Interface, pause time.Duration) *writeLoad {
	l := &writeLoad{stop: make(chan struct{})}
	for w, cs := range clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				case <-time.After(pause):
				}
				name := fmt.Sprintf("w%d-%d", w, i)
				if _, err := cs.CoreV1().ConfigMaps("default").Create(context.Background(), &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err == nil {
					l.acked.Store(name, true)
				} else {
					l.failures.Add(1)
				}
			}
		}()
	}
	return l
}

// finish stops the workers and checks through h that every acknowledged
// write is there; it answers how many were acknowledged and how many
// failed. No acknowledged write at all ends the test.
func (l *writeLoad) finish(t *testing.T, h *haServer) (acked int, failed int64) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	// Thousands of reads: without client-go's default limit of 5 a second.
	rc := h.restConfig(t)
	rc.QPS = -1
	cs := kubernetes.NewForConfigOrDie(rc)
	l.acked.Range(func(k, _ any) bool {
		acked++
		if _, err := cs.CoreV1().ConfigMaps("default").Get(context.Background(), k.(string), metav1.GetOptions{}); err != nil {
			t.Errorf("acknowledged write %s lost: %v", k, err)
		}
		return true
	})
	if acked == 0 {
		t.Fatal("no write was acknowledged")
	}
	return acked, l.failures.Load()
}
