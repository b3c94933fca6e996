package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// rawClient sends hand-made requests with the admin credentials.
type rawClient struct {
	t    testing.TB
	base string
	http *http.Client
}

func (s *server) raw() *rawClient {
	cfg := s.restConfig()
	tr, err := rest.TransportFor(cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	return &rawClient{t: s.t, base: cfg.Host, http: &http.Client{Transport: tr}}
}

func (s *server) anonymous() *rawClient {
	cfg := rest.AnonymousClientConfig(s.restConfig())
	tr, err := rest.TransportFor(cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	return &rawClient{t: s.t, base: cfg.Host, http: &http.Client{Transport: tr}}
}

type reply struct {
	code   int
	header http.Header
	body   []byte
	status metav1.Status
}

func (c *rawClient) do(method, path, contentType string, body []byte) reply {
	c.t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, c.base+path, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := reply{code: resp.StatusCode, header: resp.Header, body: b}
	json.Unmarshal(b, &r.status)
	return r
}

// TestBadInput sends the malformed requests a client can send and checks
// each answer: the HTTP code, a Status with the upstream reason, and field
// causes for invalid objects.
func TestBadInput(t *testing.T) {
	s := startServer(t)
	c := s.raw()
	const cms = "/api/v1/namespaces/default/configmaps"
	const pods = "/api/v1/namespaces/default/pods"
	valid := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"ok"},"data":{"a":"b"}}`
	if r := c.do("POST", cms, "application/json", []byte(valid)); r.code != 201 {
		t.Fatalf("valid create: %d %s", r.code, r.body)
	}

	cases := []struct {
		name        string
		method      string
		path        string
		contentType string
		body        string
		code        int
		reason      metav1.StatusReason
		inMessage   string
	}{
		{"malformed JSON", "POST", cms, "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{`, 400, metav1.StatusReasonBadRequest, ""},
		{"malformed YAML", "POST", cms, "application/yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: [\n", 400, metav1.StatusReasonBadRequest, ""},
		{"malformed protobuf", "POST", cms, "application/vnd.kubernetes.protobuf", "k8s\x00\x0a\xff\xff\x01garbage", 400, metav1.StatusReasonBadRequest, ""},
		{"wrong kind for URL", "POST", cms, "application/json", `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}`, 400, metav1.StatusReasonBadRequest, "kind"},
		{"wrong apiVersion for URL", "POST", cms, "application/json", `{"apiVersion":"apps/v1","kind":"ConfigMap","metadata":{"name":"x"}}`, 400, metav1.StatusReasonBadRequest, "API version"},
		{"name differs from URL", "PUT", cms + "/ok", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"other"}}`, 400, metav1.StatusReasonBadRequest, "does not match the name on the URL"},
		{"namespace differs from URL", "POST", cms, "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"kube-system"}}`, 400, metav1.StatusReasonBadRequest, "namespace"},
		{"unknown field strict", "POST", cms + "?fieldValidation=Strict", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"bogus":1}`, 400, metav1.StatusReasonBadRequest, `unknown field "bogus"`},
		{"unknown resource", "GET", "/api/v1/namespaces/default/widgets", "", "", 404, metav1.StatusReasonNotFound, "the server could not find the requested resource"},
		{"unknown group", "GET", "/apis/example.com/v1/widgets", "", "", 404, metav1.StatusReasonNotFound, "the server could not find the requested resource"},
		{"unsupported verb", "POST", cms + "/ok", "application/json", valid, 405, metav1.StatusReasonMethodNotAllowed, ""},
		{"unsupported content type", "POST", cms, "text/plain", valid, 415, metav1.StatusReasonUnsupportedMediaType, ""},
		{"unsupported patch type", "PATCH", cms + "/ok", "application/json", `{}`, 415, metav1.StatusReasonUnsupportedMediaType, ""},
		{"bad JSON patch", "PATCH", cms + "/ok", "application/json-patch+json", `[{"op":"frobnicate"}]`, 422, metav1.StatusReasonInvalid, ""},
		{"strategic patch, unknown field strict", "PATCH", cms + "/ok?fieldValidation=Strict", "application/strategic-merge-patch+json", `{"data":{"a":"1"},"bogus":1}`, 400, metav1.StatusReasonBadRequest, `unknown field "bogus"`},
		{"strategic patch, duplicate field strict", "PATCH", cms + "/ok?fieldValidation=Strict", "application/strategic-merge-patch+json", `{"data":{"a":"1"},"data":{"a":"2"}}`, 400, metav1.StatusReasonBadRequest, `duplicate field "data"`},
		{"strategic patch, malformed", "PATCH", cms + "/ok", "application/strategic-merge-patch+json", `{"data":`, 400, metav1.StatusReasonBadRequest, ""},
		{"strategic patch changes kind", "PATCH", cms + "/ok", "application/strategic-merge-patch+json", `{"kind":"Secret"}`, 400, metav1.StatusReasonBadRequest, "kind"},
		{"strategic patch renames", "PATCH", cms + "/ok", "application/strategic-merge-patch+json", `{"metadata":{"name":"other"}}`, 400, metav1.StatusReasonBadRequest, "does not match the name on the URL"},
		{"strategic patch, wrong type", "PATCH", cms + "/ok", "application/strategic-merge-patch+json", `{"data":{"a":1}}`, 400, metav1.StatusReasonBadRequest, ""},
		{"apply without field manager", "PATCH", cms + "/ok", "application/apply-patch+yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ok\n", 400, metav1.StatusReasonBadRequest, "fieldManager"},
		{"missing namespace", "POST", "/api/v1/namespaces/nope/configmaps", "application/json", valid, 404, metav1.StatusReasonNotFound, "nope"},
		{"bad label selector", "GET", cms + "?labelSelector=a%20in%20(", "", "", 400, metav1.StatusReasonBadRequest, ""},
		{"bad resourceVersion", "GET", cms + "?resourceVersion=abc", "", "", 400, metav1.StatusReasonBadRequest, ""},
		{"bad continue token", "GET", cms + "?limit=1&continue=xyz", "", "", 400, metav1.StatusReasonBadRequest, "continue"},
		{"negative watch timeout", "GET", cms + "?watch=1&timeoutSeconds=-5", "", "", 400, metav1.StatusReasonBadRequest, "timeoutSeconds"},
		{"bad dryRun", "POST", cms + "?dryRun=Some", "application/json", valid, 400, metav1.StatusReasonBadRequest, "dry run"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := c.do(tc.method, tc.path, tc.contentType, []byte(tc.body))
			if r.code != tc.code || r.status.Kind != "Status" || r.status.Code != int32(tc.code) || r.status.Reason != tc.reason {
				t.Fatalf("got %d reason %q: %s", r.code, r.status.Reason, r.body)
			}
			if !strings.Contains(r.status.Message, tc.inMessage) {
				t.Errorf("message %q lacks %q", r.status.Message, tc.inMessage)
			}
		})
	}

	t.Run("invalid object has one cause per field", func(t *testing.T) {
		body := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"Bad_Name","labels":{"k":"` + strings.Repeat("v", 64) + `"}},"spec":{"containers":[{"name":"c"},{"name":"c","image":"x","ports":[{"containerPort":70000}]}],"restartPolicy":"Sometimes"}}`
		r := c.do("POST", pods, "application/json", []byte(body))
		if r.code != 422 || r.status.Reason != metav1.StatusReasonInvalid || r.status.Details == nil {
			t.Fatalf("got %d: %s", r.code, r.body)
		}
		fields := map[string]bool{}
		for _, cause := range r.status.Details.Causes {
			fields[cause.Field] = true
			if cause.Message == "" || cause.Type == "" {
				t.Errorf("cause without type or message: %+v", cause)
			}
		}
		for _, f := range []string{"metadata.name", "metadata.labels", "spec.containers[0].image", "spec.containers[1].name", "spec.containers[1].ports[0].containerPort", "spec.restartPolicy"} {
			if !fields[f] {
				t.Errorf("no cause for %s; causes: %+v", f, r.status.Details.Causes)
			}
		}
		if r.status.Details.Kind != "Pod" || r.status.Details.Name != "Bad_Name" {
			t.Errorf("details: %+v", r.status.Details)
		}
	})

	t.Run("body over 3 MiB", func(t *testing.T) {
		big := fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big"},"data":{"a":"%s"}}`, strings.Repeat("x", 3<<20))
		r := c.do("POST", cms, "application/json", []byte(big))
		if r.code != 413 || r.status.Code != 413 {
			t.Fatalf("got %d: %.200s", r.code, r.body)
		}
	})

	t.Run("JSON patch growing by copies", func(t *testing.T) {
		// Each copy doubles /metadata/annotations: 60 of them would ask
		// for exabytes; the server stops at its copy bound.
		ops := []string{`{"op":"add","path":"/metadata/annotations","value":{"a":"` + strings.Repeat("x", 1000) + `"}}`}
		for i := range 60 {
			ops = append(ops, fmt.Sprintf(`{"op":"copy","from":"/metadata/annotations","path":"/metadata/annotations/c%d"}`, i))
		}
		r := c.do("PATCH", cms+"/ok", "application/json-patch+json", []byte("["+strings.Join(ops, ",")+"]"))
		if r.code != 413 || r.status.Reason != metav1.StatusReasonRequestEntityTooLarge || !strings.Contains(r.status.Message, "copy") {
			t.Fatalf("got %d: %.300s", r.code, r.body)
		}
	})

	t.Run("connection flood", func(t *testing.T) {
		// Idle connections that never start TLS must not stop the server
		// from serving others (they are cut after the handshake timeout;
		// past the cap new ones are refused, see TestLimitListener).
		host := strings.TrimPrefix(s.restConfig().Host, "https://")
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for range 2000 {
			conn, err := net.Dial("tcp", host)
			if err != nil {
				t.Fatalf("dial %d: %v", len(conns), err)
			}
			conns = append(conns, conn)
		}
		if r := c.do("GET", cms+"/ok", "", nil); r.code != 200 {
			t.Fatalf("request during the flood: %d %s", r.code, r.body)
		}
	})

	t.Run("deeply nested patches", func(t *testing.T) {
		for _, depth := range []int{1000, 200000} {
			nested := strings.Repeat(`{"a":`, depth) + "1" + strings.Repeat("}", depth)
			for _, pt := range []string{"application/merge-patch+json", "application/strategic-merge-patch+json"} {
				r := c.do("PATCH", cms+"/ok", pt, []byte(`{"metadata":{"annotations":{"x":`+nested+`}}}`))
				if r.code != 400 && r.code != 422 {
					t.Errorf("%s at depth %d: got %d: %.200s", pt, depth, r.code, r.body)
				}
			}
			r := c.do("PATCH", cms+"/ok?fieldManager=deep", "application/apply-patch+yaml", []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"ok","annotations":{"x":`+nested+`}}}`))
			if r.code != 400 && r.code != 422 {
				t.Errorf("apply at depth %d: got %d: %.200s", depth, r.code, r.body)
			}
		}
		if r := c.do("GET", cms+"/ok", "", nil); r.code != 200 {
			t.Fatalf("server after deep patches: %d", r.code)
		}
	})

	t.Run("unknown field warns by default", func(t *testing.T) {
		r := c.do("POST", cms+"?fieldValidation=Warn", "application/json", []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"warned"},"bogus":1}`))
		if r.code != 201 || !strings.Contains(r.header.Get("Warning"), `unknown field \"bogus\"`) {
			t.Fatalf("got %d, Warning %q", r.code, r.header.Get("Warning"))
		}
		r = c.do("POST", cms+"?fieldValidation=Ignore", "application/json", []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"ignored"},"bogus":1}`))
		if r.code != 201 || r.header.Get("Warning") != "" {
			t.Fatalf("Ignore: got %d, Warning %q", r.code, r.header.Get("Warning"))
		}
		r = c.do("PATCH", cms+"/warned?fieldValidation=Warn", "application/strategic-merge-patch+json", []byte(`{"data":{"a":"1"},"bogus":1}`))
		if r.code != 200 || !strings.Contains(r.header.Get("Warning"), `unknown field \"bogus\"`) {
			t.Fatalf("strategic patch: got %d, Warning %q", r.code, r.header.Get("Warning"))
		}
		var patched struct{ Data map[string]string }
		if err := json.Unmarshal(r.body, &patched); err != nil || patched.Data["a"] != "1" {
			t.Fatalf("strategic patch with a warning not applied: %v %s", err, r.body)
		}
	})

	t.Run("immutable fields", func(t *testing.T) {
		r := c.do("POST", cms, "application/json", []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"frozen"},"immutable":true,"data":{"a":"1"}}`))
		if r.code != 201 {
			t.Fatalf("create: %d %s", r.code, r.body)
		}
		r = c.do("PATCH", cms+"/frozen", "application/merge-patch+json", []byte(`{"data":{"a":"2"}}`))
		if r.code != 422 || r.status.Reason != metav1.StatusReasonInvalid {
			t.Fatalf("changing an immutable ConfigMap: %d %s", r.code, r.body)
		}
		dep := `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b","c":"d"}},"spec":{"containers":[{"name":"c","image":"busybox"}]}}}}`
		if r := c.do("POST", "/apis/apps/v1/namespaces/default/deployments", "application/json", []byte(dep)); r.code != 201 {
			t.Fatalf("create deployment: %d %s", r.code, r.body)
		}
		r = c.do("PATCH", "/apis/apps/v1/namespaces/default/deployments/d", "application/merge-patch+json", []byte(`{"spec":{"selector":{"matchLabels":{"c":"d"}}}}`))
		if r.code != 422 || !strings.Contains(string(r.body), "field is immutable") {
			t.Fatalf("changing a deployment selector: %d %s", r.code, r.body)
		}
		pod := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"busybox"}]}}`
		if r := c.do("POST", pods, "application/json", []byte(pod)); r.code != 201 {
			t.Fatalf("create pod: %d %s", r.code, r.body)
		}
		if r := c.do("PATCH", pods+"/p", "application/strategic-merge-patch+json", []byte(`{"spec":{"containers":[{"name":"c","image":"busybox:2"}]}}`)); r.code != 200 {
			t.Errorf("changing a pod's image is allowed: %d %s", r.code, r.body)
		}
		if r := c.do("PATCH", pods+"/p", "application/merge-patch+json", []byte(`{"spec":{"restartPolicy":"Never"}}`)); r.code != 422 || !strings.Contains(r.status.Message, "pod updates may not change fields") {
			t.Errorf("changing a pod's restartPolicy: %d %s", r.code, r.body)
		}
	})

	t.Run("status and spec are split", func(t *testing.T) {
		r := c.do("PATCH", pods+"/p/status", "application/merge-patch+json", []byte(`{"spec":{"nodeName":"sneaky"},"status":{"phase":"Running"}}`))
		if r.code != 200 {
			t.Fatalf("status patch: %d %s", r.code, r.body)
		}
		r = c.do("GET", pods+"/p", "", nil)
		var p struct {
			Spec   struct{ NodeName string } `json:"spec"`
			Status struct{ Phase string }    `json:"status"`
		}
		json.Unmarshal(r.body, &p)
		if p.Spec.NodeName != "" || p.Status.Phase != "Running" {
			t.Errorf("after status patch: nodeName %q phase %q", p.Spec.NodeName, p.Status.Phase)
		}
		r = c.do("PATCH", pods+"/p", "application/merge-patch+json", []byte(`{"status":{"phase":"Failed"}}`))
		json.Unmarshal(r.body, &p)
		if r.code != 200 || p.Status.Phase != "Running" {
			t.Errorf("main resource patch changed status: %d phase %q", r.code, p.Status.Phase)
		}
	})

	t.Run("anonymous requests", func(t *testing.T) {
		a := s.anonymous()
		for _, p := range []string{"/healthz", "/livez", "/readyz", "/version"} {
			if r := a.do("GET", p, "", nil); r.code != 200 {
				t.Errorf("anonymous %s: %d", p, r.code)
			}
		}
		// Anything else is system:anonymous's to be refused by RBAC, as
		// upstream (discovery is for authenticated users only).
		for _, p := range []string{"/api", "/api/v1/namespaces", "/metrics"} {
			if r := a.do("GET", p, "", nil); r.code != 403 || r.status.Reason != metav1.StatusReasonForbidden || !strings.Contains(r.status.Message, `User "system:anonymous" cannot`) {
				t.Errorf("anonymous %s: %d %s", p, r.code, r.body)
			}
		}
	})

	t.Run("server is still healthy", func(t *testing.T) {
		if r := c.do("GET", "/readyz", "", nil); r.code != 200 {
			t.Fatalf("readyz after bad input: %d", r.code)
		}
		r := c.do("GET", cms+"/ok", "", nil)
		if r.code != 200 || !strings.Contains(string(r.body), `"a":"b"`) {
			t.Fatalf("stored object damaged: %d %s", r.code, r.body)
		}
	})
}
