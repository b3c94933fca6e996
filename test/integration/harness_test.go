// Package integration runs the real skiff binary (embedded etcd on a temp
// dir, loopback ports) and drives it with client-go and real kubectl.
package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/test/serverlog"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// skiffBin is the binary under test: $SKIFF_BIN, or built once by TestMain.
var skiffBin string

func TestMain(m *testing.M) {
	skiffBin = os.Getenv("SKIFF_BIN")
	if skiffBin == "" {
		dir, err := os.MkdirTemp("", "skiff-bin")
		if err != nil {
			panic(err)
		}
		skiffBin = filepath.Join(dir, "skiff")
		// make stamps the versions the embedded kubectl reports.
		build := exec.Command("make", "-C", "../..", "build", "BIN="+skiffBin)
		build.Stdout, build.Stderr = os.Stdout, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build skiff:", err)
			os.Exit(1)
		}
		code := m.Run()
		os.RemoveAll(dir)
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// server is one running `skiff server`.
type server struct {
	t          testing.TB
	dataDir    string
	port       int
	etcdPort   int
	kubeconfig string
	cmd        *exec.Cmd
	logs       *logBuffer
	extraArgs  []string
	// refusalsExpected: the test takes a permission from a component on
	// purpose, so its refusals in the log are no failure.
	refusalsExpected bool
}

// settle is how long a controller or the scheduler gets to bring the
// cluster to the state a test waits for.
const settle = 30 * time.Second

// logBuffer collects a server's output, which tests read while it runs.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The addresses a server on port 0 reports in its log.
var (
	apiAddress  = regexp.MustCompile(`msg="serving the Kubernetes API" address=https://127\.0\.0\.1:(\d+)`)
	etcdAddress = regexp.MustCompile(`msg="embedded etcd ready" endpoint=https://127\.0\.0\.1:(\d+)`)
)

// startServer starts skiff server on loopback with a fresh data dir and
// waits until /readyz answers ok. It is stopped when the test ends.
func startServer(t testing.TB, extra ...string) *server {
	t.Helper()
	return startServerIn(t, t.TempDir(), extra...)
}

// startServerIn is startServer with the data dir given.
func startServerIn(t testing.TB, dataDir string, extra ...string) *server {
	t.Helper()
	s := &server{t: t, dataDir: dataDir, extraArgs: extra}
	s.kubeconfig = filepath.Join(s.dataDir, "admin.kubeconfig")
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *server) start() {
	s.t.Helper()
	// Port 0 on the first start: the server takes free ports and says
	// which. A restart asks for the same API port again, as a restarted
	// server would have, so clients of the first one reconnect.
	args := []string{"server", "--data-dir", s.dataDir, "--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(s.port),
		"--etcd-client-port", "0", "--etcd-peer-port", "0", "--advertise-address", "127.0.0.1",
		// Control-plane tests run no node; the node agent has its own
		// end-to-end tests inside network namespaces (test/e2e).
		"--disable-agent"}
	s.cmd = exec.Command(skiffBin, append(args, s.extraArgs...)...)
	s.logs = &logBuffer{}
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	// If the test binary dies, the server dies with it.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start skiff server: %v", err)
	}
	s.waitReady()
}

func (s *server) waitReady() {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		// The kubeconfig is written before the API serves, so once the
		// log names the port it is complete.
		if m := apiAddress.FindStringSubmatch(s.logs.String()); m != nil {
			s.port, _ = strconv.Atoi(m[1])
			if e := etcdAddress.FindStringSubmatch(s.logs.String()); e != nil {
				s.etcdPort, _ = strconv.Atoi(e[1])
			}
			cfg := s.restConfig()
			cs := kubernetes.NewForConfigOrDie(cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
			cancel()
			if err == nil && string(body) == "ok" {
				return
			}
		}
		if s.cmd.ProcessState != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("skiff server did not become ready; logs:\n%s", s.logs.String())
}

// stop sends SIGTERM and waits; SIGKILL after 15 s. A server that refused
// its own components (see componentRefusals) fails the test.
func (s *server) stop() {
	if s.cmd == nil || s.cmd.Process == nil || s.cmd.ProcessState != nil {
		return
	}
	defer func() {
		if refused := serverlog.Refusals(s.logs.String()); refused != "" && !s.refusalsExpected {
			s.t.Errorf("the server refused its own components (a gap in the bootstrap policy):\n%s", refused)
		}
	}()
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
}

// kill stops the server with SIGKILL, as a crash would.
func (s *server) kill() {
	s.cmd.Process.Kill()
	s.cmd.Wait()
}

func (s *server) restConfig() *rest.Config {
	cfg, err := clientcmd.BuildConfigFromFlags("", s.kubeconfig)
	if err != nil {
		s.t.Fatalf("load kubeconfig: %v", err)
	}
	cfg.QPS, cfg.Burst = 1000, 2000
	return cfg
}

func (s *server) client() *kubernetes.Clientset {
	return kubernetes.NewForConfigOrDie(s.restConfig())
}

// kubectl runs the real kubectl embedded in skiff against the server.
func (s *server) kubectl(args ...string) (string, string, error) {
	return s.kubectlStdin("", args...)
}

func (s *server) kubectlStdin(stdin string, args ...string) (string, string, error) {
	cmd := exec.Command(skiffBin, append([]string{"kubectl", "--kubeconfig", s.kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG=", "HOME="+s.dataDir)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// mustKubectl runs kubectl and fails the test on error.
func (s *server) mustKubectl(args ...string) string {
	s.t.Helper()
	out, errOut, err := s.kubectl(args...)
	if err != nil {
		s.t.Fatalf("kubectl %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// etcdTLS is the client side of the server's embedded etcd: its CA and the
// client certificate the server leaves for tools and other servers.
func (s *server) etcdTLS() (caFile, certFile, keyFile string) {
	dir := filepath.Join(s.dataDir, "pki", "etcd")
	return filepath.Join(dir, "ca.crt"), filepath.Join(dir, "etcd-client.crt"), filepath.Join(dir, "etcd-client.key")
}

// etcdClient connects to the server's embedded etcd over TLS.
func (s *server) etcdClient() *clientv3.Client {
	s.t.Helper()
	ca, cert, key := s.etcdTLS()
	tlsCfg, err := (transport.TLSInfo{CertFile: cert, KeyFile: key, TrustedCAFile: ca}).ClientConfig()
	if err != nil {
		s.t.Fatal(err)
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{fmt.Sprintf("https://127.0.0.1:%d", s.etcdPort)}, TLS: tlsCfg, DialTimeout: 5 * time.Second})
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

// mustKubectlStdin runs kubectl with stdin and fails the test on error.
func (s *server) mustKubectlStdin(stdin string, args ...string) string {
	s.t.Helper()
	out, errOut, err := s.kubectlStdin(stdin, args...)
	if err != nil {
		s.t.Fatalf("kubectl %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}
