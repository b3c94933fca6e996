package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/test/poll"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// TestNamespaceDefaults checks the default ServiceAccount and the
// kube-root-ca.crt ConfigMap: created in new namespaces, recreated when
// deleted, restored when edited.
func TestNamespaceDefaults(t *testing.T) {
	s := startServer(t)
	cs := s.client()
	ctx := context.Background()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "fresh"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ca := string(s.restConfig().CAData) // the cluster CA the kubeconfig trusts
	rootCA := func() (bool, string) {
		cm, err := cs.CoreV1().ConfigMaps("fresh").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return cm.Data["ca.crt"] == ca && len(cm.Data) == 1, "data " + cm.Data["ca.crt"]
	}
	defaultSA := func() (bool, string) {
		_, err := cs.CoreV1().ServiceAccounts("fresh").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, "missing"
	}
	poll.Eventually(t, settle, poll.State("kube-root-ca.crt in a new namespace", rootCA))
	poll.Eventually(t, settle, poll.State("default ServiceAccount in a new namespace", defaultSA))

	if err := cs.CoreV1().ServiceAccounts("fresh").Delete(ctx, "default", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, settle, poll.State("default ServiceAccount recreated", defaultSA))
	cm, _ := cs.CoreV1().ConfigMaps("fresh").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
	cm.Data = map[string]string{"ca.crt": "tampered", "extra": "x"}
	if _, err := cs.CoreV1().ConfigMaps("fresh").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, settle, poll.State("kube-root-ca.crt restored", func() (bool, string) {
		return rootCA()
	}))
}

// TestGarbageCollector drives the collector through background, foreground
// and orphan propagation, a dependent with a second live owner, a dangling
// owner, and a cluster-scoped owner of namespaced dependents.
func TestGarbageCollector(t *testing.T) {
	s := startServer(t)
	cs := s.client()
	ctx := context.Background()
	cms := cs.CoreV1().ConfigMaps("default")
	create := func(name string, owners []metav1.OwnerReference, finalizers ...string) *corev1.ConfigMap {
		t.Helper()
		c, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, OwnerReferences: owners, Finalizers: finalizers}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		return c
	}
	ref := func(o *corev1.ConfigMap, block bool) metav1.OwnerReference {
		return metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: o.Name, UID: o.UID, BlockOwnerDeletion: ptr.To(block)}
	}
	gone := func(name string) func() (bool, string) {
		return func() (bool, string) {
			c, err := cms.Get(ctx, name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return true, ""
			}
			if err != nil {
				return false, err.Error()
			}
			return false, "present, finalizers " + strings.Join(c.Finalizers, ",")
		}
	}
	present := func(name string) *corev1.ConfigMap {
		t.Helper()
		c, err := cms.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return c
	}

	t.Run("background", func(t *testing.T) {
		owner, other := create("bg-owner", nil), create("bg-other", nil)
		create("bg-dep", []metav1.OwnerReference{ref(owner, false)})
		create("bg-shared", []metav1.OwnerReference{ref(owner, false), ref(other, false)})
		if err := cms.Delete(ctx, "bg-owner", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		poll.Eventually(t, settle, poll.State("dependent of a deleted owner", gone("bg-dep")))
		poll.Eventually(t, settle, poll.State("the deleted owner dropped from a shared dependent", func() (bool, string) {
			c := present("bg-shared")
			return len(c.OwnerReferences) == 1 && c.OwnerReferences[0].UID == other.UID, "owners " + ownerNames(c)
		}))
	})

	t.Run("foreground waits for blocking dependents", func(t *testing.T) {
		owner := create("fg-owner", nil)
		create("fg-dep", []metav1.OwnerReference{ref(owner, true)}, "test.skiff.sh/hold")
		if err := cms.Delete(ctx, "fg-owner", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationForeground)}); err != nil {
			t.Fatal(err)
		}
		poll.Eventually(t, settle, poll.State("blocking dependent being deleted", func() (bool, string) {
			return present("fg-dep").DeletionTimestamp != nil, "not deleting"
		}))
		// The dependent is held by its finalizer, so the owner must wait.
		time.Sleep(time.Second)
		if o := present("fg-owner"); o.DeletionTimestamp == nil || len(o.Finalizers) != 1 || o.Finalizers[0] != metav1.FinalizerDeleteDependents {
			t.Fatalf("owner while a blocking dependent remains: %+v", o.ObjectMeta)
		}
		if _, err := cms.Patch(ctx, "fg-dep", types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		poll.Eventually(t, settle, poll.State("dependent gone", gone("fg-dep")))
		poll.Eventually(t, settle, poll.State("owner gone after its dependents", gone("fg-owner")))
	})

	t.Run("orphan", func(t *testing.T) {
		owner := create("or-owner", nil)
		create("or-dep", []metav1.OwnerReference{ref(owner, true)})
		if err := cms.Delete(ctx, "or-owner", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationOrphan)}); err != nil {
			t.Fatal(err)
		}
		poll.Eventually(t, settle, poll.State("orphaning owner gone", gone("or-owner")))
		if d := present("or-dep"); len(d.OwnerReferences) != 0 {
			t.Errorf("orphan still names owners %s", ownerNames(d))
		}
	})

	t.Run("dangling owner", func(t *testing.T) {
		create("dangling", []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "never", UID: "00000000-0000-0000-0000-000000000001"}})
		poll.Eventually(t, settle, poll.State("dependent of an owner that never existed", gone("dangling")))
	})

	t.Run("cluster-scoped owner", func(t *testing.T) {
		pc, err := cs.SchedulingV1().PriorityClasses().Create(ctx, &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "gc-owner"}, Value: 5}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		create("cluster-dep", []metav1.OwnerReference{{APIVersion: "scheduling.k8s.io/v1", Kind: "PriorityClass", Name: pc.Name, UID: pc.UID}})
		time.Sleep(500 * time.Millisecond)
		present("cluster-dep") // a live cluster-scoped owner keeps it
		if err := cs.SchedulingV1().PriorityClasses().Delete(ctx, "gc-owner", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		poll.Eventually(t, settle, poll.State("dependent of a deleted cluster-scoped owner", gone("cluster-dep")))
	})
}

func ownerNames(c *corev1.ConfigMap) string {
	var names []string
	for _, o := range c.OwnerReferences {
		names = append(names, o.Name)
	}
	return strings.Join(names, ",")
}
