package runtime

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The pause program must run, ignore SIGCHLD, catch SIGTERM/SIGINT and exit 0
// on them.
func TestPauseProgram(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		p := filepath.Join(t.TempDir(), "pause")
		if err := os.WriteFile(p, pauseELF(), 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(p)
		if err := cmd.Start(); err != nil {
			t.Fatalf("start pause: %v", err)
		}
		ign, cgt := waitSignalMasks(t, cmd.Process.Pid)
		if ign&(1<<(sigCHLD-1)) == 0 {
			t.Errorf("SIGCHLD not ignored: SigIgn=%x", ign)
		}
		if want := uint64(1<<(sigTERM-1) | 1<<(sigINT-1)); cgt&want != want {
			t.Errorf("SIGTERM/SIGINT not caught: SigCgt=%x", cgt)
		}
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("pause after %v: %v, want exit 0", sig, err)
		}
	}
}

// waitSignalMasks reads SigIgn and SigCgt of pid once its handlers are set.
func waitSignalMasks(t *testing.T, pid int) (ign, cgt uint64) {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(status), "\n") {
			k, v, _ := strings.Cut(line, ":\t")
			switch k {
			case "SigIgn":
				ign, _ = strconv.ParseUint(v, 16, 64)
			case "SigCgt":
				cgt, _ = strconv.ParseUint(v, 16, 64)
			}
		}
		if cgt != 0 {
			return ign, cgt
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("pause (pid %d) never installed its handlers", pid)
	return 0, 0
}
