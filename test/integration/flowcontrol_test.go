package integration

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-sh/skiff/test/poll"
)

// A level with few seats and short queues, and a schema sending alice's
// and bob's requests to it, each user a flow of their own.
const tightLevel = `apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: PriorityLevelConfiguration
metadata: {name: tight}
spec:
  type: Limited
  limited:
    nominalConcurrencyShares: 1
    limitResponse:
      type: Queue
      queuing: {queues: 16, handSize: 2, queueLengthLimit: 2}
---
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: FlowSchema
metadata: {name: tight}
spec:
  priorityLevelConfiguration: {name: tight}
  matchingPrecedence: 500
  distinguisherMethod: {type: ByUser}
  rules:
  - subjects: [{kind: User, user: {name: alice}}, {kind: User, user: {name: bob}}]
    resourceRules: [{verbs: ["*"], apiGroups: ["*"], resources: ["*"], clusterScope: true, namespaces: ["*"]}]
`

// tokenUser is a client for a token user of s, on connections of its own
// (HTTP/1.1, so a flood is not capped by HTTP/2's streams per connection).
func tokenUser(t *testing.T, s *server, token string) *kubernetes.Clientset {
	cfg := rest.AnonymousClientConfig(s.restConfig())
	cfg.BearerToken = token
	cfg.TLSClientConfig.NextProtos = []string{"http/1.1"}
	cfg.QPS, cfg.Burst = -1, 0
	return kubernetes.NewForConfigOrDie(cfg)
}

