package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-sh/skiff/test/poll"
)

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// kubernetesEndpoints are the addresses the kubernetes Service lists.
func kubernetesEndpoints(cs kubernetes.Interface) ([]string, error) {
	ep, err := cs.CoreV1().Endpoints("default").Get(context.Background(), "kubernetes", metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range ep.Subsets {
		for _, a := range s.Addresses {
			out = append(out, a.IP)
		}
	}
	sort.Strings(out)
	return out, nil
}

// TestHighAvailability: three servers on one embedded etcd cluster, each
// in its own network namespace: the first with --cluster-init, two joining
// with --server and the server token (their etcd members added as
// learners and promoted). Every server serves the API and writes through
// one serves reads through another; the kubernetes Service lists all
// three. The server holding the controllers' lease is killed -9 while
// writers work through the other two: the API answers, no acknowledged
// write is lost, the lease moves, the dead server leaves the endpoints; it
// comes back with its data dir and rejoins without operator action.
func TestHighAvailability(t *testing.T) {
	hn := newHANet(t, "ha", "10.80.0")
	work := hn.work
	servers := hn.servers(3)
	// The second server also runs its node agent: deleting its Node
	// removes its etcd member (the end of the test).
	servers[1].node = "ha-s2"
	first := servers[0]
	first.args = []string{"--cluster-init"}
	first.start(t)
	first.waitReady(t, 60*time.Second)
	token, err := os.ReadFile(filepath.Join(first.dir, "server-token"))
	if err != nil {
		t.Fatal(err)
	}
	// A node token is refused: it only grants node certificates.
	nodeToken, _ := os.ReadFile(filepath.Join(first.dir, "node-token"))
	out, err := exec.Command("nsenter", "--net=/var/run/netns/"+servers[1].netns, skiffBin, "server", "--data-dir", filepath.Join(work, "refused"),
		"--disable-agent", "--advertise-address", servers[1].ip, "--server", "https://10.80.0.1:6443", "--token", strings.TrimSpace(string(nodeToken))).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "use the server token") {
		t.Errorf("joining with the node token: %v\n%s", err, tail(string(out), 2000))
	}
	joinAttempt := func(dir, tok string) (string, error) {
		out, err := exec.Command("nsenter", "--net=/var/run/netns/"+servers[1].netns, skiffBin, "server", "--data-dir", dir,
			"--disable-agent", "--advertise-address", servers[1].ip, "--server", "https://10.80.0.1:6443", "--token", tok).CombinedOutput()
		return string(out), err
	}
	// A token naming another CA: refused before anything is fetched.
	wrongHash := "K10" + strings.Repeat("0", 64) + strings.TrimSpace(string(token))[67:]
	if out, err := joinAttempt(filepath.Join(work, "wrong-hash"), wrongHash); err == nil || !strings.Contains(out, "does not match the join token's hash") {
		t.Errorf("a token of another CA: %v\n%s", err, tail(out, 2000))
	}
	if _, err := os.Stat(filepath.Join(work, "wrong-hash", "pki", "ca.key")); err == nil {
		t.Error("a refused join wrote the cluster's keys")
	}
	// A data dir of another cluster: refused, left as it was.
	other := filepath.Join(work, "other-cluster")
	otherCA, _, _ := serviceCert(t, "other")
	if err := os.MkdirAll(filepath.Join(other, "pki"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, "pki", "ca.crt"), otherCA, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := joinAttempt(other, strings.TrimSpace(string(token))); err == nil || !strings.Contains(out, "belongs to another cluster") {
		t.Errorf("a data dir of another cluster: %v\n%s", err, tail(out, 2000))
	}
	if got, _ := os.ReadFile(filepath.Join(other, "pki", "ca.crt")); string(got) != string(otherCA) {
		t.Error("a refused join changed the other cluster's CA")
	}
	for _, h := range servers[1:] {
		h.args = []string{"--server", "https://10.80.0.1:6443", "--token", strings.TrimSpace(string(token))}
		h.start(t)
		h.waitReady(t, 90*time.Second)
	}
	all := []string{"10.80.0.1", "10.80.0.2", "10.80.0.3"}
	poll.Eventually(t, 30*time.Second, func() error {
		got, err := kubernetesEndpoints(servers[2].client(t))
		if err != nil || strings.Join(got, ",") != strings.Join(all, ",") {
			return fmt.Errorf("kubernetes endpoints %v (%v), want %v", got, err, all)
		}
		return nil
	})
	ctx := context.Background()

	// Two nodes: one knows two of the servers (the first of which will
	// die), the other only the first: it learns the others from the
	// kubernetes Service's endpoints.
	nodeTok, _ := os.ReadFile(filepath.Join(first.dir, "node-token"))
	hn.nodeToken = strings.TrimSpace(string(nodeTok))
	viaSecond := func() kubernetes.Interface { return servers[1].client(t) }
	hn.agent(viaSecond, "a1", "ha-node", 10, "https://10.80.0.1:6443,https://10.80.0.2:6443", skiffBin)
	hn.agent(viaSecond, "a2", "ha-node2", 11, "https://10.80.0.1:6443", skiffBin)
	for pod, node := range map[string]string{"steady": "ha-node", "steady2": "ha-node2"} {
		p := busyboxPod("default", pod, "while true; do sleep 1; done")
		p.Spec.NodeName = node
		if _, err := servers[1].client(t).CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	runningPod := func(cs kubernetes.Interface, name string) (*v1.Pod, error) { return runningPodIn(cs, "default", name) }
	var before, before2 *v1.Pod
	poll.Eventually(t, 60*time.Second, func() (err error) { before, err = runningPod(servers[1].client(t), "steady"); return err })
	poll.Eventually(t, 60*time.Second, func() (err error) { before2, err = runningPod(servers[1].client(t), "steady2"); return err })

	if _, err := servers[0].client(t).CoreV1().ConfigMaps("default").Create(ctx, &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "shared"}, Data: map[string]string{"k": "v"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, err := servers[2].client(t).CoreV1().ConfigMaps("default").Get(ctx, "shared", metav1.GetOptions{}); err != nil || got.Data["k"] != "v" {
		t.Fatalf("read through the third server: %v %v", got, err)
	}
	lease, err := servers[1].client(t).CoordinationV1().Leases("kube-system").Get(ctx, "kube-controller-manager", metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil {
		t.Fatalf("controller lease: %v %v", lease, err)
	}
	holder := *lease.Spec.HolderIdentity

	// Writers on the two survivors while the first server dies.
	load := startWrites([]kubernetes.Interface{servers[1].client(t), servers[2].client(t), servers[1].client(t), servers[2].client(t)}, 0)
	time.Sleep(time.Second)
	killed := time.Now()
	first.kill()
	// The API answers through the others within 5 s.
	poll.Eventually(t, 5*time.Second, func() error {
		_, err := servers[1].client(t).CoreV1().ConfigMaps("default").Get(ctx, "shared", metav1.GetOptions{})
		return err
	})
	t.Logf("API through a survivor %s after the kill", time.Since(killed).Round(time.Millisecond))
	time.Sleep(3 * time.Second)
	n, failed := load.finish(t, servers[2])
	t.Logf("%d acknowledged writes, all present; %d failed during the failover", n, failed)
	// The controllers' lease moves to a survivor within its duration
	// (if the dead server held it), and the dead server leaves the
	// endpoints once its master lease expires.
	poll.Eventually(t, 40*time.Second, func() error {
		l, err := servers[2].client(t).CoordinationV1().Leases("kube-system").Get(ctx, "kube-controller-manager", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if h := *l.Spec.HolderIdentity; h == holder && l.Spec.RenewTime.Time.Before(killed) {
			return fmt.Errorf("lease still held by %s, renewed %s", h, l.Spec.RenewTime)
		}
		return nil
	})
	// The node fails over: it stays Ready past the node monitor's grace
	// period, its pod keeps its container, and a new pod starts on it.
	fresh := busyboxPod("default", "after-failover", "while true; do sleep 1; done")
	fresh.Spec.NodeName = "ha-node"
	if _, err := servers[2].client(t).CoreV1().Pods("default").Create(ctx, fresh, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 60*time.Second, func() error { _, err := runningPod(servers[2].client(t), "after-failover"); return err })
	// The node that knew only the dead server found the others.
	fresh2 := busyboxPod("default", "after-failover2", "while true; do sleep 1; done")
	fresh2.Spec.NodeName = "ha-node2"
	if _, err := servers[2].client(t).CoreV1().Pods("default").Create(ctx, fresh2, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 60*time.Second, func() error { _, err := runningPod(servers[2].client(t), "after-failover2"); return err })
	time.Sleep(time.Until(killed.Add(45 * time.Second)))
	for _, node := range []string{"ha-node", "ha-node2"} {
		if err := nodeIsReady(servers[2].client(t), node); err != nil {
			t.Errorf("45 s after its server died: %v", err)
		}
	}
	for pod, was := range map[string]*v1.Pod{"steady": before, "steady2": before2} {
		if after, err := runningPod(servers[2].client(t), pod); err != nil || after.Status.ContainerStatuses[0].ContainerID != was.Status.ContainerStatuses[0].ContainerID ||
			after.Status.ContainerStatuses[0].RestartCount != 0 {
			t.Errorf("pod %s did not keep its container across the failover: %v %+v", pod, err, after)
		}
	}
	poll.Eventually(t, 40*time.Second, func() error {
		got, err := kubernetesEndpoints(servers[1].client(t))
		if err != nil || strings.Join(got, ",") != "10.80.0.2,10.80.0.3" {
			return fmt.Errorf("kubernetes endpoints %v (%v)", got, err)
		}
		return nil
	})
	// While it is down, the Secrets' key is rotated through one
	// survivor: both survivors hold each step before the next.
	newKey := rotateWhileOneIsDown(t, servers[1], servers[2])
	// It comes back with its data dir and no flags of joining.
	first.args = nil
	first.start(t)
	first.waitReady(t, 60*time.Second)
	if got, err := first.client(t).CoreV1().ConfigMaps("default").Get(ctx, "w0-0", metav1.GetOptions{}); err != nil {
		t.Errorf("the returned server does not see what was written while it was away: %v %v", got, err)
	}
	// It loaded the rotated key before serving: the Secrets read there.
	checkSecretsRead(t, first, newKey)
	poll.Eventually(t, 30*time.Second, func() error {
		got, err := kubernetesEndpoints(first.client(t))
		if err != nil || strings.Join(got, ",") != strings.Join(all, ",") {
			return fmt.Errorf("kubernetes endpoints %v (%v)", got, err)
		}
		return nil
	})
	members := func() []map[string]any {
		t.Helper()
		raw, err := servers[1].client(t).Discovery().RESTClient().Get().AbsPath("/skiff/v1/etcd-members").DoRaw(ctx)
		if err != nil {
			t.Fatalf("etcd members: %v %s", err, raw)
		}
		var out []map[string]any
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if m := members(); len(m) != 3 || m[0]["learner"] == true || m[1]["learner"] == true || m[2]["learner"] == true {
		t.Errorf("members after the joins: %v", m)
	}
	// Shrinking: a running server cannot leave; once stopped, it leaves
	// through another and the cluster is two.
	leave := func(h *haServer) (string, error) {
		out, err := exec.Command("nsenter", "--net=/var/run/netns/"+h.netns, skiffBin, "server", "--leave", "--server", "https://10.80.0.1:6443",
			"--data-dir", h.dir, "--advertise-address", h.ip, "--disable-agent").CombinedOutput()
		return string(out), err
	}
	if out, err := leave(servers[2]); err == nil || !strings.Contains(out, "still runs") {
		t.Errorf("leaving while running: %v %s", err, out)
	}
	servers[2].stop()
	if out, err := leave(servers[2]); err != nil {
		t.Fatalf("leave: %v %s", err, out)
	}
	if m := members(); len(m) != 2 {
		t.Errorf("members after the leave: %v", m)
	}
	poll.Eventually(t, 30*time.Second, func() error {
		got, err := kubernetesEndpoints(servers[1].client(t))
		if err != nil || strings.Join(got, ",") != "10.80.0.1,10.80.0.2" {
			return fmt.Errorf("kubernetes endpoints %v (%v)", got, err)
		}
		return nil
	})
	if _, err := servers[0].client(t).CoreV1().ConfigMaps("default").Create(ctx, &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "after-leave"}}, metav1.CreateOptions{}); err != nil {
		t.Errorf("a write on the two left: %v", err)
	}
	// Two left; killing one loses the quorum: writes fail with a 503 that
	// names the way out, within bounded time; the server back, they work.
	servers[1].kill()
	start := time.Now()
	_, err = servers[0].client(t).CoreV1().ConfigMaps("default").Create(ctx, &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "no-quorum"}}, metav1.CreateOptions{})
	if !apierrors.IsServiceUnavailable(err) || !strings.Contains(err.Error(), "--cluster-reset") {
		t.Errorf("a write without quorum: %v", err)
	}
	t.Logf("a write without quorum failed after %s: %v", time.Since(start).Round(time.Millisecond), err)
	if time.Since(start) > 20*time.Second {
		t.Errorf("a write without quorum took %s", time.Since(start))
	}
	// Reads from the cache (resourceVersion 0, as informers list) still
	// answer, and say they may be stale.
	warned := &warnings{}
	rc := servers[0].restConfig(t)
	rc.WarningHandler = warned
	if l, err := kubernetes.NewForConfigOrDie(rc).CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{ResourceVersion: "0"}); err != nil || len(l.Items) == 0 {
		t.Errorf("a cached read without quorum: %v", err)
	}
	if len(warned.msgs) == 0 || !strings.Contains(warned.msgs[0], "lost its quorum") {
		t.Errorf("a read without quorum is not marked: %q", warned.msgs)
	}
	servers[1].args = nil
	servers[1].start(t)
	servers[1].waitReady(t, 60*time.Second)
	poll.Eventually(t, 30*time.Second, func() error {
		_, err := servers[0].client(t).CoreV1().ConfigMaps("default").Create(ctx, &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "quorum-back"}}, metav1.CreateOptions{})
		return err
	})
	// Deleting the Node of a server that runs a node agent removes its
	// etcd member, as `kubectl delete node` does on k3s.
	if err := servers[0].client(t).CoreV1().Nodes().Delete(ctx, "ha-s2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 20*time.Second, func() error {
		raw, err := servers[0].client(t).Discovery().RESTClient().Get().AbsPath("/skiff/v1/etcd-members").DoRaw(ctx)
		if err != nil {
			return err
		}
		var m []map[string]any
		if err := json.Unmarshal(raw, &m); err != nil || len(m) != 1 || m[0]["peerURLs"].([]any)[0] != "https://10.80.0.1:2380" {
			return fmt.Errorf("members after deleting ha-s2's Node: %s", raw)
		}
		return nil
	})
	poll.Eventually(t, 30*time.Second, func() error {
		_, err := servers[0].client(t).CoreV1().ConfigMaps("default").Create(ctx, &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "alone-"}}, metav1.CreateOptions{})
		return err
	})
	restoreAndRejoin(t, servers, strings.TrimSpace(string(token)))
	for _, h := range servers {
		h.stop()
	}
}

