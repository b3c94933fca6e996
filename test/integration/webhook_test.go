package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/skiff-sh/skiff/test/poll"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// webhookServer is an admission webhook served over HTTPS on loopback by
// the test itself, with a certificate from its own CA.
type webhookServer struct {
	url   string
	caPEM []byte
	mu    sync.Mutex
	seen  []admissionv1.AdmissionRequest
	// conversions holds the number of objects of each ConversionReview.
	conversions []int
	server      *http.Server
}

// testCA makes a CA and a serving certificate for 127.0.0.1 (and any
// DNS names given) it signed.
func testCA(t *testing.T, dnsNames ...string) (caPEM []byte, serving tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "webhook-ca"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "webhook"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: dnsNames, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// startWebhook serves the admission webhooks of the test: /mutate labels
// ConfigMaps and warns, /deny refuses ConfigMaps holding a "forbidden" key,
// /slow answers after two seconds, /garbage answers what is not a review.
func startWebhook(t *testing.T) *webhookServer {
	t.Helper()
	caPEM, cert := testCA(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ws := &webhookServer{url: "https://" + ln.Addr().String(), caPEM: caPEM}
	mux := http.NewServeMux()
	answer := func(w http.ResponseWriter, r *http.Request, decide func(req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse) {
		var review admissionv1.AdmissionReview
		if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
			http.Error(w, "bad review", http.StatusBadRequest)
			return
		}
		ws.mu.Lock()
		ws.seen = append(ws.seen, *review.Request)
		ws.mu.Unlock()
		resp := decide(review.Request)
		resp.UID = review.Request.UID
		review.Response, review.Request = resp, nil
		_ = json.NewEncoder(w).Encode(review)
	}
	mux.HandleFunc("/mutate", func(w http.ResponseWriter, r *http.Request) {
		answer(w, r, func(req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
			var cm corev1.ConfigMap
			_ = json.Unmarshal(req.Object.Raw, &cm)
			patch := `[{"op":"add","path":"/metadata/labels","value":{"mutated":"yes"}}]`
			if cm.Labels != nil {
				patch = `[{"op":"add","path":"/metadata/labels/mutated","value":"yes"}]`
			}
			pt := admissionv1.PatchTypeJSONPatch
			return &admissionv1.AdmissionResponse{Allowed: true, Patch: []byte(patch), PatchType: &pt, Warnings: []string{"labelled by the test webhook"}}
		})
	})
	mux.HandleFunc("/deny", func(w http.ResponseWriter, r *http.Request) {
		answer(w, r, func(req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
			obj := map[string]any{}
			_ = json.Unmarshal(req.Object.Raw, &obj)
			if data, _ := obj["data"].(map[string]any); data != nil && data["forbidden"] != nil {
				return &admissionv1.AdmissionResponse{Allowed: false, Result: &metav1.Status{Code: 403, Reason: metav1.StatusReasonForbidden, Message: "the key forbidden is not allowed"}}
			}
			return &admissionv1.AdmissionResponse{Allowed: true}
		})
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
		}
		answer(w, r, func(*admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
			return &admissionv1.AdmissionResponse{Allowed: true}
		})
	})
	mux.HandleFunc("/convert", func(w http.ResponseWriter, r *http.Request) {
		var review apiextensionsv1.ConversionReview
		if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
			http.Error(w, "bad review", http.StatusBadRequest)
			return
		}
		ws.mu.Lock()
		ws.conversions = append(ws.conversions, len(review.Request.Objects))
		ws.mu.Unlock()
		resp := &apiextensionsv1.ConversionResponse{UID: review.Request.UID, Result: metav1.Status{Status: metav1.StatusSuccess}}
		for _, raw := range review.Request.Objects {
			obj := map[string]any{}
			_ = json.Unmarshal(raw.Raw, &obj)
			spec, _ := obj["spec"].(map[string]any)
			switch review.Request.DesiredAPIVersion {
			case "stable.example.com/v2": // hostPort "h:p" -> host, port
				if hp, ok := spec["hostPort"].(string); ok {
					h, p, _ := strings.Cut(hp, ":")
					delete(spec, "hostPort")
					spec["host"], spec["port"] = h, p
				}
			case "stable.example.com/v1":
				if h, ok := spec["host"].(string); ok {
					spec["hostPort"] = h + ":" + fmt.Sprint(spec["port"])
					delete(spec, "host")
					delete(spec, "port")
				}
			}
			obj["apiVersion"] = review.Request.DesiredAPIVersion
			b, _ := json.Marshal(obj)
			resp.ConvertedObjects = append(resp.ConvertedObjects, runtime.RawExtension{Raw: b})
		}
		review.Response, review.Request = resp, nil
		_ = json.NewEncoder(w).Encode(review)
	})
	mux.HandleFunc("/garbage", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("not a review")) })
	// Handshakes the API server refuses (the untrusted-CA case) are
	// expected; they are not logged.
	ws.server = &http.Server{Handler: mux, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = ws.server.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = ws.server.Close() })
	return ws
}

