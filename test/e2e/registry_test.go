package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/test/poll"

	v1 "k8s.io/api/core/v1"
)

// An image pushed to a real registry (Debian's docker-registry on
// 127.0.0.1 inside the test namespace, pushed with skopeo) is pulled by
// tag; an image the registry lacks fails with ErrImagePull, then
// ImagePullBackOff.
func TestPullFromLocalRegistry(t *testing.T) {
	for _, bin := range []string{"docker-registry", "skopeo"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is missing (make test installs it): %v", bin, err)
		}
	}
	work := t.TempDir()
	cfg := filepath.Join(work, "registry.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:5000\n", filepath.Join(work, "data"))), 0o644); err != nil {
		t.Fatal(err)
	}
	reg := exec.Command("nsenter", "--net=/var/run/netns/"+cl.netns, "docker-registry", "serve", cfg)
	regLog := &syncBuffer{}
	reg.Stdout, reg.Stderr = regLog, regLog
	if err := reg.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(reg.Process.Pid, syscall.SIGTERM)
		_ = reg.Wait()
	})
	poll.Eventually(t, 20*time.Second, func() error {
		_, err := fetchInNetns("http://127.0.0.1:5000/v2/")
		return err
	})
	archive := filepath.Join(filepath.Dir(cl.dataDir), "busybox.tar")
	push := exec.Command("nsenter", "--net=/var/run/netns/"+cl.netns, "skopeo", "copy", "--dest-tls-verify=false",
		"oci-archive:"+archive, "docker://127.0.0.1:5000/e2e/busybox:pulled")
	if out, err := push.CombinedOutput(); err != nil {
		t.Fatalf("skopeo push: %v\n%s\nregistry log:\n%s", err, out, regLog.String())
	}

	ns := namespace(t)
	p := busyboxPod(ns, "pulled", `echo pulled-ok; while true; do sleep 1; done`)
	p.Spec.Containers[0].Image = "127.0.0.1:5000/e2e/busybox:pulled"
	p.Spec.Containers[0].ImagePullPolicy = v1.PullAlways
	createPod(t, p)
	got := waitRunningReady(t, ns, "pulled")
	if id := got.Status.ContainerStatuses[0].ImageID; !strings.Contains(id, "sha256:") {
		t.Errorf("imageID %q", id)
	}
	if !hasEvent(podEvents(t, ns, "pulled"), "Pulled", `Successfully pulled image "127.0.0.1:5000/e2e/busybox:pulled"`) {
		t.Errorf("no Pulled event: %v", reasons(podEvents(t, ns, "pulled")))
	}

	missing := busyboxPod(ns, "missing", `true`)
	missing.Spec.Containers[0].Image = "127.0.0.1:5000/e2e/nothing:here"
	createPod(t, missing)
	seen := map[string]bool{}
	poll.Eventually(t, 60*time.Second, func() error {
		got := getPod(t, ns, "missing")
		if len(got.Status.ContainerStatuses) > 0 && got.Status.ContainerStatuses[0].State.Waiting != nil {
			seen[got.Status.ContainerStatuses[0].State.Waiting.Reason] = true
		}
		if !seen["ImagePullBackOff"] {
			return fmt.Errorf("waiting reasons seen: %v", seen)
		}
		return nil
	})
	if ev := podEvents(t, ns, "missing"); !hasEvent(ev, "Failed", "Failed to pull image \"127.0.0.1:5000/e2e/nothing:here\"") || !hasEvent(ev, "Failed", "Error: ErrImagePull") {
		t.Errorf("events: %v", reasons(ev))
	}
	if getPod(t, ns, "missing").Status.Phase != v1.PodPending {
		t.Errorf("a pod whose image cannot be pulled left Pending")
	}
}
