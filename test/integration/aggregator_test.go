package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"

	"github.com/skiff-sh/skiff/test/poll"
)

// wardleServer is an aggregated API server written for the test: it
// serves wardle.example.com/v1alpha1 flunders from memory over HTTPS, and
// accepts only the API server's front-proxy client certificate, from the
// CA that kube-system/extension-apiserver-authentication names, taking the
// user from the X-Remote-* headers as upstream's servers do.
type wardleServer struct {
	port   int
	caPEM  []byte
	server *http.Server
	mu     sync.Mutex
	items  map[string]map[string]any // namespace/name → flunder
	// users are the users requests came for; credentials records any
	// Authorization header that reached the server.
	users       []string
	credentials []string
}

func startWardle(t *testing.T, requestHeaderCA []byte, allowed []string, serverName string) *wardleServer {
	t.Helper()
	caPEM, cert := testCA(t, serverName)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(requestHeaderCA) {
		t.Fatal("requestheader-client-ca-file holds no certificate")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ws := &wardleServer{port: ln.Addr().(*net.TCPAddr).Port, caPEM: caPEM, items: map[string]map[string]any{}}
	ws.server = &http.Server{Handler: http.HandlerFunc(ws.serve), ErrorLog: log.New(io.Discard, "", 0), TLSConfig: &tls.Config{
		Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert,
		VerifyPeerCertificate: func(_ [][]byte, chains [][]*x509.Certificate) error {
			for _, c := range chains {
				for _, name := range allowed {
					if c[0].Subject.CommonName == name {
						return nil
					}
				}
			}
			return fmt.Errorf("client certificate is not one of %v", allowed)
		}}}
	go func() { _ = ws.server.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = ws.server.Close() })
	return ws
}