func (ws *webhookServer) requests() []admissionv1.AdmissionRequest {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return append([]admissionv1.AdmissionRequest(nil), ws.seen...)
}

func (ws *webhookServer) clientConfig(path string, ca []byte) admissionregistrationv1.WebhookClientConfig {
	return admissionregistrationv1.WebhookClientConfig{URL: ptr.To(ws.url + path), CABundle: ca}
}

var configMapRule = []admissionregistrationv1.RuleWithOperations{{
	Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
	Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}},
}}

// TestAdmissionWebhooks: mutating and validating webhooks served over HTTPS
// and verified by caBundle see the requests their rules and selectors
// match; their patches, refusals and warnings reach the client; a webhook
// that cannot be trusted, is too slow or answers nonsense fails the request
// under failurePolicy Fail and is passed over under Ignore.
func TestAdmissionWebhooks(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	cs := s.client()
	ws := startWebhook(t)
	none := admissionregistrationv1.SideEffectClassNone
	for _, ns := range []*corev1.Namespace{
		{ObjectMeta: metav1.ObjectMeta{Name: "hooked", Labels: map[string]string{"webhooks": "on"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "plain"}},
	} {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	selector := &metav1.LabelSelector{MatchLabels: map[string]string{"webhooks": "on"}}
	if _, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "label"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{Name: "label.test.example.com", ClientConfig: ws.clientConfig("/mutate", ws.caPEM),
			Rules: configMapRule, NamespaceSelector: selector, SideEffects: &none, AdmissionReviewVersions: []string{"v1"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "deny"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{Name: "deny.test.example.com", ClientConfig: ws.clientConfig("/deny", ws.caPEM),
			Rules: configMapRule, NamespaceSelector: selector, SideEffects: &none, AdmissionReviewVersions: []string{"v1"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Defaults as upstream's.
	v, _ := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, "deny", metav1.GetOptions{})
	if w := v.Webhooks[0]; *w.FailurePolicy != admissionregistrationv1.Fail || *w.TimeoutSeconds != 10 || *w.MatchPolicy != admissionregistrationv1.Equivalent || w.ObjectSelector == nil {
		t.Errorf("webhook defaults: %+v", w)
	}

	// The mutating webhook labels; kubectl prints its warning.
	out, errOut, err := s.kubectl("create", "configmap", "one", "-n", "hooked", "--from-literal=a=b")
	if err != nil {
		t.Fatalf("create: %v %s", err, errOut)
	}
	if !strings.Contains(errOut, "Warning: labelled by the test webhook") {
		t.Errorf("webhook warning not shown by kubectl: %q %q", out, errOut)
	}
	cm, err := cs.CoreV1().ConfigMaps("hooked").Get(ctx, "one", metav1.GetOptions{})
	if err != nil || cm.Labels["mutated"] != "yes" {
		t.Errorf("mutated ConfigMap: %v %v", cm.Labels, err)
	}
	// Outside the selected namespace nothing is sent. (Requests are
	// counted by namespace: the root CA publisher writes its ConfigMap into
	// "hooked" at a time of its own.)
	if _, err := cs.CoreV1().ConfigMaps("plain").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "one"}, Data: map[string]string{"forbidden": "x"}}, metav1.CreateOptions{}); err != nil {
		t.Errorf("create outside the selected namespace: %v", err)
	}
	for _, req := range ws.requests() {
		if req.Namespace == "plain" {
			t.Errorf("request %s %s/%s sent for a namespace the selector does not match", req.Operation, req.Namespace, req.Name)
		}
	}

	// The validating webhook refuses, with its message and code.
	_, err = cs.CoreV1().ConfigMaps("hooked").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "two"}, Data: map[string]string{"forbidden": "x"}}, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `admission webhook "deny.test.example.com" denied the request: the key forbidden is not allowed`) {
		t.Errorf("refused create: %v", err)
	}
	// An update is sent with the old object and the user.
	cm.Data = map[string]string{"a": "c"}
	if _, err := cs.CoreV1().ConfigMaps("hooked").Update(ctx, cm, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatal(err)
	}
	var update *admissionv1.AdmissionRequest
	for _, r := range ws.requests() {
		if r.Operation == admissionv1.Update && r.Name == "one" {
			update = &r
		}
	}
	if update == nil || len(update.OldObject.Raw) == 0 || update.UserInfo.Username == "" || update.Kind.Kind != "ConfigMap" ||
		update.Resource.Resource != "configmaps" || update.Namespace != "hooked" || update.DryRun == nil || !*update.DryRun {
		t.Errorf("update review: %+v", update)
	}

	// Failures: an untrusted certificate, a timeout, a nonsense answer.
	otherCA, _ := testCA(t)
	for _, c := range []struct {
		name, path string
		ca         []byte
		timeout    int32
		want       string
	}{
		{"untrusted", "/deny", otherCA, 5, "x509: certificate signed by unknown authority"},
		{"slow", "/slow", ws.caPEM, 1, "context deadline exceeded"},
		{"garbage", "/garbage", ws.caPEM, 5, "received invalid webhook response"},
	} {
		for _, policy := range []admissionregistrationv1.FailurePolicyType{admissionregistrationv1.Fail, admissionregistrationv1.Ignore} {
			cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "failing"},
				Webhooks: []admissionregistrationv1.ValidatingWebhook{{Name: c.name + ".test.example.com", ClientConfig: ws.clientConfig(c.path, c.ca),
					Rules: configMapRule, ObjectSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"case": c.name}},
					FailurePolicy: &policy, TimeoutSeconds: ptr.To(c.timeout), SideEffects: &none, AdmissionReviewVersions: []string{"v1"}}}}
			if _, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_, err := cs.CoreV1().ConfigMaps("plain").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "f-", Labels: map[string]string{"case": c.name}}}, metav1.CreateOptions{})
			took := time.Since(start)
			switch policy {
			case admissionregistrationv1.Fail:
				if err == nil || !strings.Contains(err.Error(), `failed calling webhook "`+c.name+`.test.example.com"`) || !strings.Contains(err.Error(), c.want) {
					t.Errorf("%s, Fail: %v", c.name, err)
				}
			case admissionregistrationv1.Ignore:
				if err != nil {
					t.Errorf("%s, Ignore: %v", c.name, err)
				}
			}
			if took > time.Duration(c.timeout)*time.Second+3*time.Second {
				t.Errorf("%s: the request took %s, beyond the webhook's timeout", c.name, took)
			}
			if err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(ctx, "failing", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}

	// Bad configurations are refused with their causes.
	bad := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "bad"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{Name: "short", ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: ptr.To("http://127.0.0.1/x")},
			TimeoutSeconds: ptr.To[int32](60), AdmissionReviewVersions: []string{"v2"}}}}
	_, err = cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, bad, metav1.CreateOptions{})
	for _, want := range []string{"webhooks[0].name", "at least three segments", "'https' is the only allowed URL scheme", "webhooks[0].sideEffects: Required value",
		"the timeout value must be between 1 and 30 seconds", "must include at least one of v1, v1beta1"} {
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("bad configuration: want %q in %v", want, err)
		}
	}
}

