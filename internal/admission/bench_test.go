package admission

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BenchmarkPodCreate is the default chain's cost for one pod create (the
// admission share of `skiff bench api`'s pod creates), and each default
// plugin's alone.
func BenchmarkPodCreate(b *testing.B) {
	objs := memObjects{}
	objs.add(namespacesGVR, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bench"}})
	objs.add(serviceAccountsGVR, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: "bench"}})
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "bench"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
	run := func(b *testing.B, c *Chain) {
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			a := &Attributes{Operation: Create, Resource: podsGVR, Namespace: "bench", Name: "p", Object: pod.DeepCopy()}
			if err := c.Admit(ctx, a); err != nil {
				b.Fatal(err)
			}
			if err := c.Validate(ctx, a); err != nil {
				b.Fatal(err)
			}
		}
	}
	all, err := New(objs, nil, nil, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("defaults", func(b *testing.B) { run(b, all) })
	for _, name := range Defaults() {
		var off []string
		for _, n := range Defaults() {
			if n != name {
				off = append(off, n)
			}
		}
		c, err := New(objs, nil, off, Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) { run(b, c) })
	}
}
