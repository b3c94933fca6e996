package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

const auditPolicyYAML = `apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: None
  nonResourceURLs: ["/healthz*", "/readyz*", "/livez*"]
- level: None
  userGroups: ["system:nodes", "system:serviceaccounts", "system:serviceaccounts:kube-system"]
- level: None
  users: ["system:kube-scheduler", "system:kube-controller-manager", "system:apiserver"]
- level: RequestResponse
  resources: [{group: "", resources: [configmaps]}]
- level: Request
`

// auditEvent is the part of an audit.k8s.io/v1 Event the test reads.
type auditEvent struct {
	Kind, APIVersion, Level, AuditID, Stage, RequestURI, Verb, UserAgent string
	User                                                                 struct{ Username string }
	ImpersonatedUser                                                     *struct{ Username string }
	ObjectRef                                                            *struct{ Resource, Namespace, Name string }
	ResponseStatus                                                       *struct {
		Code    int
		Message string
	}
	RequestObject, ResponseObject json.RawMessage
	Annotations                   map[string]string
}

func readAudit(t *testing.T, path string) []auditEvent {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []auditEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		var e auditEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("not a JSON event: %q", sc.Text())
		}
		out = append(out, e)
	}
	return out
}

// TestAuditLog: a scripted kubectl session with a policy file leaves the
// events upstream would: both stages per request, the user, verb and
// object, request and response bodies where the policy asks, Secrets'
// data never under a catch-all rule, an impersonated and refused request
// with its decision; and the log rotates by size.
func TestAuditLog(t *testing.T) {
	dir := t.TempDir()
	policy, logPath := filepath.Join(dir, "policy.yaml"), filepath.Join(dir, "audit.log")
	if err := os.WriteFile(policy, []byte(auditPolicyYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "--audit-policy-file", policy, "--audit-log-path", logPath, "--audit-log-maxsize", "1", "--audit-log-maxbackup", "2")
	s.mustKubectl("create", "configmap", "audited", "--from-literal=k=seen-in-log")
	s.mustKubectl("get", "configmap", "audited", "-o", "json")
	s.mustKubectl("get", "configmaps", "-o", "json")
	protoCfg := s.restConfig()
	protoCfg.ContentType = "application/vnd.kubernetes.protobuf"
	if _, err := kubernetes.NewForConfigOrDie(protoCfg).CoreV1().ConfigMaps("default").List(context.Background(), metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	s.mustKubectl("create", "secret", "generic", "hidden", "--from-literal=k=never-in-log")
	if _, _, err := s.kubectl("get", "pods", "--as", "alice"); err == nil {
		t.Fatal("alice listed pods")
	}
	// A wrong token: 401, and an event without a user.
	req, _ := http.NewRequest(http.MethodGet, s.restConfig().Host+"/api/v1/namespaces/default/configmaps/audited", nil)
	req.Header.Set("Authorization", "Bearer not-a-token")
	rt, _ := rest.TransportFor(rest.AnonymousClientConfig(s.restConfig()))
	if resp, err := (&http.Client{Transport: rt}).Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a wrong token: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	s.mustKubectl("delete", "configmap", "audited")
	s.mustKubectl("create", "namespace", "aud")
	s.mustKubectl("label", "namespace", "aud", "pod-security.kubernetes.io/audit=restricted")
	s.mustKubectl("-n", "aud", "run", "loose", "--image=busybox", "--restart=Never")

	events := readAudit(t, logPath)
	find := func(verb, resource, name string, stage string) *auditEvent {
		for i := range events {
			e := &events[i]
			if e.Verb == verb && e.Stage == stage && e.ObjectRef != nil && e.ObjectRef.Resource == resource && e.ObjectRef.Name == name {
				return e
			}
		}
		return nil
	}
	create := find("create", "configmaps", "", "ResponseComplete")
	if create == nil || create.Level != "RequestResponse" || create.User.Username != "system:admin" || create.ResponseStatus == nil || create.ResponseStatus.Code != 201 ||
		!strings.Contains(string(create.RequestObject), "seen-in-log") || !strings.Contains(string(create.ResponseObject), `"resourceVersion"`) ||
		create.Annotations["authorization.k8s.io/decision"] != "allow" || create.Kind != "Event" || create.APIVersion != "audit.k8s.io/v1" {
		t.Errorf("configmap create: %+v", create)
	}
	if received := find("create", "configmaps", "", "RequestReceived"); received == nil || received.AuditID != create.AuditID || received.ResponseStatus != nil {
		t.Errorf("its RequestReceived event: %+v", received)
	}
	if get := find("get", "configmaps", "audited", "ResponseComplete"); get == nil || !strings.Contains(string(get.ResponseObject), "seen-in-log") {
		t.Errorf("configmap get: %+v", get)
	}
	// Lists' responses are recorded as JSON, whatever the wire format.
	var kubectlList, protoList bool
	for _, e := range events {
		if e.Verb == "list" && e.Stage == "ResponseComplete" && e.ObjectRef != nil && e.ObjectRef.Resource == "configmaps" {
			if !strings.Contains(string(e.ResponseObject), `"kind":"ConfigMapList"`) || !strings.Contains(string(e.ResponseObject), "seen-in-log") {
				t.Errorf("a configmap list's recorded response: %.300s (%s)", e.ResponseObject, e.UserAgent)
			}
			// client-go names the test binary in its user agent.
			if strings.HasPrefix(e.UserAgent, filepath.Base(os.Args[0])) {
				protoList = true
			} else {
				kubectlList = true
			}
		}
	}
	if !kubectlList || !protoList {
		t.Errorf("list events: kubectl's %v, client-go's (protobuf) %v", kubectlList, protoList)
	}
	if del := find("delete", "configmaps", "audited", "ResponseComplete"); del == nil || del.ResponseStatus.Code != 200 {
		t.Errorf("configmap delete: %+v", del)
	}
	secret := find("create", "secrets", "", "ResponseComplete")
	if secret == nil || secret.Level != "Metadata" || len(secret.RequestObject) != 0 {
		t.Errorf("secret create under a catch-all Request rule: %+v", secret)
	}
	raw, _ := os.ReadFile(logPath)
	if strings.Contains(string(raw), "never-in-log") || strings.Contains(string(raw), "bmV2ZXItaW4tbG9n") {
		t.Error("a Secret's data is in the audit log")
	}
	var forbidden *auditEvent
	for i := range events {
		if e := &events[i]; e.ImpersonatedUser != nil && e.ImpersonatedUser.Username == "alice" && e.Stage == "ResponseComplete" {
			forbidden = e
		}
	}
	if forbidden == nil || forbidden.User.Username != "system:admin" || forbidden.ResponseStatus.Code != 403 || forbidden.Annotations["authorization.k8s.io/decision"] != "forbid" {
		t.Errorf("alice's list: %+v", forbidden)
	}

	unauthenticated := find("get", "configmaps", "audited", "ResponseStarted")
	if unauthenticated == nil || unauthenticated.User.Username != "" || unauthenticated.ResponseStatus == nil || unauthenticated.ResponseStatus.Code != 401 ||
		unauthenticated.ResponseStatus.Message != "Authentication failed, attempted: bearer" {
		t.Errorf("the wrong token's request: %+v", unauthenticated)
	}

	// PodSecurity's audit mode annotates the pod's event.
	if pod := find("create", "pods", "", "ResponseComplete"); pod == nil ||
		!strings.HasPrefix(pod.Annotations["pod-security.kubernetes.io/audit-violations"], `would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false`) ||
		pod.Annotations["pod-security.kubernetes.io/enforce-policy"] != "privileged:latest" {
		t.Errorf("the audited pod's event: %+v", pod)
	}

	// Over a megabyte of events: the file is rotated, two backups kept.
	cs := s.client()
	big := strings.Repeat("x", 8<<10)
	for i := range 200 {
		if _, err := cs.CoreV1().ConfigMaps("default").Create(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("fill-%d", i)}, Data: map[string]string{"d": big}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	backups, _ := filepath.Glob(filepath.Join(dir, "audit-*.log"))
	if len(backups) == 0 || len(backups) > 2 {
		t.Errorf("rotated files: %v", backups)
	}
	if fi, err := os.Stat(logPath); err != nil || fi.Size() > 1<<20 || fi.Mode().Perm() != 0o600 {
		t.Errorf("the current log: %v %v", fi, err)
	}
}
