package webhook

import (
	"encoding/json"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func rule(ops []admissionregistrationv1.OperationType, groups, versions, resources []string, scope admissionregistrationv1.ScopeType) admissionregistrationv1.RuleWithOperations {
	return admissionregistrationv1.RuleWithOperations{Operations: ops, Rule: admissionregistrationv1.Rule{APIGroups: groups, APIVersions: versions, Resources: resources, Scope: &scope}}
}

func TestMatches(t *testing.T) {
	create := []admissionregistrationv1.OperationType{admissionregistrationv1.Create}
	all := []admissionregistrationv1.OperationType{admissionregistrationv1.OperationAll}
	pods := schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	nodes := schema.GroupVersionResource{Version: "v1", Resource: "nodes"}
	namespaces := schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	podCreate := Request{Operation: admissionregistrationv1.Create, Resource: pods, Namespaced: true, Namespace: "a", NamespaceLabels: map[string]string{"env": "prod"},
		HasObject: true, ObjectLabels: map[string]string{"app": "web"}}
	with := func(r Request, f func(*Request)) Request { f(&r); return r }
	for _, tc := range []struct {
		name string
		hook Hook
		req  Request
		want bool
	}{
		{"exact rule", Hook{Rules: []admissionregistrationv1.RuleWithOperations{rule(create, []string{""}, []string{"v1"}, []string{"pods"}, "*")}}, podCreate, true},
		{"other operation", Hook{Rules: []admissionregistrationv1.RuleWithOperations{rule(create, []string{""}, []string{"v1"}, []string{"pods"}, "*")}},
			with(podCreate, func(r *Request) { r.Operation = admissionregistrationv1.Update }), false},
		{"wildcards", Hook{Rules: []admissionregistrationv1.RuleWithOperations{rule(all, []string{"*"}, []string{"*"}, []string{"*"}, "*")}}, podCreate, true},
		{"* is not a subresource", Hook{Rules: []admissionregistrationv1.RuleWithOperations{rule(all, []string{"*"}, []string{"*"}, []string{"*"}, "*")}},
			with(podCreate, func(r *Request) { r.Subresource = "status" }), false},
		{"*/* is every subresource", Hook{Rules: []admissionregistrationv1.RuleWithOperations{rule(all, []string{"*"}, []string{"*"}, []string{"*/*"}, "*")}},
			with(podCreate, func(r *Request) { r.Subresource = "status" }), true},
		{"pods/status", Hook{Rules: []admissionregistrationv1.RuleWithOperations{rule(all, []string{""}, []string{"v1"}, []string{"pods/status"}, "*")}},
			with(podCreate, func(r *Request) { r.Subresource = "status" }), true},
		{"cluster scope skips namespaced", Hook{Rules: []admissionregistrationv1.RuleWithOperations{rule(all, []string{""}, []string{"v1"}, []string{"*"}, admissionregistrationv1.ClusterScope)}}, podCreate, false},
		{"cluster scope takes nodes", Hook{Rules: []admissionregistrationv1.RuleWithOperations{rule(all, []string{""}, []string{"v1"}, []string{"*"}, admissionregistrationv1.ClusterScope)}},
			Request{Operation: admissionregistrationv1.Create, Resource: nodes}, true},
		{"namespaced scope takes namespaces", Hook{Rules: []admissionregistrationv1.RuleWithOperations{rule(all, []string{""}, []string{"v1"}, []string{"*"}, admissionregistrationv1.NamespacedScope)}},
			Request{Operation: admissionregistrationv1.Create, Resource: namespaces}, true},
		{"namespace selector matches", Hook{Rules: []admissionregistrationv1.RuleWithOperations{rule(all, []string{"*"}, []string{"*"}, []string{"*"}, "*")},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}}, podCreate, true},
		{"namespace selector misses", Hook{Rules: []admissionregistrationv1.RuleWithOperations{rule(all, []string{"*"}, []string{"*"}, []string{"*"}, "*")},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "dev"}}}, podCreate, false},
		{"namespace selector ignores cluster-scoped", Hook{Rules: []admissionregistrationv1.RuleWithOperations{rule(all, []string{"*"}, []string{"*"}, []string{"*"}, "*")},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "dev"}}}, Request{Operation: admissionregistrationv1.Create, Resource: nodes}, true},
		{"object selector on the old object", Hook{Rules: []admissionregistrationv1.RuleWithOperations{rule(all, []string{"*"}, []string{"*"}, []string{"*"}, "*")},
			ObjectSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "old"}}},
			with(podCreate, func(r *Request) { r.HasOldObject, r.OldObjectLabels = true, map[string]string{"app": "old"} }), true},
		{"object selector misses", Hook{Rules: []admissionregistrationv1.RuleWithOperations{rule(all, []string{"*"}, []string{"*"}, []string{"*"}, "*")},
			ObjectSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}}, podCreate, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Matches(tc.hook, tc.req); got != tc.want {
				t.Errorf("Matches = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestReadAnswer(t *testing.T) {
	pt := admissionv1.PatchTypeJSONPatch
	review := func(apiVersion string, resp *admissionv1.AdmissionResponse) []byte {
		b, _ := json.Marshal(admissionv1.AdmissionReview{TypeMeta: metav1.TypeMeta{APIVersion: apiVersion, Kind: "AdmissionReview"}, Response: resp})
		return b
	}
	for _, tc := range []struct {
		name     string
		body     []byte
		mutating bool
		err      string
	}{
		{"allowed", review("admission.k8s.io/v1", &admissionv1.AdmissionResponse{UID: "u", Allowed: true}), false, ""},
		{"patch from a mutating webhook", review("admission.k8s.io/v1", &admissionv1.AdmissionResponse{UID: "u", Allowed: true, Patch: []byte("[]"), PatchType: &pt}), true, ""},
		{"patch from a validating webhook", review("admission.k8s.io/v1", &admissionv1.AdmissionResponse{UID: "u", Allowed: true, Patch: []byte("[]"), PatchType: &pt}), false, "validating webhook may not return a patch"},
		{"wrong uid", review("admission.k8s.io/v1", &admissionv1.AdmissionResponse{UID: "x", Allowed: true}), false, `expected response.uid="u", got "x"`},
		{"wrong version", review("admission.k8s.io/v1beta1", &admissionv1.AdmissionResponse{UID: "u", Allowed: true}), false, "expected webhook response of admission.k8s.io/v1"},
		{"no response", review("admission.k8s.io/v1", nil), false, "webhook response was absent"},
		{"not JSON", []byte("<html>"), false, "received invalid webhook response"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadAnswer(tc.body, "v1", "u", tc.mutating)
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("err = %v, want %q", err, tc.err)
			}
		})
	}
}

func TestDenied(t *testing.T) {
	for _, tc := range []struct {
		in       *metav1.Status
		code     int32
		contains string
	}{
		{nil, 400, `admission webhook "w.example.com" denied the request without explanation`},
		{&metav1.Status{Code: 403, Message: "no"}, 403, `denied the request: no`},
		{&metav1.Status{Code: 200, Reason: "Custom"}, 400, `denied the request: Custom`},
	} {
		st := Denied("w.example.com", tc.in)
		if st.Code != tc.code || st.Status != metav1.StatusFailure || !strings.Contains(st.Message, tc.contains) {
			t.Errorf("Denied(%+v) = %+v", tc.in, st)
		}
	}
}