// TestValidatingAdmissionPolicy: a policy and its bindings, applied with
// kubectl, refuse a Deployment over the replicas its param allows (with
// the policy's message), warn in another namespace, and let the rest in.
func TestValidatingAdmissionPolicy(t *testing.T) {
	s := startServer(t)
	s.mustKubectlStdin(`apiVersion: v1
kind: Namespace
metadata: {name: prod, labels: {env: prod}}
---
apiVersion: v1
kind: Namespace
metadata: {name: dev, labels: {env: dev}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: limits, namespace: prod}
data: {max: "3"}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: max-replicas}
spec:
  paramKind: {apiVersion: v1, kind: ConfigMap}
  matchConstraints:
    resourceRules:
    - {apiGroups: [apps], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [deployments]}
  variables:
  - {name: max, expression: "int(params.data.max)"}
  validations:
  - expression: "object.spec.replicas <= variables.max"
    messageExpression: "'replicas must be at most ' + string(variables.max)"
    reason: Forbidden
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: max-replicas-prod}
spec:
  policyName: max-replicas
  validationActions: [Deny]
  paramRef: {name: limits, namespace: prod, parameterNotFoundAction: Deny}
  matchResources: {namespaceSelector: {matchLabels: {env: prod}}}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: max-replicas-dev}
spec:
  policyName: max-replicas
  validationActions: [Warn]
  paramRef: {name: limits, namespace: prod, parameterNotFoundAction: Deny}
  matchResources: {namespaceSelector: {matchLabels: {env: dev}}}
`, "apply", "-f", "-")
	_, errOut, err := s.kubectl("create", "deployment", "web", "-n", "prod", "--image=busybox", "--replicas=5")
	if err == nil || !strings.Contains(errOut, "ValidatingAdmissionPolicy 'max-replicas' with binding 'max-replicas-prod' denied request: replicas must be at most 3") {
		t.Errorf("over the limit in prod: %v %s", err, errOut)
	}
	s.mustKubectl("create", "deployment", "web", "-n", "prod", "--image=busybox", "--replicas=2")
	_, errOut, err = s.kubectl("create", "deployment", "web", "-n", "dev", "--image=busybox", "--replicas=5")
	if err != nil || !strings.Contains(errOut, "Warning: Validation failed for ValidatingAdmissionPolicy 'max-replicas' with binding 'max-replicas-dev': replicas must be at most 3") {
		t.Errorf("over the limit in dev (Warn): %v %s", err, errOut)
	}
	_, errOut, err = s.kubectl("scale", "deployment", "web", "-n", "prod", "--replicas=4")
	if err == nil || !strings.Contains(errOut, "replicas must be at most 3") {
		t.Errorf("scaling over the limit in prod: %v %s", err, errOut)
	}
	_, errOut, err = s.kubectlStdin(`apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: bad}
spec: {validationActions: [Deny, Warn]}
`, "create", "-f", "-")
	if err == nil || !strings.Contains(errOut, "spec.policyName: Required value") || !strings.Contains(errOut, "must not contain both Deny and Warn") {
		t.Errorf("bad binding: %v %s", err, errOut)
	}

	// The authorizer library asks RBAC as the request's user: only a user
	// who may read Secrets in the namespace may write a ConfigMap labelled
	// sensitive there (bob acts through impersonation, with edit but not
	// the Secrets reader role).
	s.mustKubectlStdin(`apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: sensitive}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [configmaps]}
  validations:
  - expression: "!has(object.metadata.labels) || !('sensitive' in object.metadata.labels) || authorizer.group('').resource('secrets').namespace(object.metadata.namespace).check('list').allowed()"
    message: only readers of Secrets may write sensitive ConfigMaps
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: sensitive}
spec: {policyName: sensitive, validationActions: [Deny]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: configmaps, namespace: dev}
rules:
- {apiGroups: [""], resources: [configmaps], verbs: [create, get, list]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: bob-configmaps, namespace: dev}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: configmaps}
subjects: [{kind: User, name: bob}]
`, "apply", "-f", "-")
	// Once bob's Role has reached the authorizer, he may create plain ones.
	poll.Eventually(t, settle, func() error {
		_, errOut, err := s.kubectl("create", "configmap", "plain", "-n", "dev", "--as=bob", "--dry-run=server", "-o", "name")
		if err != nil {
			return fmt.Errorf("%v %s", err, errOut)
		}
		return nil
	})
	_, errOut, err = s.kubectlStdin(`apiVersion: v1
kind: ConfigMap
metadata: {name: keys, namespace: dev, labels: {sensitive: "yes"}}
`, "create", "--as=bob", "-f", "-")
	if err == nil || !strings.Contains(errOut, "ValidatingAdmissionPolicy 'sensitive' with binding 'sensitive' denied request: only readers of Secrets may write sensitive ConfigMaps") {
		t.Errorf("bob, who may not list Secrets: %v %s", err, errOut)
	}
	s.mustKubectlStdin(`apiVersion: v1
kind: ConfigMap
metadata: {name: keys, namespace: dev, labels: {sensitive: "yes"}}
`, "create", "-f", "-")
}