func (ws *wardleServer) serve(w http.ResponseWriter, r *http.Request) {
	ws.mu.Lock()
	ws.users = append(ws.users, r.Header.Get("X-Remote-User"))
	if a := r.Header.Get("Authorization"); a != "" {
		ws.credentials = append(ws.credentials, a)
	}
	ws.mu.Unlock()
	const prefix = "/apis/wardle.example.com/v1alpha1"
	writeJSON := func(code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	p := strings.TrimPrefix(r.URL.Path, prefix)
	switch {
	case r.URL.Path == "/openapi/v3":
		writeJSON(http.StatusOK, map[string]any{"paths": map[string]any{"apis/wardle.example.com/v1alpha1": map[string]string{"serverRelativeURL": "/openapi/v3/apis/wardle.example.com/v1alpha1?hash=ABC"}}})
	case r.URL.Path == "/openapi/v3/apis/wardle.example.com/v1alpha1":
		gvk := map[string]string{"group": "wardle.example.com", "version": "v1alpha1", "kind": "Flunder"}
		writeJSON(http.StatusOK, map[string]any{"openapi": "3.0.0", "info": map[string]string{"title": "wardle", "version": "v1alpha1"},
			"paths": map[string]any{"/apis/wardle.example.com/v1alpha1/namespaces/{namespace}/flunders": map[string]any{
				"get": map[string]any{"x-kubernetes-action": "list", "x-kubernetes-group-version-kind": gvk}}},
			"components": map[string]any{"schemas": map[string]any{"com.example.wardle.v1alpha1.Flunder": map[string]any{
				"type": "object", "description": "A Flunder is the test's aggregated kind.",
				"properties": map[string]any{
					"apiVersion": map[string]string{"type": "string"}, "kind": map[string]string{"type": "string"},
					"spec": map[string]any{"type": "object", "description": "What the flunder wants.", "properties": map[string]any{"reference": map[string]string{"type": "string", "description": "Another flunder."}}},
				},
				"x-kubernetes-group-version-kind": []map[string]string{{"group": "wardle.example.com", "version": "v1alpha1", "kind": "Flunder"}},
			}}}})
	case r.URL.Path == prefix:
		writeJSON(http.StatusOK, metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: "wardle.example.com/v1alpha1",
			APIResources: []metav1.APIResource{
				{Name: "flunders", SingularName: "flunder", Namespaced: true, Kind: "Flunder", Verbs: []string{"create", "get", "list", "watch"}, ShortNames: []string{"fl"}},
				{Name: "flunders/status", Namespaced: true, Kind: "Flunder", Verbs: []string{"get"}},
			}})
	case strings.HasPrefix(r.URL.Path, prefix+"/namespaces/"):
		parts := strings.Split(strings.Trim(p, "/"), "/") // namespaces ns flunders [name]
		if len(parts) < 3 || parts[2] != "flunders" {
			http.NotFound(w, r)
			return
		}
		ns := parts[1]
		switch {
		case r.Method == http.MethodPost && len(parts) == 3:
			obj := map[string]any{}
			if err := json.NewDecoder(r.Body).Decode(&obj); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			u := unstructured.Unstructured{Object: obj}
			u.SetNamespace(ns)
			u.SetAnnotations(map[string]string{"wardle.example.com/created-by": r.Header.Get("X-Remote-User") + " " + strings.Join(r.Header.Values("X-Remote-Group"), ",")})
			u.SetResourceVersion("1")
			ws.mu.Lock()
			ws.items[ns+"/"+u.GetName()] = u.Object
			ws.mu.Unlock()
			writeJSON(http.StatusCreated, u.Object)
		case r.Method == http.MethodGet && len(parts) == 4:
			ws.mu.Lock()
			obj, ok := ws.items[ns+"/"+parts[3]]
			ws.mu.Unlock()
			if !ok {
				writeJSON(http.StatusNotFound, metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusFailure,
					Reason: metav1.StatusReasonNotFound, Code: 404, Message: fmt.Sprintf("flunders.wardle.example.com %q not found", parts[3])})
				return
			}
			writeJSON(http.StatusOK, obj)
		case r.Method == http.MethodGet && r.URL.Query().Get("watch") == "true":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			ws.mu.Lock()
			var events []map[string]any
			for _, obj := range ws.items {
				events = append(events, map[string]any{"type": "ADDED", "object": obj})
			}
			ws.mu.Unlock()
			enc := json.NewEncoder(w)
			for _, e := range events {
				_ = enc.Encode(e)
			}
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		case r.Method == http.MethodGet:
			list := map[string]any{"apiVersion": "wardle.example.com/v1alpha1", "kind": "FlunderList", "metadata": map[string]any{"resourceVersion": "1"}}
			var items []any
			ws.mu.Lock()
			for k, obj := range ws.items {
				if strings.HasPrefix(k, ns+"/") {
					items = append(items, obj)
				}
			}
			ws.mu.Unlock()
			list["items"] = items
			writeJSON(http.StatusOK, list)
		default:
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	default:
		http.NotFound(w, r)
	}
}

func (ws *wardleServer) seen() (users, credentials []string) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return append([]string(nil), ws.users...), append([]string(nil), ws.credentials...)
}

var apiServiceGVR = schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"}

