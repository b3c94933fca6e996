package aggregator

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
)

func remote(port int32) *APIService {
	return &APIService{ObjectMeta: metav1.ObjectMeta{Name: "v1alpha1.wardle.example.com"}, Spec: Spec{Group: "wardle.example.com", Version: "v1alpha1",
		GroupPriorityMinimum: 2000, VersionPriority: 200, Service: &ServiceReference{Namespace: "ns", Name: "api", Port: ptr.To(port)}}}
}

func TestValidate(t *testing.T) {
	for name, tc := range map[string]struct {
		mutate func(a *APIService)
		field  string
	}{
		"valid":               {func(*APIService) {}, ""},
		"name":                {func(a *APIService) { a.Name = "v1.other" }, "metadata.name"},
		"empty group not v1":  {func(a *APIService) { a.Name, a.Spec.Group = "v1alpha1.", "" }, "spec.group"},
		"version":             {func(a *APIService) { a.Name, a.Spec.Version = "V1.wardle.example.com", "V1" }, "spec.version"},
		"group priority":      {func(a *APIService) { a.Spec.GroupPriorityMinimum = 20001 }, "spec.groupPriorityMinimum"},
		"version priority":    {func(a *APIService) { a.Spec.VersionPriority = 0 }, "spec.versionPriority"},
		"service namespace":   {func(a *APIService) { a.Spec.Service.Namespace = "" }, "spec.service.namespace"},
		"service port":        {func(a *APIService) { a.Spec.Service.Port = ptr.To[int32](70000) }, "spec.service.port"},
		"insecure and bundle": {func(a *APIService) { a.Spec.InsecureSkipTLSVerify, a.Spec.CABundle = true, []byte("x") }, "spec.insecureSkipTLSVerify"},
		"local with caBundle": {func(a *APIService) { a.Spec.Service, a.Spec.CABundle = nil, []byte("x") }, "spec.caBundle"},
		"local with insecure": {func(a *APIService) { a.Spec.Service, a.Spec.InsecureSkipTLSVerify = nil, true }, "spec.insecureSkipTLSVerify"},
	} {
		t.Run(name, func(t *testing.T) {
			a := remote(443)
			tc.mutate(a)
			errs := Validate(a)
			if tc.field == "" {
				if len(errs) > 0 {
					t.Fatalf("valid APIService refused: %v", errs)
				}
				return
			}
			if len(errs) != 1 || errs[0].Field != tc.field {
				t.Fatalf("errors %v, want one for %s", errs, tc.field)
			}
		})
	}
}

func TestDecide(t *testing.T) {
	ready := func(addr string, ok bool) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{Ports: []discoveryv1.EndpointPort{{Name: ptr.To("https")}},
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{addr}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ok)}}}}
	}
	svc := &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Ports: []corev1.ServicePort{{Name: "https", Port: 443}}}}
	for name, tc := range map[string]struct {
		obs    Observed
		reason string
		probe  bool
	}{
		"no service":                 {Observed{}, "ServiceNotFound", false},
		"wrong port":                 {Observed{Service: &corev1.Service{Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}}, "ServicePortError", false},
		"no slices":                  {Observed{Service: svc}, "EndpointsNotFound", false},
		"none ready":                 {Observed{Service: svc, Slices: []*discoveryv1.EndpointSlice{ready("10.0.0.1", false)}}, "MissingEndpoints", false},
		"probe fails":                {Observed{Service: svc, Slices: []*discoveryv1.EndpointSlice{ready("10.0.0.1", true)}, ProbeErr: errors.New("bad status from https://x: 500")}, "FailedDiscoveryCheck", true},
		"passes":                     {Observed{Service: svc, Slices: []*discoveryv1.EndpointSlice{ready("10.0.0.1", true)}}, "Passed", true},
		"external name, only probed": {Observed{Service: &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName}}}, "Passed", true},
	} {
		t.Run(name, func(t *testing.T) {
			a := remote(443)
			if got := NeedsProbe(a, tc.obs); got != tc.probe {
				t.Errorf("NeedsProbe = %v", got)
			}
			c := Decide(a, tc.obs)
			if c.Reason != tc.reason || (c.Status == "True") != (tc.reason == "Passed") {
				t.Errorf("condition %+v, want reason %s", c, tc.reason)
			}
		})
	}
}

