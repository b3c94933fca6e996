package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// secondHost makes a second machine for one test: a network namespace
// holding the far end of the first node's veth (host0p) with address ip.
// It returns the namespace and a data directory; cleanup stops what ran
// there and hands the link back, since a veth deleted with its namespace
// takes its peer — the first node's address — with it.
func secondHost(t *testing.T, suffix, ip string) (netns, dir string) {
	t.Helper()
	netns = cl.netns + "-" + suffix
	for _, args := range [][]string{
		{"netns", "add", netns},
		{"-n", netns, "link", "set", "lo", "up"},
		{"-n", cl.netns, "link", "set", "host0p", "netns", netns},
		{"-n", netns, "addr", "add", ip + "/24", "dev", "host0p"},
		{"-n", netns, "link", "set", "host0p", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	dir = filepath.Join(filepath.Dir(cl.dataDir), netns)
	t.Cleanup(func() {
		killShims(dir)
		unmountUnder(dir)
		if out, err := exec.Command("ip", "-n", netns, "link", "set", "host0p", "netns", cl.netns).CombinedOutput(); err != nil {
			t.Errorf("return host0p to %s: %v: %s", cl.netns, err, out)
		}
		_ = exec.Command("ip", "-n", cl.netns, "link", "set", "host0p", "up").Run()
		_ = exec.Command("ip", "netns", "del", netns).Run()
		_ = os.RemoveAll(dir)
	})
	return netns, dir
}

// nodeToken is the join token the server wrote.
func nodeToken(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(cl.dataDir, "node-token"))
	if err != nil {
		t.Fatalf("server wrote no node-token: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// startAgent runs `skiff agent` inside netns, joined with the server's
// token, until the returned stop (also run at cleanup). Its log is shown
// when the test fails.
func startAgent(t *testing.T, netns, dir string, args ...string) (logs *syncBuffer, stop func()) {
	t.Helper()
	logs = &syncBuffer{}
	argv := append([]string{"--net=/var/run/netns/" + netns, skiffBin, "agent", "--server", "https://" + cl.nodeIP + ":6443",
		"--token", nodeToken(t), "--data-dir", dir}, args...)
	agent := exec.Command("nsenter", argv...)
	agent.Stdout, agent.Stderr = logs, logs
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	stop = func() { stopProcess(agent) }
	t.Cleanup(stop)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent log (%s):\n%s", netns, logs.String())
		}
	})
	return logs, stop
}