// TestMutatingAdmissionPolicy: an apply-configuration mutation and a JSON
// patch mutation, bound to one namespace, set fields of the Deployments
// created there; elsewhere nothing changes.
func TestMutatingAdmissionPolicy(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	s.mustKubectlStdin(`apiVersion: v1
kind: Namespace
metadata: {name: mutated, labels: {mutate: "yes"}}
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicy
metadata: {name: defaults}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [apps], apiVersions: [v1], operations: [CREATE], resources: [deployments]}
  mutations:
  - patchType: ApplyConfiguration
    applyConfiguration:
      expression: 'Object{metadata: Object.metadata{annotations: {"mutated-by": "admission-policy"}}, spec: Object.spec{replicas: 3}}'
  - patchType: ApplyConfiguration
    applyConfiguration:
      expression: >-
        Object{spec: Object.spec{template: Object.spec.template{spec: Object.spec.template.spec{
        containers: [Object.spec.template.spec.containers{name: "sidecar", image: "busybox:side"}]}}}}
  - patchType: JSONPatch
    jsonPatch:
      expression: '[JSONPatch{op: "add", path: "/metadata/labels/tier", value: "web"}]'
  - patchType: JSONPatch
    jsonPatch:
      expression: '[JSONPatch{op: "add", path: "/metadata/annotations/node-admin", value: string(authorizer.group("").resource("nodes").check("delete").allowed())}]'
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicyBinding
metadata: {name: defaults}
spec:
  policyName: defaults
  matchResources: {namespaceSelector: {matchLabels: {mutate: "yes"}}}
`, "apply", "-f", "-")
	s.mustKubectl("create", "deployment", "web", "-n", "mutated", "--image=busybox")
	s.mustKubectl("create", "deployment", "web", "-n", "default", "--image=busybox")
	d, err := s.client().AppsV1().Deployments("mutated").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Annotations["mutated-by"] != "admission-policy" || d.Annotations["node-admin"] != "true" || *d.Spec.Replicas != 3 || d.Labels["tier"] != "web" || d.Labels["app"] != "web" {
		t.Errorf("mutated deployment: annotations %v, labels %v, replicas %d", d.Annotations, d.Labels, *d.Spec.Replicas)
	}
	if d.Spec.Template.Spec.Containers[0].TerminationMessagePolicy != "File" {
		t.Errorf("defaults lost after mutation: %+v", d.Spec.Template.Spec.Containers[0])
	}
	// Containers merge by name, as server-side apply merges them: the
	// configuration's sidecar joins the container the object had.
	var names []string
	for _, c := range d.Spec.Template.Spec.Containers {
		names = append(names, c.Name+"="+c.Image)
	}
	if strings.Join(names, ",") != "busybox=busybox,sidecar=busybox:side" {
		t.Errorf("containers after the apply configuration: %v", names)
	}
	other, err := s.client().AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if other.Annotations["mutated-by"] != "" || *other.Spec.Replicas != 1 {
		t.Errorf("a Deployment outside the binding was mutated: %v %d", other.Annotations, *other.Spec.Replicas)
	}
}

