package scheduler

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	corelisters "k8s.io/client-go/listers/core/v1"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
)

// TestConditionWriter checks which failed attempts turn into status
// patches: only the latest wish per pod, nothing for a pod bound, deleted
// or already showing the condition, and a nomination in the same patch.
func TestConditionWriter(t *testing.T) {
	pending := func(name string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name)}}
	}
	bound := pending("bound")
	bound.Spec.NodeName = "n1"
	shown := pending("shown")
	shown.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/1 nodes are available"}}
	for _, tc := range []struct {
		name    string
		pod     *corev1.Pod // what the informer holds; nil: gone
		wishes  []unschedulable
		patches []string // the bodies sent, in order
	}{
		{
			name:    "latest wish only",
			pod:     pending("p"),
			wishes:  []unschedulable{{reason: "Unschedulable", message: "first"}, {reason: "Unschedulable", message: "second"}},
			patches: []string{`"message":"second"`},
		},
		{name: "bound meanwhile", pod: bound, wishes: []unschedulable{{reason: "Unschedulable", message: "m"}}},
		{name: "deleted meanwhile", wishes: []unschedulable{{reason: "Unschedulable", message: "m"}}},
		{name: "already shown", pod: shown, wishes: []unschedulable{{reason: "Unschedulable", message: "0/1 nodes are available"}}},
		{
			name:    "shown, now nominated",
			pod:     shown,
			wishes:  []unschedulable{{reason: "Unschedulable", message: "0/1 nodes are available", nominated: "n2"}},
			patches: []string{`"nominatedNodeName":"n2"`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
			target := pending("p")
			if tc.pod != nil {
				idx.Add(tc.pod)
				target = tc.pod
			}
			client := fake.NewClientset()
			w := newConditionWriter(client, corelisters.NewPodLister(idx), slog.New(slog.NewTextHandler(io.Discard, nil)))
			for _, u := range tc.wishes {
				u.pod = target
				w.enqueue(u)
			}
			if w.queue.Len() != 1 {
				t.Fatalf("queue holds %d items, want the pod once", w.queue.Len())
			}
			w.next(context.Background())
			var got []string
			for _, a := range client.Actions() {
				p, ok := a.(k8stesting.PatchAction)
				if !ok || a.GetSubresource() != "status" || p.GetName() != target.Name {
					t.Fatalf("unexpected action %v", a)
				}
				got = append(got, string(p.GetPatch()))
			}
			if len(got) != len(tc.patches) {
				t.Fatalf("patches %q, want %d matching %q", got, len(tc.patches), tc.patches)
			}
			for i, want := range tc.patches {
				if !strings.Contains(got[i], want) {
					t.Errorf("patch %d = %s, want it to contain %s", i, got[i], want)
				}
			}
		})
	}
}