func TestSetCondition(t *testing.T) {
	t0, t1 := metav1.NewTime(time.Unix(100, 0)), metav1.NewTime(time.Unix(200, 0))
	other := Condition{Type: "StatusUpdated", Status: "True", Reason: "E2E"}
	conds, changed := SetCondition([]Condition{other}, Condition{Type: Available, Status: "False", Reason: "ServiceNotFound"}, t0)
	if !changed || len(conds) != 2 || conds[0] != other || conds[1].LastTransitionTime != t0 {
		t.Fatalf("added: %+v %v", conds, changed)
	}
	if _, changed := SetCondition(conds, Condition{Type: Available, Status: "False", Reason: "ServiceNotFound"}, t1); changed {
		t.Error("an unchanged condition changed")
	}
	same, _ := SetCondition(conds, Condition{Type: Available, Status: "False", Reason: "MissingEndpoints"}, t1)
	if same[1].LastTransitionTime != t0 || same[1].Reason != "MissingEndpoints" {
		t.Errorf("same status keeps its transition time: %+v", same[1])
	}
	flipped, _ := SetCondition(conds, Condition{Type: Available, Status: "True", Reason: "Passed"}, t1)
	if flipped[1].LastTransitionTime != t1 || conds[1].Status != "False" {
		t.Errorf("a transition: %+v (input changed: %+v)", flipped[1], conds[1])
	}
}

func TestProtoRoundTrip(t *testing.T) {
	a := remote(8443)
	a.UID, a.ResourceVersion, a.Labels = "u-1", "42", map[string]string{"k": "v"}
	a.Spec.CABundle, a.Spec.InsecureSkipTLSVerify = []byte("-----BEGIN CERTIFICATE-----"), false
	a.Status.Conditions = []Condition{{Type: Available, Status: "True", Reason: "Passed", Message: "all checks passed", LastTransitionTime: metav1.NewTime(time.Unix(1700000000, 0))}}
	a.APIVersion, a.Kind = "apiregistration.k8s.io/v1", "APIService"
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(a)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := MarshalProto(&unstructured.Unstructured{Object: m})
	if err != nil {
		t.Fatal(err)
	}
	u, err := UnmarshalProto(raw)
	if err != nil {
		t.Fatal(err)
	}
	back, err := FromObject(u)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, a) {
		t.Errorf("round trip:\n got %+v\nwant %+v", back, a)
	}
	if _, err := UnmarshalProto(raw[:len(raw)-3]); err == nil || !strings.Contains(err.Error(), "APIService") {
		t.Errorf("a truncated message: %v", err)
	}
}

func TestToAggregated(t *testing.T) {
	gv := schema.GroupVersion{Group: "wardle.example.com", Version: "v1alpha1"}
	v := ToAggregated(gv, &metav1.APIResourceList{APIResources: []metav1.APIResource{
		{Name: "flunders", Namespaced: true, Kind: "Flunder", Verbs: []string{"get"}},
		{Name: "flunders/status", Namespaced: true, Kind: "Flunder", Verbs: []string{"get"}},
		{Name: "flunders/scale", Kind: "Scale", Group: "autoscaling", Version: "v1", Verbs: []string{"get"}},
		{Name: "fischers", Kind: "Fischer", Verbs: []string{"list"}},
	}})
	if len(v.Resources) != 2 || v.Resources[0].Resource != "flunders" || v.Resources[0].Scope != "Namespaced" || v.Resources[1].Scope != "Cluster" {
		t.Fatalf("resources %+v", v.Resources)
	}
	subs := v.Resources[0].Subresources
	if len(subs) != 2 || subs[0].Subresource != "status" || subs[1].ResponseKind.Group != "autoscaling" || subs[0].ResponseKind.Group != "wardle.example.com" {
		t.Errorf("subresources %+v", subs)
	}
}