// TestConversionWebhook: a definition with two versions of different shape
// converts through its webhook: written at v2, stored at v1, read at both.
func TestConversionWebhook(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	ws := startWebhook(t)
	ext := apiextensionsclient.NewForConfigOrDie(s.restConfig()).ApiextensionsV1().CustomResourceDefinitions()
	str := apiextensionsv1.JSONSchemaProps{Type: "string"}
	version := func(name string, storage bool, props map[string]apiextensionsv1.JSONSchemaProps) apiextensionsv1.CustomResourceDefinitionVersion {
		return apiextensionsv1.CustomResourceDefinitionVersion{Name: name, Served: true, Storage: storage, Schema: &apiextensionsv1.CustomResourceValidation{
			OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{"spec": {Type: "object", Properties: props}}}}}
	}
	crd := &apiextensionsv1.CustomResourceDefinition{ObjectMeta: metav1.ObjectMeta{Name: "endpoints.stable.example.com"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{Group: "stable.example.com", Scope: apiextensionsv1.NamespaceScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "endpoints", Kind: "Endpoint"},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{
				// Each version selects by a field of its own.
				withSelectable(version("v1", true, map[string]apiextensionsv1.JSONSchemaProps{"hostPort": str}), ".spec.hostPort"),
				withSelectable(version("v2", false, map[string]apiextensionsv1.JSONSchemaProps{"host": str, "port": str}), ".spec.host"),
			},
			Conversion: &apiextensionsv1.CustomResourceConversion{Strategy: apiextensionsv1.WebhookConverter, Webhook: &apiextensionsv1.WebhookConversion{
				ConversionReviewVersions: []string{"v1"}, ClientConfig: &apiextensionsv1.WebhookClientConfig{URL: ptr.To(ws.url + "/convert"), CABundle: ws.caPEM}}}}}
	if _, err := ext.Create(ctx, crd, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	s.mustKubectl("wait", "--for=condition=Established", "--timeout=10s", "crd/endpoints.stable.example.com")
	s.mustKubectlStdin(`apiVersion: stable.example.com/v2
kind: Endpoint
metadata: {name: db}
spec: {host: db.internal, port: "5432"}
`, "apply", "-f", "-")
	if got := s.mustKubectl("get", "endpoints.v1.stable.example.com", "db", "-o", "jsonpath={.spec.hostPort}"); got != "db.internal:5432" {
		t.Errorf("read at v1: hostPort %q", got)
	}
	if got := s.mustKubectl("get", "endpoints.v2.stable.example.com", "db", "-o", "jsonpath={.spec.host} {.spec.port}"); got != "db.internal 5432" {
		t.Errorf("read at v2: %q", got)
	}
	if raw := s.etcdValue(t, "/registry/stable.example.com/endpoints/default/db"); !strings.Contains(string(raw), `"hostPort":"db.internal:5432"`) {
		t.Errorf("stored object is not at v1: %s", raw)
	}
	// Field selectors are matched at the version asked for (the object
	// converted to it), not the stored one.
	for _, tc := range []struct{ resource, selector, want string }{
		{"endpoints.v2.stable.example.com", "spec.host=db.internal", "db"},
		{"endpoints.v2.stable.example.com", "spec.host=other", ""},
		{"endpoints.v1.stable.example.com", "spec.hostPort=db.internal:5432", "db"},
	} {
		if got := s.mustKubectl("get", tc.resource, "--field-selector", tc.selector, "-o", "jsonpath={.items[*].metadata.name}"); got != tc.want {
			t.Errorf("%s with %s: %q, want %q", tc.resource, tc.selector, got, tc.want)
		}
	}
	if _, stderr, err := s.kubectl("get", "endpoints.v2.stable.example.com", "--field-selector", "spec.hostPort=db.internal:5432"); err == nil || !strings.Contains(stderr, "field label not supported: spec.hostPort") {
		t.Errorf("v1's field at v2: %v %s", err, stderr)
	}
	l := s.mustKubectl("get", "endpoints.v2.stable.example.com", "-o", "jsonpath={.items[*].spec.host}")
	if l != "db.internal" {
		t.Errorf("list at v2: %q", l)
	}

	// A list at another version than the stored one converts its objects in
	// one ConversionReview; their encodings are kept, so listing again calls
	// nothing; a Table converts in one call too.
	s.mustKubectl("create", "namespace", "batch")
	var manifest strings.Builder
	for i := range 20 {
		fmt.Fprintf(&manifest, "---\napiVersion: stable.example.com/v1\nkind: Endpoint\nmetadata: {name: e%02d, namespace: batch}\nspec: {hostPort: \"h%02d:80\"}\n", i, i)
	}
	s.mustKubectlStdin(manifest.String(), "create", "-f", "-")
	calls := func() []int {
		ws.mu.Lock()
		defer ws.mu.Unlock()
		out := ws.conversions
		ws.conversions = nil
		return out
	}
	calls()
	v2 := dynamic.NewForConfigOrDie(s.restConfig()).Resource(schema.GroupVersionResource{Group: "stable.example.com", Version: "v2", Resource: "endpoints"}).Namespace("batch")
	for round, want := range [][]int{{20}, nil} {
		list, err := v2.List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Items) != 20 || list.Items[3].Object["spec"].(map[string]any)["host"] != "h03" {
			t.Fatalf("list at v2: %d items, %v", len(list.Items), list.Items[3].Object["spec"])
		}
		if got := calls(); !slices.Equal(got, want) {
			t.Errorf("list %d: conversion reviews of %v objects, want %v", round+1, got, want)
		}
	}
	if out := s.mustKubectl("get", "endpoints.v2.stable.example.com", "-n", "batch", "--no-headers"); len(strings.Split(strings.TrimSpace(out), "\n")) != 20 {
		t.Errorf("table at v2:\n%s", out)
	}
	if got := calls(); !slices.Equal(got, []int{20}) {
		t.Errorf("table: conversion reviews of %v objects, want [20]", got)
	}
}

func withSelectable(v apiextensionsv1.CustomResourceDefinitionVersion, paths ...string) apiextensionsv1.CustomResourceDefinitionVersion {
	for _, p := range paths {
		v.SelectableFields = append(v.SelectableFields, apiextensionsv1.SelectableField{JSONPath: p})
	}
	return v
}
