package apiserver

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-sh/skiff/internal/registry"
)

func catalogResource(t *testing.T, gvr schema.GroupVersionResource) *registry.Resource {
	t.Helper()
	for _, r := range registry.Catalog() {
		if r.GVR == gvr {
			return r
		}
	}
	t.Fatalf("no resource %s", gvr)
	return nil
}

// TestStrategicPatchPartial checks that converting only the patched
// top-level fields gives what converting the whole object gives: the same
// object, the same warnings, the same error.
func TestStrategicPatchPartial(t *testing.T) {
	pods := catalogResource(t, corev1.SchemeGroupVersion.WithResource("pods"))
	deployments := catalogResource(t, appsv1.SchemeGroupVersion.WithResource("deployments"))
	created := metav1.NewTime(time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC))
	pod := &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Name: "p", Namespace: "ns", UID: "u1", ResourceVersion: "7", CreationTimestamp: created,
			Labels: map[string]string{"app": "web"}, Finalizers: []string{"f"},
		},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name: "c", Image: "img:1",
				Env:       []corev1.EnvVar{{Name: "A", Value: "1"}, {Name: "B", Value: "2"}},
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}},
			}},
			Tolerations: []corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpExists}},
		},
		Status: corev1.PodStatus{
			Phase:      corev1.PodPending,
			Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", LastTransitionTime: created}},
		},
	}
	replicas := int32(2)
	deploy := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: "d", Namespace: "ns", Annotations: map[string]string{"a": "b"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "d"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "d"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "img:1"}}},
			},
		},
	}
	for _, tc := range []struct {
		name       string
		res        *registry.Resource
		cur        runtime.Object
		patch      string
		validation string
		partial    bool // whether the patch can take the partial path
		err        string
	}{
		{name: "status condition", res: pods, cur: pod, partial: true,
			patch: `{"metadata":{"uid":"u1"},"status":{"conditions":[{"type":"PodScheduled","status":"False","reason":"Unschedulable","message":"0/3 nodes"}]}}`},
		{name: "new condition merged by type", res: pods, cur: pod, partial: true,
			patch: `{"status":{"conditions":[{"type":"Ready","status":"False"}],"podIP":"10.0.0.1"}}`},
		{name: "labels and annotations", res: pods, cur: pod, partial: true,
			patch: `{"metadata":{"labels":{"app":null,"tier":"fe"},"annotations":{"x":"y"}}}`},
		{name: "container image and env by name", res: pods, cur: pod, partial: true,
			patch: `{"spec":{"containers":[{"name":"c","image":"img:2","env":[{"name":"B","value":"3"}]}]}}`},
		{name: "delete a list element", res: pods, cur: pod, partial: true,
			patch: `{"spec":{"tolerations":[{"key":"k","$patch":"delete"}]}}`},
		{name: "whole field to null", res: pods, cur: pod, partial: true,
			patch: `{"status":null}`},
		{name: "deployment scale", res: deployments, cur: deploy, partial: true,
			patch: `{"spec":{"replicas":5,"template":{"spec":{"containers":[{"name":"c","image":"img:3"}]}}}}`},
		{name: "unknown nested field, Strict", res: pods, cur: pod, partial: true, validation: "Strict",
			patch: `{"status":{"bogus":1}}`, err: `unknown field "status.bogus"`},
		{name: "unknown nested field, Warn", res: pods, cur: pod, partial: true, validation: "Warn",
			patch: `{"spec":{"containers":[{"name":"c","bogus":1}]}}`},
		{name: "duplicate field, Strict", res: pods, cur: pod, partial: true, validation: "Strict",
			patch: `{"status":{"phase":"Running","phase":"Failed"}}`, err: `duplicate field "status.phase"`},
		{name: "unknown top-level field, Warn", res: pods, cur: pod, validation: "Warn",
			patch: `{"bogus":{"a":1},"status":{"phase":"Running"}}`},
		{name: "unknown top-level field, Strict", res: pods, cur: pod, validation: "Strict",
			patch: `{"bogus":1}`, err: `unknown field "bogus"`},
		{name: "kind change", res: pods, cur: pod,
			patch: `{"kind":"Service"}`, err: "changed apiVersion or kind"},
		{name: "root directive", res: pods, cur: pod,
			patch: `{"$retainKeys":["apiVersion","kind","metadata","spec"],"metadata":{"labels":{"x":"y"}}}`},
		{name: "malformed", res: pods, cur: pod,
			patch: `{"status":`, err: "malformed"},
		{name: "type mismatch", res: pods, cur: pod, partial: true,
			patch: `{"spec":{"containers":"x"}}`, err: "could not"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var patchMap map[string]any
			if err := json.Unmarshal([]byte(tc.patch), &patchMap); err == nil {
				if _, ok := patchedFields(tc.cur, patchMap); ok != tc.partial {
					t.Fatalf("partial path = %v, want %v", ok, tc.partial)
				}
			}
			before := tc.cur.DeepCopyObject()
			whole, wholeWarn, wholeErr := strategicPatchFields(tc.res, tc.cur.DeepCopyObject(), []byte(tc.patch), tc.validation, false)
			got, gotWarn, gotErr := strategicPatch(tc.res, tc.cur, []byte(tc.patch), tc.validation)
			if !apiequality.Semantic.DeepEqual(before, tc.cur) {
				t.Fatalf("the patch changed the current object")
			}
			if tc.err != "" {
				if gotErr == nil || !strings.Contains(gotErr.Error(), tc.err) {
					t.Fatalf("error = %v, want one containing %q", gotErr, tc.err)
				}
				if wholeErr == nil || wholeErr.Error() != gotErr.Error() {
					t.Fatalf("error = %v, the whole conversion gives %v", gotErr, wholeErr)
				}
				return
			}
			if gotErr != nil || wholeErr != nil {
				t.Fatalf("errors %v / %v", gotErr, wholeErr)
			}
			if !apiequality.Semantic.DeepEqual(got, whole) {
				t.Fatalf("partial result differs:\n got %#v\nwant %#v", got, whole)
			}
			if strings.Join(gotWarn, "|") != strings.Join(wholeWarn, "|") {
				t.Fatalf("warnings %q, want %q", gotWarn, wholeWarn)
			}
			if tc.validation == "Warn" && len(gotWarn) == 0 {
				t.Fatalf("no warning for an unknown field")
			}
		})
	}
}

// BenchmarkStrategicStatusPatch is the scheduler's PodScheduled=False
// patch on a pod with a typical spec, converting the whole pod and only
// the patched fields.
func BenchmarkStrategicStatusPatch(b *testing.B) {
	var pods *registry.Resource
	for _, r := range registry.Catalog() {
		if r.GVR == corev1.SchemeGroupVersion.WithResource("pods") {
			pods = r
		}
	}
	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u1", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "c", Image: "img:1", Ports: []corev1.ContainerPort{{ContainerPort: 80, Protocol: corev1.ProtocolTCP}},
			Env:       []corev1.EnvVar{{Name: "A", Value: "1"}},
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")}},
		}}},
	}
	pods.Default(pod)
	patch := []byte(`{"metadata":{"uid":"u1"},"status":{"conditions":[{"type":"PodScheduled","status":"False","reason":"Unschedulable","message":"0/5000 nodes are available"}]}}`)
	for _, partial := range []bool{false, true} {
		name := "whole"
		if partial {
			name = "partial"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := strategicPatchFields(pods, pod, patch, "", partial); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