// restoreAndRejoin: a snapshot, a namespace lost after it, every server
// stopped, the first restored from the snapshot as a one-member cluster,
// and the others joining it again with their usual flags: the one that
// left earlier (no etcd data), and the one whose member was removed, which
// still holds the old cluster's etcd data and must set it aside by itself.
// The namespace and its objects are back on every server.
func restoreAndRejoin(t *testing.T, servers []*haServer, token string) {
	ctx := context.Background()
	first := servers[0]
	cs := first.client(t)
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "precious"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kept, err := cs.CoreV1().ConfigMaps("precious").Create(ctx, &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "keep"}, Data: map[string]string{"k": "v"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("nsenter", "--net=/var/run/netns/"+first.netns, skiffBin, "etcd-snapshot", "save", "--data-dir", first.dir, "--name", "before-loss").CombinedOutput()
	if err != nil {
		t.Fatalf("snapshot: %v %s", err, out)
	}
	snaps, _ := filepath.Glob(filepath.Join(first.dir, "snapshots", "before-loss-*"))
	if len(snaps) != 1 {
		t.Fatalf("snapshot files %v after: %s", snaps, out)
	}
	if err := cs.CoreV1().Namespaces().Delete(ctx, "precious", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 60*time.Second, func() error {
		if _, err := cs.CoreV1().Namespaces().Get(ctx, "precious", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("namespace precious still there: %v", err)
		}
		return nil
	})
	for _, h := range servers {
		h.stop()
	}
	restoredAt := time.Now()
	first.args = []string{"--cluster-reset", "--cluster-reset-restore-path", snaps[0]}
	first.start(t)
	first.waitReady(t, 60*time.Second)
	t.Logf("restored server ready %s after its start", time.Since(restoredAt).Round(time.Millisecond))
	got, err := first.client(t).CoreV1().ConfigMaps("precious").Get(ctx, "keep", metav1.GetOptions{})
	if err != nil || got.UID != kept.UID || got.Data["k"] != "v" {
		t.Fatalf("after the restore: %+v %v", got, err)
	}
	joinArgs := []string{"--server", "https://10.80.0.1:6443", "--token", token}
	for _, h := range servers[1:] {
		h.args = joinArgs
		h.start(t)
		h.waitReady(t, 90*time.Second)
	}
	if !strings.Contains(servers[1].logs.String(), "its etcd data is set aside and it joins afresh") {
		t.Errorf("the removed member's server did not set its old etcd data aside:\n%s", tail(servers[1].logs.String(), 3000))
	}
	poll.Eventually(t, 60*time.Second, func() error {
		raw, err := first.client(t).Discovery().RESTClient().Get().AbsPath("/skiff/v1/etcd-members").DoRaw(ctx)
		if err != nil {
			return err
		}
		var m []map[string]any
		if err := json.Unmarshal(raw, &m); err != nil || len(m) != 3 || m[0]["learner"] == true || m[1]["learner"] == true || m[2]["learner"] == true {
			return fmt.Errorf("members after the rejoin: %s", raw)
		}
		return nil
	})
	for _, h := range servers[1:] {
		if got, err := h.client(t).CoreV1().ConfigMaps("precious").Get(ctx, "keep", metav1.GetOptions{}); err != nil || got.UID != kept.UID {
			t.Errorf("server %s after rejoining: %+v %v", h.ip, got, err)
		}
	}
	if _, err := servers[2].client(t).CoreV1().ConfigMaps("precious").Create(ctx, &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "after-restore"}}, metav1.CreateOptions{}); err != nil {
		t.Errorf("a write after the restore: %v", err)
	}
}