// TestAPIAggregation: an APIService naming a Service makes the API server
// a proxy for its group-version: the server behind it is checked
// (Available with upstream's reasons), its resources show in discovery
// (legacy and aggregated, which kubectl reads), requests reach it with the
// user in front-proxy headers under the API server's front-proxy
// certificate and without the caller's credentials, after this server's
// own authorization; watches stream through; when the server goes away the
// group-version alone answers 503. Bad APIServices are refused with
// upstream's causes.
func TestAPIAggregation(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	cs := s.client()
	dyn := dynamic.NewForConfigOrDie(s.restConfig())

	cm, err := cs.CoreV1().ConfigMaps("kube-system").Get(ctx, "extension-apiserver-authentication", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var allowed []string
	if err := json.Unmarshal([]byte(cm.Data["requestheader-allowed-names"]), &allowed); err != nil || len(allowed) == 0 {
		t.Fatalf("requestheader-allowed-names %q: %v", cm.Data["requestheader-allowed-names"], err)
	}
	for k, want := range map[string]string{"requestheader-username-headers": `["X-Remote-User"]`, "requestheader-group-headers": `["X-Remote-Group"]`,
		"requestheader-extra-headers-prefix": `["X-Remote-Extra-"]`} {
		if cm.Data[k] != want {
			t.Errorf("%s = %q, want %q", k, cm.Data[k], want)
		}
	}
	if !strings.Contains(cm.Data["client-ca-file"], "BEGIN CERTIFICATE") {
		t.Errorf("client-ca-file: %q", cm.Data["client-ca-file"])
	}
	if cm.Data["client-ca-file"] == cm.Data["requestheader-client-ca-file"] {
		t.Error("the front-proxy CA is the cluster CA: any client certificate could pose as the proxy")
	}
	// Aggregated servers read the ConfigMap with this default Role.
	if _, err := cs.RbacV1().Roles("kube-system").Get(ctx, "extension-apiserver-authentication-reader", metav1.GetOptions{}); err != nil {
		t.Errorf("default Role: %v", err)
	}

	ws := startWardle(t, []byte(cm.Data["requestheader-client-ca-file"]), allowed, "wardle-api.wardle.svc")
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "wardle"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// An ExternalName Service stands for the pod a cluster would run (the
	// integration server runs no pods): the API server reaches "localhost"
	// but verifies the certificate as the Service's DNS name.
	if _, err := cs.CoreV1().Services("wardle").Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "wardle-api"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "localhost",
			Ports: []corev1.ServicePort{{Port: int32(ws.port)}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	s.mustKubectlStdin(fmt.Sprintf(`apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1alpha1.wardle.example.com}
spec:
  group: wardle.example.com
  version: v1alpha1
  groupPriorityMinimum: 2000
  versionPriority: 200
  service: {namespace: wardle, name: wardle-api, port: %d}
  caBundle: %s
`, ws.port, b64(ws.caPEM)), "apply", "-f", "-")
	s.mustKubectl("wait", "--for=condition=Available", "--timeout=20s", "apiservice/v1alpha1.wardle.example.com")
	if got := s.mustKubectl("get", "apiservice", "v1alpha1.wardle.example.com", "-o", `jsonpath={.status.conditions[?(@.type=="Available")].reason}/{.status.conditions[?(@.type=="Available")].message}`); got != "Passed/all checks passed" {
		t.Errorf("Available: %q", got)
	}

	// Discovery, legacy and aggregated.
	dc := discovery.NewDiscoveryClientForConfigOrDie(s.restConfig())
	rl, err := dc.ServerResourcesForGroupVersion("wardle.example.com/v1alpha1")
	if err != nil || len(rl.APIResources) != 2 || rl.APIResources[0].Name != "flunders" {
		t.Fatalf("group-version discovery: %+v %v", rl, err)
	}
	poll.Eventually(t, 10*time.Second, func() error {
		groups, err := dc.ServerGroups()
		if err != nil {
			return err
		}
		for _, g := range groups.Groups {
			if g.Name == "wardle.example.com" && g.PreferredVersion.Version == "v1alpha1" {
				return nil
			}
		}
		return fmt.Errorf("wardle.example.com not in /apis")
	})
	if got := s.mustKubectl("get", "--raw", "/apis/wardle.example.com"); !strings.Contains(got, `"preferredVersion":{"groupVersion":"wardle.example.com/v1alpha1"`) {
		t.Errorf("/apis/wardle.example.com: %s", got)
	}
	poll.Eventually(t, 10*time.Second, func() error {
		out, _, err := s.kubectl("api-resources", "--api-group=wardle.example.com", "--no-headers")
		if err != nil || !strings.Contains(out, "flunders") || !strings.Contains(out, "fl ") {
			return fmt.Errorf("kubectl api-resources: %q %v", out, err)
		}
		return nil
	})

	// Its OpenAPI joins this server's, so kubectl explains its kinds.
	poll.Eventually(t, 10*time.Second, func() error {
		out, stderr, err := s.kubectl("explain", "flunders.spec")
		if err != nil || !strings.Contains(out, "What the flunder wants.") || !strings.Contains(out, "Another flunder.") {
			return fmt.Errorf("kubectl explain flunders.spec: %v\n%s%s", err, out, stderr)
		}
		return nil
	})

	// Requests go through, as the caller, without the caller's credentials.
	s.mustKubectlStdin(`apiVersion: wardle.example.com/v1alpha1
kind: Flunder
metadata: {name: alpha, namespace: default}
`, "create", "-f", "-")
	if got := s.mustKubectl("get", "fl", "alpha", "-n", "default", "-o", `jsonpath={.metadata.annotations.wardle\.example\.com/created-by}`); !strings.HasPrefix(got, "system:admin ") || !strings.Contains(got, "system:masters") || !strings.Contains(got, "system:authenticated") {
		t.Errorf("the aggregated server saw the user %q", got)
	}
	if got := strings.TrimSpace(s.mustKubectl("get", "flunders", "-n", "default", "-o", "name")); got != "flunder.wardle.example.com/alpha" {
		t.Errorf("kubectl get flunders: %q", got)
	}
	w, err := dyn.Resource(schema.GroupVersionResource{Group: "wardle.example.com", Version: "v1alpha1", Resource: "flunders"}).Namespace("default").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-w.ResultChan():
		if u, ok := ev.Object.(*unstructured.Unstructured); !ok || ev.Type != "ADDED" || u.GetName() != "alpha" {
			t.Errorf("watch through the proxy: %s %#v", ev.Type, ev.Object)
		}
	case <-time.After(10 * time.Second):
		t.Error("no watch event through the proxy")
	}
	w.Stop()
	// This server authorizes first: a user without rights never reaches
	// the aggregated server.
	before, _ := ws.seen()
	if _, stderr, err := s.kubectl("get", "flunders", "-n", "default", "--as", "mallory"); err == nil || !strings.Contains(stderr, `User "mallory" cannot list resource "flunders" in API group "wardle.example.com"`) {
		t.Errorf("unauthorized user: %v %s", err, stderr)
	}
	users, creds := ws.seen()
	for _, u := range users[len(before):] {
		if u == "mallory" {
			t.Error("a request the API server refused reached the aggregated server")
		}
	}
	if len(creds) > 0 {
		t.Errorf("the caller's credentials reached the aggregated server: %q", creds[0])
	}
	if !slices.Contains(users, "system:kube-aggregator") {
		t.Errorf("the availability check did not come as system:kube-aggregator: %q", users)
	}

	// A strategic merge patch on an APIService (upstream's conformance
	// test sends one).
	s.mustKubectl("patch", "apiservice", "v1alpha1.wardle.example.com", "--type=strategic", "-p", `{"spec":{"versionPriority":400}}`)
	if got := s.mustKubectl("get", "apiservice", "v1alpha1.wardle.example.com", "-o", "jsonpath={.spec.versionPriority}"); got != "400" {
		t.Errorf("versionPriority after the patch: %q", got)
	}

	// Bad APIServices.
	apis := dyn.Resource(apiServiceGVR)
	for name, spec := range map[string]map[string]any{
		"v1.wrong.example.com":   {"group": "other.example.com", "version": "v1", "groupPriorityMinimum": int64(100), "versionPriority": int64(10)},
		"v1.both.example.com":    {"group": "both.example.com", "version": "v1", "groupPriorityMinimum": int64(100), "versionPriority": int64(10), "insecureSkipTLSVerify": true, "caBundle": b64(ws.caPEM), "service": map[string]any{"namespace": "wardle", "name": "wardle-api"}},
		"v1.range.example.com":   {"group": "range.example.com", "version": "v1", "groupPriorityMinimum": int64(30000), "versionPriority": int64(10)},
		"v1.nosvcns.example.com": {"group": "nosvcns.example.com", "version": "v1", "groupPriorityMinimum": int64(100), "versionPriority": int64(10), "service": map[string]any{"name": "x"}},
	} {
		_, err := apis.Create(ctx, &unstructured.Unstructured{Object: map[string]any{"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
			"metadata": map[string]any{"name": name}, "spec": spec}}, metav1.CreateOptions{})
		if !apierrors.IsInvalid(err) {
			t.Errorf("%s: want 422, got %v", name, err)
			continue
		}
		causes := err.(apierrors.APIStatus).Status().Details.Causes
		want := map[string]string{"v1.wrong.example.com": "metadata.name", "v1.both.example.com": "spec.insecureSkipTLSVerify",
			"v1.range.example.com": "spec.groupPriorityMinimum", "v1.nosvcns.example.com": "spec.service.namespace"}[name]
		found := false
		for _, c := range causes {
			found = found || c.Field == want
		}
		if !found {
			t.Errorf("%s: no cause for %s in %+v", name, want, causes)
		}
	}
	// An APIService whose Service does not exist is not Available, with
	// upstream's reason; its group-version answers 503.
	if _, err := apis.Create(ctx, &unstructured.Unstructured{Object: map[string]any{"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
		"metadata": map[string]any{"name": "v1.ghost.example.com"}, "spec": map[string]any{"group": "ghost.example.com", "version": "v1",
			"groupPriorityMinimum": int64(100), "versionPriority": int64(10), "insecureSkipTLSVerify": true, "service": map[string]any{"namespace": "wardle", "name": "ghost"}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 10*time.Second, poll.State("ghost ServiceNotFound", func() (bool, string) {
		got, _, _ := s.kubectl("get", "apiservice", "v1.ghost.example.com", "-o", `jsonpath={.status.conditions[?(@.type=="Available")].reason}`)
		return got == "ServiceNotFound", got
	}))
	if code := rawStatus(t, s, http.MethodGet, "/apis/ghost.example.com/v1/things", "application/json", "", nil); code != http.StatusServiceUnavailable {
		t.Errorf("unavailable group-version: %d, want 503", code)
	}

	// The aggregated server goes away: its group-version turns
	// unavailable and answers 503; the rest of the API is untouched.
	_ = ws.server.Close()
	if code := rawStatus(t, s, http.MethodGet, "/apis/wardle.example.com/v1alpha1/namespaces/default/flunders", "application/json", "", nil); code != http.StatusServiceUnavailable {
		t.Errorf("flunders with the server gone: %d, want 503", code)
	}
	poll.Eventually(t, 15*time.Second, poll.State("wardle FailedDiscoveryCheck", func() (bool, string) {
		got, _, _ := s.kubectl("get", "apiservice", "v1alpha1.wardle.example.com", "-o", `jsonpath={.status.conditions[?(@.type=="Available")].status}/{.status.conditions[?(@.type=="Available")].reason}`)
		return got == "False/FailedDiscoveryCheck", got
	}))
	if code := rawStatus(t, s, http.MethodGet, "/apis/wardle.example.com/v1alpha1/namespaces/default/flunders", "application/json", "", nil); code != http.StatusServiceUnavailable {
		t.Errorf("flunders with the server gone: %d, want 503", code)
	}
	if _, err := cs.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("the rest of the API: %v", err)
	}
	// Protobuf, as clients of the aggregator's clientset speak it: a list,
	// and a deletecollection answering with the deleted list.
	for _, req := range []struct{ method, path string }{
		{http.MethodGet, "/apis/apiregistration.k8s.io/v1/apiservices"},
		{http.MethodGet, "/apis/apiregistration.k8s.io/v1/apiservices/v1alpha1.wardle.example.com"},
		{http.MethodDelete, "/apis/apiregistration.k8s.io/v1/apiservices?labelSelector=nothing%3Dhere"},
	} {
		if code := rawStatus(t, s, req.method, req.path, "application/vnd.kubernetes.protobuf", "", nil); code != http.StatusOK {
			t.Errorf("%s %s as protobuf: %d", req.method, req.path, code)
		}
	}
	// Deleting the APIService removes the group from discovery.
	s.mustKubectl("delete", "apiservice", "v1alpha1.wardle.example.com")
	// DeleteOptions in the APIService's own version, as the aggregator's
	// clientset sends them.
	if code := rawStatus(t, s, http.MethodDelete, "/apis/apiregistration.k8s.io/v1/apiservices/v1.ghost.example.com", "application/json", "application/json",
		[]byte(`{"kind":"DeleteOptions","apiVersion":"apiregistration.k8s.io/v1","propagationPolicy":"Background"}`)); code != http.StatusOK {
		t.Errorf("delete with DeleteOptions of apiregistration.k8s.io/v1: %d", code)
	}
	poll.Eventually(t, 10*time.Second, func() error {
		got := s.mustKubectl("get", "--raw", "/apis")
		if strings.Contains(got, "wardle.example.com") || strings.Contains(got, "ghost.example.com") {
			return fmt.Errorf("still in /apis")
		}
		return nil
	})
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
