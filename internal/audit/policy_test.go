package audit

import (
	"strings"
	"testing"
)

const policyYAML = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  nonResourceURLs: [/healthz*, /version]
- level: None
  users: [system:kube-scheduler]
- level: RequestResponse
  resources: [{group: "", resources: [configmaps]}]
- level: Request
  verbs: [create, update]
  resources: [{group: apps, resources: ["*/scale", deployments]}]
- level: Metadata
  namespaces: [kube-system]
- level: Request
`

func TestDecide(t *testing.T) {
	p, err := ParsePolicy([]byte(policyYAML))
	if err != nil {
		t.Fatal(err)
	}
	res := func(verb, group, resource, sub, ns string) Attributes {
		return Attributes{User: "alice", Verb: verb, IsResource: true, Group: group, Resource: resource, Subresource: sub, Namespace: ns}
	}
	for _, c := range []struct {
		name string
		a    Attributes
		want Level
	}{
		{"health", Attributes{User: "alice", Verb: "get", Path: "/healthz/ready"}, LevelNone},
		{"version", Attributes{User: "alice", Verb: "get", Path: "/version"}, LevelNone},
		{"another URL", Attributes{User: "alice", Verb: "get", Path: "/metrics"}, LevelRequest},
		{"the scheduler", Attributes{User: "system:kube-scheduler", Verb: "create", IsResource: true, Resource: "bindings"}, LevelNone},
		{"configmaps", res("get", "", "configmaps", "", "default"), LevelRequestResponse},
		{"deployment scale", res("update", "apps", "deployments", "scale", "default"), LevelRequest},
		{"deployment read", res("get", "apps", "deployments", "", "kube-system"), LevelMetadata},
		{"kube-system pods", res("list", "", "pods", "", "kube-system"), LevelMetadata},
		{"pods elsewhere", res("create", "", "pods", "", "default"), LevelRequest},
		// A catch-all Request rule records Secrets' metadata only.
		{"secrets", res("create", "", "secrets", "", "default"), LevelMetadata},
	} {
		d := p.Decide(c.a)
		if d.Level != c.want {
			t.Errorf("%s: %s, want %s", c.name, d.Level, c.want)
		}
		if d.Level != LevelNone && (len(d.OmitStages) != 1 || d.OmitStages[0] != StageRequestReceived) {
			t.Errorf("%s: omit %v", c.name, d.OmitStages)
		}
	}
	named, _ := ParsePolicy([]byte("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: RequestResponse\n  resources: [{group: \"\", resources: [secrets]}]\n"))
	if d := named.Decide(res("get", "", "secrets", "", "x")); d.Level != LevelRequestResponse {
		t.Errorf("a rule naming secrets: %s", d.Level)
	}
	var none *Policy
	if none.Decide(res("get", "", "pods", "", "x")).Level != LevelNone {
		t.Error("no policy records something")
	}
}

func TestParsePolicyErrors(t *testing.T) {
	head := "apiVersion: audit.k8s.io/v1\nkind: Policy\n"
	for _, c := range []struct{ doc, want string }{
		{"apiVersion: audit.k8s.io/v1beta1\nkind: Policy\n", "want Policy, audit.k8s.io/v1"},
		{head + "rules:\n- level: Everything\n", `line 4: rules[0].level: Unsupported value: "Everything"`},
		{head + "rules:\n- level: None\n  nonResourceURLs: [/x]\n  namespaces: [a]\n", "line 5: rules[0].nonResourceURLs: Invalid value"},
		{head + "rules:\n- level: None\n  nonResourceURLs: [healthz]\n", `line 5: rules[0].nonResourceURLs[0]: Invalid value: "healthz"`},
		{head + "omitStages: [Later]\nrules: []\n", `line 3: omitStages[0]: Unsupported value: "Later"`},
		{head + "rules:\n- level: None\n  userz: [a]\n", "line 5: rules[0].userz: unknown field"},
	} {
		if _, err := ParsePolicy([]byte(c.doc)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.doc, err, c.want)
		}
	}
}