// secretsEncrypt runs `skiff secrets-encrypt` against h.
func (h *haServer) secretsEncrypt(args ...string) (string, error) {
	argv := append([]string{"--net=/var/run/netns/" + h.netns, skiffBin, "secrets-encrypt", "--data-dir", h.dir}, args...)
	out, err := exec.Command("nsenter", argv...).CombinedOutput()
	return string(out), err
}

// rotateWhileOneIsDown writes Secrets, rotates their key through one
// server and checks that every live server holds the new key and reads
// every Secret; it answers the new write key.
func rotateWhileOneIsDown(t *testing.T, through, other *haServer) string {
	t.Helper()
	ctx := context.Background()
	for i := range 20 {
		sec := &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("rot-%d", i)}, StringData: map[string]string{"v": fmt.Sprintf("value-%d", i)}}
		if _, err := other.client(t).CoreV1().Secrets("default").Create(ctx, sec, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	before, err := through.secretsEncrypt("status")
	if err != nil {
		t.Fatalf("status: %v\n%s", err, before)
	}
	began := time.Now()
	out, err := through.secretsEncrypt("rotate")
	if err != nil {
		t.Fatalf("rotate: %v\n%s\n%s", err, out, tail(through.logs.String(), 3000))
	}
	t.Logf("rotated through %s in %s:\n%s", through.ip, time.Since(began).Round(time.Millisecond), out)
	newKey := statusLine(out, "Write key:")
	if newKey == "" || newKey == statusLine(before, "Write key:") || !strings.Contains(out, "Rewritten:  20 Secrets") {
		t.Fatalf("before:\n%s\nafter:\n%s", before, out)
	}
	// Both live servers say they hold the last step; the dead one is
	// still at an older generation.
	st, err := other.secretsEncrypt("status")
	if err != nil {
		t.Fatalf("status through %s: %v\n%s", other.ip, err, st)
	}
	gen := statusLine(st, "Generation:")
	for _, h := range []*haServer{through, other} {
		if want := fmt.Sprintf("Server %s: %s (generation %s)", h.ip, newKey, strings.Fields(gen)[0]); !strings.Contains(st, want) {
			t.Errorf("status lacks %q:\n%s", want, st)
		}
	}
	if !strings.Contains(st, "Secrets sealed with "+newKey+": 20") {
		t.Errorf("the Secrets are not all sealed with %s:\n%s", newKey, st)
	}
	checkSecretsRead(t, other, newKey)
	return newKey
}

// checkSecretsRead: every Secret rotateWhileOneIsDown wrote reads through
// h, and h writes with key.
func checkSecretsRead(t *testing.T, h *haServer, key string) {
	t.Helper()
	ctx := context.Background()
	for i := range 20 {
		sec, err := h.client(t).CoreV1().Secrets("default").Get(ctx, fmt.Sprintf("rot-%d", i), metav1.GetOptions{})
		if err != nil || string(sec.Data["v"]) != fmt.Sprintf("value-%d", i) {
			t.Fatalf("secret rot-%d through %s: %v %v", i, h.ip, sec, err)
		}
	}
	st, err := h.secretsEncrypt("status")
	if err != nil || statusLine(st, "Write key:") != key {
		t.Errorf("%s writes with another key than %s: %v\n%s", h.ip, key, err, st)
	}
}

// statusLine is the value after prefix on the first line that starts
// with it.
func statusLine(out, prefix string) string {
	for line := range strings.SplitSeq(out, "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
