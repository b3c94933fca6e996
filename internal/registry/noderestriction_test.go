package registry

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-sh/skiff/internal/auth"
)

// TestNodeRestriction: what a node writes is about itself; others' writes
// pass.
func TestNodeRestriction(t *testing.T) {
	n1 := auth.WithUser(context.Background(), auth.User{Name: "system:node:n1", Groups: []string{"system:nodes", "system:authenticated"}})
	admin := auth.WithUser(context.Background(), auth.User{Name: "alice", Groups: []string{"system:authenticated"}})
	pod := func(node string, mirror bool) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "a"}, Spec: corev1.PodSpec{NodeName: node}}
		if mirror {
			p.Annotations = map[string]string{mirrorAnnotation: "x"}
		}
		return p
	}
	node := func(name string, labels map[string]string) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	}
	slice := func(ns, name string) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	}
	cases := []struct {
		name     string
		ctx      context.Context
		obj, old runtime.Object
		allowed  bool
	}{
		{"a mirror pod bound to itself", n1, pod("n1", true), nil, true},
		{"a plain pod", n1, pod("n1", false), nil, false},
		{"a mirror pod bound to another node", n1, pod("n2", true), nil, false},
		{"its pod's status", n1, pod("n1", false), pod("n1", false), true},
		{"another node's pod's status", n1, pod("n2", false), pod("n2", false), false},
		{"its own node", n1, node("n1", map[string]string{"a": "b"}), node("n1", nil), true},
		{"another node", n1, node("n2", nil), node("n2", nil), false},
		{"a node-restriction label", n1, node("n1", map[string]string{"node-restriction.kubernetes.io/x": "y"}), node("n1", nil), false},
		{"removing a node-restriction label", n1, node("n1", nil), node("n1", map[string]string{"node-restriction.kubernetes.io/x": "y"}), false},
		{"keeping a node-restriction label", n1, node("n1", map[string]string{"node-restriction.kubernetes.io/x": "y"}), node("n1", map[string]string{"node-restriction.kubernetes.io/x": "y"}), true},
		{"its DNS slice", n1, slice("kube-system", "kube-dns-n1"), nil, true},
		{"another node's DNS slice", n1, slice("kube-system", "kube-dns-n2"), nil, false},
		{"a slice elsewhere", n1, slice("default", "kube-dns-n1"), nil, false},
		{"a user's plain pod", admin, pod("n2", false), nil, true},
		{"a user's node label", admin, node("n2", map[string]string{"node-restriction.kubernetes.io/x": "y"}), node("n2", nil), true},
		{"the server's own write", context.Background(), node("n2", nil), nil, true},
	}
	for _, c := range cases {
		err := nodeRestriction(c.ctx, nil, c.obj, c.old)
		if (err == nil) != c.allowed || (err != nil && !apierrors.IsForbidden(err)) {
			t.Errorf("%s: %v, want allowed=%v", c.name, err, c.allowed)
		}
	}
}
