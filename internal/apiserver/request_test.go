package apiserver

import "testing"

func TestParseRequest(t *testing.T) {
	cases := []struct {
		method, path string
		watch        bool
		want         RequestInfo
	}{
		{"GET", "/api/v1/pods", false, RequestInfo{IsResource: true, Version: "v1", Resource: "pods", Verb: "list"}},
		{"GET", "/api/v1/namespaces/default/pods/web", false, RequestInfo{IsResource: true, Version: "v1", Namespace: "default", Resource: "pods", Name: "web", Verb: "get"}},
		{"GET", "/api/v1/namespaces/default/pods", true, RequestInfo{IsResource: true, Version: "v1", Namespace: "default", Resource: "pods", Verb: "watch"}},
		{"GET", "/api/v1/watch/namespaces/default/pods", false, RequestInfo{IsResource: true, Version: "v1", Namespace: "default", Resource: "pods", Verb: "watch"}},
		{"PUT", "/api/v1/namespaces/default/pods/web/status", false, RequestInfo{IsResource: true, Version: "v1", Namespace: "default", Resource: "pods", Name: "web", Subresource: "status", Verb: "update"}},
		{"GET", "/api/v1/namespaces/kube-system", false, RequestInfo{IsResource: true, Version: "v1", Namespace: "kube-system", Resource: "namespaces", Name: "kube-system", Verb: "get"}},
		{"GET", "/api/v1/namespaces", false, RequestInfo{IsResource: true, Version: "v1", Resource: "namespaces", Verb: "list"}},
		{"PUT", "/api/v1/namespaces/x/finalize", false, RequestInfo{IsResource: true, Version: "v1", Namespace: "x", Resource: "namespaces", Name: "x", Subresource: "finalize", Verb: "update"}},
		{"DELETE", "/apis/apps/v1/namespaces/a/deployments", false, RequestInfo{IsResource: true, Group: "apps", Version: "v1", Namespace: "a", Resource: "deployments", Verb: "deletecollection"}},
		{"PATCH", "/apis/apps/v1/namespaces/a/deployments/d/scale", false, RequestInfo{IsResource: true, Group: "apps", Version: "v1", Namespace: "a", Resource: "deployments", Name: "d", Subresource: "scale", Verb: "patch"}},
		{"POST", "/api/v1/namespaces/a/pods", false, RequestInfo{IsResource: true, Version: "v1", Namespace: "a", Resource: "pods", Verb: "create"}},
		{"GET", "/apis/apps/v1", false, RequestInfo{Group: "apps", Version: "v1"}},
	}
	for _, c := range cases {
		if got := ParseRequest(c.method, c.path, c.watch); got != c.want {
			t.Errorf("%s %s: got %+v, want %+v", c.method, c.path, got, c.want)
		}
	}
}