// TestPriorityAndFairness: upstream's bootstrap flow schemas and priority
// levels are there and classify requests (the response headers name
// them); when one user floods a level with too few seats, the overflow is
// refused with 429 and Retry-After while another user's request on the
// same level is queued and served.
func TestPriorityAndFairness(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(tokenFile), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServerIn(t, filepath.Join(dir, "data"), "--token-auth-file", tokens, "--max-requests-inflight", "2", "--max-mutating-requests-inflight", "0")
	ctx := context.Background()
	for _, want := range []string{"exempt", "probes", "system-nodes", "kube-system-service-accounts", "service-accounts", "global-default", "catch-all"} {
		if _, err := s.client().FlowcontrolV1().FlowSchemas().Get(ctx, want, metav1.GetOptions{}); err != nil {
			t.Errorf("bootstrap flow schema %s: %v", want, err)
		}
	}
	if out := strings.Fields(s.mustKubectl("get", "prioritylevelconfigurations", "workload-low", "--no-headers")); strings.Join(out[:6], " ") != "workload-low Limited 100 128 6 50" {
		t.Errorf("workload-low: %q", out)
	}
	s.mustKubectl("create", "clusterrolebinding", "readers", "--clusterrole=view", "--user=alice", "--user=bob", "--user=carol")

	// Each schema's Dangling condition says whether its level exists
	// (kubectl's MISSINGPL column), kept as levels come and go.
	missingPL := func(name string) string {
		out := strings.Fields(s.mustKubectl("get", "flowschemas", name, "--no-headers"))
		return out[len(out)-1]
	}
	poll.Eventually(t, 10*time.Second, poll.State("global-default's MISSINGPL is False", func() (bool, string) {
		v := missingPL("global-default")
		return v == "False", v
	}))
	s.mustKubectlStdin("apiVersion: flowcontrol.apiserver.k8s.io/v1\nkind: FlowSchema\nmetadata: {name: orphan}\nspec:\n  priorityLevelConfiguration: {name: nowhere}\n  matchingPrecedence: 9000\n", "apply", "-f", "-")
	poll.Eventually(t, 10*time.Second, poll.State("orphan's MISSINGPL is True", func() (bool, string) {
		v := missingPL("orphan")
		return v == "True", v
	}))
	fs, err := s.client().FlowcontrolV1().FlowSchemas().Get(ctx, "orphan", metav1.GetOptions{})
	if err != nil || len(fs.Status.Conditions) != 1 || fs.Status.Conditions[0].Reason != "NotFound" ||
		fs.Status.Conditions[0].Message != `This FlowSchema references the PriorityLevelConfiguration object named "nowhere" but there is no such object` {
		t.Errorf("orphan's status: %+v %v", fs.Status, err)
	}
	s.mustKubectlStdin("apiVersion: flowcontrol.apiserver.k8s.io/v1\nkind: PriorityLevelConfiguration\nmetadata: {name: nowhere}\nspec:\n  type: Limited\n  limited: {nominalConcurrencyShares: 1, limitResponse: {type: Reject}}\n", "apply", "-f", "-")
	poll.Eventually(t, 10*time.Second, poll.State("orphan's MISSINGPL is False once its level exists", func() (bool, string) {
		v := missingPL("orphan")
		return v == "False", v
	}))
	s.mustKubectl("delete", "flowschema", "orphan")
	s.mustKubectl("delete", "prioritylevelconfiguration", "nowhere")

	// carol is classified global-default; the headers say so.
	gd, err := s.client().FlowcontrolV1().FlowSchemas().Get(ctx, "global-default", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, s.restConfig().Host+"/api/v1/namespaces/default/configmaps", nil)
	req.Header.Set("Authorization", "Bearer carol-token")
	rt, _ := rest.TransportFor(rest.AnonymousClientConfig(s.restConfig()))
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if hdr := resp.Header; hdr.Get("X-Kubernetes-PF-FlowSchema-UID") != string(gd.UID) || hdr.Get("X-Kubernetes-PF-PriorityLevel-UID") == "" {
		t.Errorf("classification headers: %v (global-default is %s)", hdr, gd.UID)
	}

	s.mustKubectlStdin(tightLevel, "apply", "-f", "-")
	// Enough objects that a list holds its seat a while.
	big := strings.Repeat("x", 8<<10)
	admin := s.client()
	for i := range 2000 {
		if _, err := admin.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("load-%d", i)}, Data: map[string]string{"d": big}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	bob := tokenUser(t, s, "bob-token")
	// alice's clients, each with its connection made before the flood.
	var alices []*kubernetes.Clientset
	for range 40 {
		a := tokenUser(t, s, "alice-token")
		if _, err := a.CoreV1().ConfigMaps("default").Get(ctx, "load-1", metav1.GetOptions{}); err != nil {
			t.Fatal(err)
		}
		alices = append(alices, a)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ok, refused int
	start := make(chan struct{})
	for _, alice := range alices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			// No retries: client-go would wait out the 429s and ask again.
			err := alice.CoreV1().RESTClient().Get().AbsPath("/api/v1/namespaces/default/configmaps").MaxRetries(0).Do(ctx).Error()
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case apierrors.IsTooManyRequests(err):
				refused++
			default:
				t.Errorf("alice: %v", err)
			}
		}()
	}
	close(start)
	// bob asks once while alice floods: his flow has queues of its own.
	bobErr := bob.CoreV1().RESTClient().Get().AbsPath("/api/v1/namespaces/default/configmaps/load-7").MaxRetries(0).Do(ctx).Error()
	wg.Wait()
	if bobErr != nil {
		t.Errorf("bob's request during alice's flood: %v", bobErr)
	}
	if refused == 0 || ok == 0 {
		t.Errorf("alice's flood of 40: %d served, %d refused with 429; want both", ok, refused)
	}
	// A watch takes a seat of its level while it sends its initial events
	// and gives it back once initialized: three watches of alice's held
	// open do not keep her next request from the level's one seat.
	// (From the current resourceVersion: the initial events of 2,000
	// large objects would wait on a client that does not read them.)
	list, err := admin.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	before := dispatched(t, s, "tight")
	for range 3 {
		w, err := alices[0].CoreV1().ConfigMaps("default").Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
	}
	if err := alices[1].CoreV1().RESTClient().Get().AbsPath("/api/v1/namespaces/default/configmaps/load-3").MaxRetries(0).Do(ctx).Error(); err != nil {
		t.Errorf("alice's GET with three of her watches open: %v", err)
	}
	if got := dispatched(t, s, "tight") - before; got != 4 {
		t.Errorf("requests dispatched by the tight level for three watches and a GET: %d, want 4", got)
	}

	metrics := s.mustKubectl("get", "--raw", "/metrics")
	if !strings.Contains(metrics, `apiserver_flowcontrol_rejected_requests_total{flow_schema="tight",priority_level="tight",reason="queue-full"}`) ||
		!strings.Contains(metrics, `apiserver_flowcontrol_nominal_limit_seats{priority_level="tight"} 1`) {
		var lines []string
		for _, l := range strings.Split(metrics, "\n") {
			if strings.HasPrefix(l, "apiserver_flowcontrol") {
				lines = append(lines, l)
			}
		}
		t.Errorf("flowcontrol metrics missing from /metrics:\n%s", strings.Join(lines, "\n"))
	}
}

// dispatched is apiserver_flowcontrol_dispatched_requests_total for the
// priority level named level, summed over its flow schemas.
func dispatched(t *testing.T, s *server, level string) int {
	t.Helper()
	n := 0
	for _, l := range strings.Split(s.mustKubectl("get", "--raw", "/metrics"), "\n") {
		if !strings.HasPrefix(l, "apiserver_flowcontrol_dispatched_requests_total{") || !strings.Contains(l, `priority_level="`+level+`"`) {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(l[strings.LastIndex(l, " ")+1:], &v); err != nil {
			t.Fatalf("metric line %q: %v", l, err)
		}
		n += int(v)
	}
	return n
}
