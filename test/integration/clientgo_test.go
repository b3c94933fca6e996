package integration

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/test/poll"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

func cm(name string, data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: data}
}

// seen records an informer's view of ConfigMaps.
type seen struct {
	mu   sync.Mutex
	data map[string]string
}

func (s *seen) handler() cache.ResourceEventHandlerFuncs {
	set := func(o any) {
		c := o.(*corev1.ConfigMap)
		s.mu.Lock()
		s.data[c.Name] = c.Data["v"]
		s.mu.Unlock()
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc: set, UpdateFunc: func(_, n any) { set(n) },
		DeleteFunc: func(o any) {
			if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = d.Obj
			}
			s.mu.Lock()
			delete(s.data, o.(*corev1.ConfigMap).Name)
			s.mu.Unlock()
		},
	}
}

func (s *seen) waitFor(t *testing.T, want map[string]string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		ok := len(s.data) == len(want)
		for k, v := range want {
			if s.data[k] != v {
				ok = false
			}
		}
		s.mu.Unlock()
		if ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t.Fatalf("informer has %v, want %v", s.data, want)
}

// TestInformerListWatchAndRecovery runs a client-go informer through list,
// watch, a server restart (its watch resumes from a resourceVersion the new
// server's cache no longer holds: 410, then a relist) and more changes.
func TestInformerListWatchAndRecovery(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	cs := s.client()
	cms := cs.CoreV1().ConfigMaps("default")
	for i := range 3 {
		if _, err := cms.Create(ctx, cm(fmt.Sprintf("pre-%d", i), map[string]string{"v": "0"}), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// A fresh client for the informer so that it reconnects by itself.
	icfg := s.restConfig()
	ics := kubernetes.NewForConfigOrDie(icfg)
	// kube-root-ca.crt is the root CA publisher's, not this test's.
	factory := informers.NewSharedInformerFactoryWithOptions(ics, 0, informers.WithNamespace("default"),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = "metadata.name!=kube-root-ca.crt" }))
	inf := factory.Core().V1().ConfigMaps().Informer()
	got := &seen{data: map[string]string{}}
	inf.AddEventHandler(got.handler())
	stop := make(chan struct{})
	defer close(stop)
	factory.Start(stop)
	if !cache.WaitForCacheSync(stop, inf.HasSynced) {
		t.Fatal("informer did not sync")
	}
	got.waitFor(t, map[string]string{"pre-0": "0", "pre-1": "0", "pre-2": "0"})

	// Watch: updates, creates and deletes arrive.
	c, _ := cms.Get(ctx, "pre-0", metav1.GetOptions{})
	c.Data["v"] = "1"
	if _, err := cms.Update(ctx, c, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cms.Delete(ctx, "pre-1", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	cms.Create(ctx, cm("live", map[string]string{"v": "x"}), metav1.CreateOptions{})
	got.waitFor(t, map[string]string{"pre-0": "1", "pre-2": "0", "live": "x"})

	// Restart the server: the watch breaks; changes made meanwhile reach
	// the informer after it re-lists.
	s.stop()
	s.start()
	cs = s.client()
	cms = cs.CoreV1().ConfigMaps("default")
	cms.Delete(ctx, "pre-2", metav1.DeleteOptions{})
	cms.Create(ctx, cm("after-restart", map[string]string{"v": "y"}), metav1.CreateOptions{})
	got.waitFor(t, map[string]string{"pre-0": "1", "live": "x", "after-restart": "y"})
}

// TestWatchResumeAndGone checks watch semantics directly: resuming from a
// resourceVersion replays exactly the later events in order; a version
// older than the cache's window is refused with 410 Gone.
func TestWatchResumeAndGone(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	cms := s.client().CoreV1().ConfigMaps("default")
	first, err := cms.Create(ctx, cm("w", map[string]string{"v": "0"}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		c, _ := cms.Get(ctx, "w", metav1.GetOptions{})
		c.Data["v"] = fmt.Sprint(i)
		if _, err := cms.Update(ctx, c, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	w, err := cms.Watch(ctx, metav1.ListOptions{ResourceVersion: first.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		select {
		case ev := <-w.ResultChan():
			c := ev.Object.(*corev1.ConfigMap)
			if ev.Type != watch.Modified || c.Data["v"] != fmt.Sprint(i) {
				t.Fatalf("event %d: %s %v", i, ev.Type, c.Data)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("event %d did not arrive", i)
		}
	}
	w.Stop()

	// A stale update is a 409 Conflict.
	first.Data["v"] = "stale"
	if _, err := cms.Update(ctx, first, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Errorf("stale update: want 409 Conflict, got %v", err)
	}

	// After a restart the cache's window starts at the current revision.
	s.stop()
	s.start()
	cms = s.client().CoreV1().ConfigMaps("default")
	w, err = cms.Watch(ctx, metav1.ListOptions{ResourceVersion: first.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	select {
	case ev := <-w.ResultChan():
		st, ok := ev.Object.(*metav1.Status)
		if ev.Type != watch.Error || !ok || st.Code != 410 || st.Reason != metav1.StatusReasonExpired {
			t.Fatalf("want an ERROR event with 410 Expired, got %s %#v", ev.Type, ev.Object)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no 410 for a too-old resourceVersion")
	}
}

// TestListPaginationAndSelectors checks limit/continue over a consistent
// snapshot and label and field selectors.
func TestListPaginationAndSelectors(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	cms := s.client().CoreV1().ConfigMaps("default")
	for i := range 25 {
		c := cm(fmt.Sprintf("p-%02d", i), nil)
		c.Labels = map[string]string{"parity": []string{"even", "odd"}[i%2]}
		if _, err := cms.Create(ctx, c, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	opts := metav1.ListOptions{Limit: 10, LabelSelector: "parity in (even,odd)"}
	var firstRV string
	for pages := 0; ; pages++ {
		l, err := cms.List(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		if pages == 0 {
			firstRV = l.ResourceVersion
			// Created after the first page: not part of this list.
			cms.Create(ctx, cm("p-99", nil), metav1.CreateOptions{})
		} else if l.ResourceVersion != firstRV {
			t.Errorf("page %d at RV %s, first page at %s", pages, l.ResourceVersion, firstRV)
		}
		if len(l.Items) > 10 {
			t.Fatalf("page of %d items with limit 10", len(l.Items))
		}
		for _, it := range l.Items {
			names = append(names, it.Name)
		}
		if l.Continue == "" {
			break
		}
		opts.Continue = l.Continue
	}
	if len(names) != 25 || names[0] != "p-00" || names[24] != "p-24" {
		t.Errorf("paginated names: %v", names)
	}
	// Without selectors a page says how many objects follow it; with
	// selectors it cannot, and says nothing (as upstream).
	// The root CA ConfigMap arrives on its own time: counts wait for it.
	poll.Eventually(t, settle, poll.State("the namespace's root CA ConfigMap", func() (bool, string) {
		_, err := cms.Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	}))
	all, err := cms.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	total := int64(len(all.Items)) // the 26 above and the namespace's root CA
	page, err := cms.List(ctx, metav1.ListOptions{Limit: 10})
	if err != nil || page.RemainingItemCount == nil || *page.RemainingItemCount != total-10 {
		t.Errorf("remainingItemCount of the first page: %v of %d, %v", page.RemainingItemCount, total, err)
	}
	second, err := cms.List(ctx, metav1.ListOptions{Limit: 10, Continue: page.Continue})
	if err != nil || second.RemainingItemCount == nil || *second.RemainingItemCount != total-20 {
		t.Errorf("remainingItemCount of the second page: %v %v", second.RemainingItemCount, err)
	}
	if sel, err := cms.List(ctx, metav1.ListOptions{Limit: 10, LabelSelector: "parity=odd"}); err != nil || sel.RemainingItemCount != nil || sel.Continue == "" {
		t.Errorf("filtered page: remainingItemCount %v, continue %q, %v", sel.RemainingItemCount, sel.Continue, err)
	}

	// Once the first page's revision is compacted away, continuing is 410
	// Gone with a token that resumes at the newest revision.
	etcd := s.etcdClient()
	defer etcd.Close()
	cms.Create(ctx, cm("p-98", nil), metav1.CreateOptions{})
	now, err := etcd.Get(ctx, "compact-probe")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := etcd.Compact(ctx, now.Header.Revision); err != nil {
		t.Fatal(err)
	}
	_, err = cms.List(ctx, metav1.ListOptions{Limit: 10, Continue: page.Continue})
	var st apierrors.APIStatus
	if !apierrors.IsResourceExpired(err) || !errors.As(err, &st) || st.Status().ListMeta.Continue == "" {
		t.Fatalf("continue after compaction: want 410 with a new token, got %v", err)
	}
	rest, err := cms.List(ctx, metav1.ListOptions{Limit: 100, Continue: st.Status().ListMeta.Continue})
	if err != nil || int64(len(rest.Items)) != total+1-10 || rest.Items[0].Name != all.Items[10].Name || rest.ResourceVersion == page.ResourceVersion {
		t.Errorf("inconsistent continuation: %d items, rv %s, %v", len(rest.Items), rest.ResourceVersion, err)
	}

	odd, err := cms.List(ctx, metav1.ListOptions{LabelSelector: "parity=odd"})
	if err != nil || len(odd.Items) != 12 {
		t.Errorf("parity=odd: %d items, %v", len(odd.Items), err)
	}
	byName, err := cms.List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=p-07"})
	if err != nil || len(byName.Items) != 1 || byName.Items[0].Name != "p-07" {
		t.Errorf("field selector metadata.name: %v %v", byName, err)
	}
	if _, err := cms.List(ctx, metav1.ListOptions{FieldSelector: "spec.nope=1"}); !apierrors.IsBadRequest(err) {
		t.Errorf("unsupported field selector: want 400, got %v", err)
	}
	pods := s.client().CoreV1().Pods("default")
	for i, node := range []string{"n1", "n2", ""} {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pod-%d", i)}, Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
		if _, err := pods.Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	onN1, err := pods.List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=n1"})
	if err != nil || len(onN1.Items) != 1 || onN1.Items[0].Name != "pod-0" {
		t.Errorf("spec.nodeName=n1: %v %v", onN1, err)
	}
	unscheduled, err := pods.List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=,status.phase=Pending"})
	if err != nil || len(unscheduled.Items) != 1 || unscheduled.Items[0].Name != "pod-2" {
		t.Errorf("unscheduled pending pods: %v %v", unscheduled, err)
	}
}
