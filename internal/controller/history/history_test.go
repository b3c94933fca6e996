package history

import (
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The data is upstream's patch: "$patch" inside the template, keys sorted
// (what json.Marshal of a decoded map gives), and it decodes back to the
// template.
func TestRevisionData(t *testing.T) {
	tmpl := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"b": "2", "a": "1"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i", Args: []string{"x"}}}},
	}
	owner := &metav1.ObjectMeta{Name: "ds", Namespace: "ns", UID: "u"}
	r, err := Revision(owner, corev1.SchemeGroupVersion.WithKind("Pod"), tmpl, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	var generic map[string]any
	if err := json.Unmarshal(r.Data.Raw, &generic); err != nil {
		t.Fatal(err)
	}
	again, _ := json.Marshal(generic)
	if string(again) != string(r.Data.Raw) {
		t.Errorf("keys not in upstream's order:\n%s\n%s", r.Data.Raw, again)
	}
	if !strings.HasPrefix(string(r.Data.Raw), `{"spec":{"template":{"$patch":"replace",`) {
		t.Errorf("data %s", r.Data.Raw)
	}
	back, err := Template(r)
	if err != nil || !apiequality.Semantic.DeepEqual(*back, tmpl) {
		t.Errorf("decoded %+v, %v", back, err)
	}
	if !strings.HasPrefix(r.Name, "ds-") || r.Labels["controller-revision-hash"] == "" || r.Labels["a"] != "1" {
		t.Errorf("name %s labels %v", r.Name, r.Labels)
	}
}
