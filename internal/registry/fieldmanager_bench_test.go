package registry

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/client-go/applyconfigurations"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/skiff-sh/skiff/internal/warm"
)

// BenchmarkPodCreateManagedFields measures the managed-fields step of a pod
// create started from a new goroutine, as a request handler runs it: on that
// goroutine, and handed to the warm pool; with client-go's type converter
// (which validates every conversion) and with the registry's.
func BenchmarkPodCreateManagedFields(b *testing.B) {
	pod := benchPod(podsResource(b))
	for _, conv := range []string{"client-go", "registry"} {
		fm := podFieldManager(b, conv)
		warm := Fields{fm: fm, pool: warm.New(2)}
		for _, c := range []struct {
			name   string
			update func(live, obj runtime.Object) (runtime.Object, error)
		}{
			{"request-goroutine", func(live, obj runtime.Object) (runtime.Object, error) { return fm.Update(live, obj, "bench") }},
			{"warm-pool", func(live, obj runtime.Object) (runtime.Object, error) { return warm.Update(live, obj, "bench") }},
		} {
			b.Run(conv+"-converter/"+c.name, func(b *testing.B) {
				b.ReportAllocs()
				done := make(chan struct{})
				for b.Loop() {
					go func() {
						if _, err := c.update(&corev1.Pod{}, pod.DeepCopy()); err != nil {
							b.Error(err)
						}
						done <- struct{}{}
					}()
					<-done
				}
			})
		}
	}
}

// podFieldManager is the pods field manager over client-go's type
// converter ("client-go") or the registry's ("registry").
func podFieldManager(tb testing.TB, converter string) *managedfields.FieldManager {
	tb.Helper()
	s := runtime.NewScheme()
	clientgoscheme.AddToScheme(s)
	types := managedfields.TypeConverter(newTypeConverter(s))
	if converter == "client-go" {
		types = applyconfigurations.NewTypeConverter(s)
	}
	pods := podsResource(tb)
	fm, err := managedfields.NewDefaultFieldManager(types, versionConverter{s}, s, s, pods.GVK(), pods.GVK().GroupVersion(), "", resetFields(pods, ""))
	if err != nil {
		tb.Fatal(err)
	}
	return fm
}

func benchPod(pods *Resource) *corev1.Pod {
	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Labels: map[string]string{"app": "bench"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.local/bench:1"}}},
	}
	pods.Default(pod)
	return pod
}

func podsResource(tb testing.TB) *Resource {
	for _, r := range Catalog() {
		if r.GVR.Resource == "pods" && r.GVR.Group == "" {
			return r
		}
	}
	tb.Fatal("no pods resource")
	return nil
}
