package integration

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzWrites sends arbitrary bodies to create, update and patch. Every
// answer must be a success or a 4xx Status (never a 5xx or a non-Status
// error), and the server must still serve the objects it stored. The seed
// corpus runs in `make test`; `go test -fuzz FuzzWrites` explores further.
func FuzzWrites(f *testing.F) {
	seeds := []string{
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"},"data":{"k":"v"}}`,
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","labels":{"x":"y"}},"data":{"k":1}}`,
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":""}}`,
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","resourceVersion":"abc"}}`,
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","uid":"zzz","creationTimestamp":"yesterday"}}`,
		`{"metadata":{"name":"a","finalizers":["bad finalizer"]}}`,
		`[{"op":"add","path":"/data/x","value":"1"}]`,
		`[{"op":"remove","path":"/metadata"}]`,
		`{"data":null,"metadata":{"name":null}}`,
		`{"kind":"Pod"}`,
		`null`, `[]`, `"string"`, `{`, "\x00\x01\x02", "k8s\x00\x0a\x02\x08\x01",
		"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n",
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","managedFields":[{"manager":"x","operation":"Bogus"}]}}`,
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","ownerReferences":[{"apiVersion":"v1","kind":"X","name":"","uid":""}]}}`,
	}
	for i, s := range seeds {
		f.Add(uint8(i), s)
	}
	s := startServer(f)
	c := s.raw()
	f.Fuzz(func(t *testing.T, op uint8, body string) {
		c := &rawClient{t: t, base: c.base, http: c.http}
		const base = "/api/v1/namespaces/default/configmaps"
		c.do("POST", base, "application/json", []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"},"data":{"k":"v"}}`))
		type req struct{ method, path, ct string }
		reqs := []req{
			{"POST", base, "application/json"}, {"POST", base, "application/yaml"}, {"POST", base, "application/vnd.kubernetes.protobuf"},
			{"PUT", base + "/a", "application/json"}, {"PATCH", base + "/a", "application/merge-patch+json"},
			{"PATCH", base + "/a", "application/strategic-merge-patch+json"}, {"PATCH", base + "/a", "application/json-patch+json"},
			{"PATCH", base + "/a?fieldManager=fuzz", "application/apply-patch+yaml"}, {"PUT", base + "/a/status", "application/json"},
			{"POST", "/api/v1/namespaces/default/pods", "application/json"}, {"POST", "/apis/apps/v1/namespaces/default/deployments", "application/json"},
			{"PUT", "/api/v1/namespaces/default/pods/a/status", "application/json"},
		}
		rq := reqs[int(op)%len(reqs)]
		r := c.do(rq.method, rq.path, rq.ct, []byte(body))
		switch {
		case r.code < 300:
		case r.code >= 400 && r.code < 500:
			if r.status.Kind != "Status" || r.status.Code != int32(r.code) || r.status.Reason == "" {
				t.Fatalf("%s %s %q: %d without a proper Status: %s", rq.method, rq.path, body, r.code, r.body)
			}
		default:
			t.Fatalf("%s %s %q: answered %d: %s", rq.method, rq.path, body, r.code, r.body)
		}
		// Whatever is stored must still decode and list.
		l := c.do("GET", base, "", nil)
		var list struct {
			Items []json.RawMessage `json:"items"`
		}
		if l.code != 200 || json.Unmarshal(l.body, &list) != nil {
			t.Fatalf("list after %s %s %q: %d %s", rq.method, rq.path, body, l.code, l.body)
		}
		for _, it := range list.Items {
			if !strings.Contains(string(it), `"name":`) {
				t.Fatalf("stored object without a name: %s", it)
			}
		}
	})
}
