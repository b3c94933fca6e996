package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"bytes"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/watch"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
)

type testCodec struct{ ser *protobuf.Serializer }

func (c testCodec) Encode(obj runtime.Object) ([]byte, error) {
	obj.GetObjectKind().SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ConfigMap"))
	var b bytes.Buffer
	err := c.ser.Encode(obj, &b)
	return b.Bytes(), err
}

func (c testCodec) Decode(data []byte) (runtime.Object, error) {
	obj, _, err := c.ser.Decode(data, nil, nil)
	return obj, err
}

// clientKinds are the two ways skiff reaches etcd: over gRPC on a socket
// (an external cluster) and in process (the embedded one). Every storage
// test runs against both.
var clientKinds = []string{"grpc", "in-process"}

// newEtcd starts a real embedded etcd for the test and connects to it.
func newEtcd(t *testing.T, kind string) *clientv3.Client {
	t.Helper()
	e, err := StartEmbedded(EmbeddedConfig{DataDir: t.TempDir(), Name: "test"}, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	var c *clientv3.Client
	if kind == "in-process" {
		c = e.Client()
	} else if c, err = clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// forEachClient runs test once per client kind.
func forEachClient(t *testing.T, test func(t *testing.T, st *Store, c *Cache)) {
	for _, kind := range clientKinds {
		t.Run(kind, func(t *testing.T) {
			st, c := newStore(t, kind)
			test(t, st, c)
		})
	}
}

func newStore(t *testing.T, kind string) (*Store, *Cache) {
	s := runtime.NewScheme()
	clientgoscheme.AddToScheme(s)
	st := NewStore(newEtcd(t, kind), testCodec{protobuf.NewSerializer(s, s)}, "/registry/configmaps/", corev1.Resource("configmaps"))
	attrs := func(o runtime.Object) (labels.Set, fields.Set) {
		c := o.(*corev1.ConfigMap)
		return labels.Set(c.Labels), fields.Set{"metadata.name": c.Name}
	}
	c := NewCache(st, attrs, slog.Default())
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go c.Run(ctx)
	return st, c
}

func cmObj(name, v string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: map[string]string{"v": v}}, Data: map[string]string{"v": v}}
}

func TestStoreSemantics(t *testing.T) { forEachClient(t, testStoreSemantics) }

func testStoreSemantics(t *testing.T, st *Store, _ *Cache) {
	ctx := context.Background()
	created, err := st.Create(ctx, "ns/a", cmObj("a", "1"))
	if err != nil {
		t.Fatal(err)
	}
	if created.(*corev1.ConfigMap).ResourceVersion == "" {
		t.Error("create returned no resourceVersion")
	}
	if _, err := st.Create(ctx, "ns/a", cmObj("a", "1")); !apierrors.IsAlreadyExists(err) {
		t.Errorf("second create: %v", err)
	}
	if _, err := st.Get(ctx, "ns/missing"); !apierrors.IsNotFound(err) {
		t.Errorf("get missing: %v", err)
	}
	// An update that changes nothing is not written.
	same, err := st.GuaranteedUpdate(ctx, "ns/a", func(cur runtime.Object) (runtime.Object, error) { return cur.DeepCopyObject(), nil })
	if err != nil || same.(*corev1.ConfigMap).ResourceVersion != created.(*corev1.ConfigMap).ResourceVersion {
		t.Errorf("no-op update bumped the resourceVersion: %v", err)
	}
	// Concurrent updates each apply once.
	done := make(chan error, 20)
	for range 20 {
		go func() {
			_, err := st.GuaranteedUpdate(ctx, "ns/a", func(cur runtime.Object) (runtime.Object, error) {
				c := cur.DeepCopyObject().(*corev1.ConfigMap)
				c.Data["n"] += "x"
				return c, nil
			})
			done <- err
		}()
	}
	for range 20 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	got, _ := st.Get(ctx, "ns/a")
	if n := len(got.(*corev1.ConfigMap).Data["n"]); n != 20 {
		t.Errorf("20 concurrent updates left %d marks", n)
	}
	deleted, err := st.GuaranteedUpdate(ctx, "ns/a", func(runtime.Object) (runtime.Object, error) { return nil, nil })
	if err != nil || deleted.(*corev1.ConfigMap).Name != "a" {
		t.Errorf("delete: %v", err)
	}
	if _, err := st.Get(ctx, "ns/a"); !apierrors.IsNotFound(err) {
		t.Errorf("after delete: %v", err)
	}
}

func TestCacheListAndWatch(t *testing.T) { forEachClient(t, testCacheListAndWatch) }

func testCacheListAndWatch(t *testing.T, st *Store, c *Cache) {
	ctx := context.Background()
	// The cache must be primed before the writes for it to have seen them all.
	for deadline := time.Now().Add(10 * time.Second); !c.Ready() && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	for i := range 5 {
		if _, err := st.Create(ctx, fmt.Sprintf("ns/o%d", i), cmObj(fmt.Sprintf("o%d", i), "a")); err != nil {
			t.Fatal(err)
		}
	}
	rev, _ := st.CurrentRevision(ctx)
	if err := c.WaitFresh(ctx, rev); err != nil {
		t.Fatal(err)
	}
	items, rv := c.Snapshot(Filter{KeyPrefix: "ns/"})
	if len(items) != 5 || rv < rev || items[0].Key != "ns/o0" || items[4].Key != "ns/o4" {
		t.Fatalf("snapshot: %d items at %d", len(items), rv)
	}
	sel, _ := labels.Parse("v=b")
	w, backlog, _, err := c.Watch(Filter{KeyPrefix: "ns/", Labels: sel}, rv, false)
	if err != nil || len(backlog) != 0 {
		t.Fatalf("watch: %v %d", err, len(backlog))
	}
	defer w.Stop()
	// o1 starts matching (ADDED for this watcher), then stops (DELETED).
	st.GuaranteedUpdate(ctx, "ns/o1", func(cur runtime.Object) (runtime.Object, error) { return cmObj("o1", "b"), nil })
	st.GuaranteedUpdate(ctx, "ns/o1", func(cur runtime.Object) (runtime.Object, error) { return cmObj("o1", "c"), nil })
	for _, want := range []watch.EventType{watch.Added, watch.Deleted} {
		select {
		case ev := <-w.Events():
			if ev.Type != want || ev.Obj.Key != "ns/o1" {
				t.Fatalf("got %s %s, want %s ns/o1", ev.Type, ev.Obj.Key, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no %s event", want)
		}
	}
	// Resuming from the start replays both changes; a version older than
	// the window is gone.
	_, replay, _, err := c.Watch(Filter{KeyPrefix: "ns/"}, rv, false)
	if err != nil || len(replay) != 2 {
		t.Errorf("replay from %d: %d events, %v", rv, len(replay), err)
	}
	if _, _, _, err := c.Watch(Filter{}, 1, false); err != nil {
		t.Errorf("watch from revision 1 of a cache that saw everything: %v", err)
	}
	late := NewCache(st, c.attrs, slog.Default())
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go late.Run(lctx)
	cur, _ := st.CurrentRevision(ctx)
	if err := late.WaitFresh(ctx, cur); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := late.Watch(Filter{}, 1, false); !apierrors.IsResourceExpired(err) {
		t.Errorf("watch from before a cache's window: want 410 Expired, got %v", err)
	}
	// Encodings are computed once and shared.
	calls := 0
	enc := func(runtime.Object) ([]byte, error) { calls++; return []byte("x"), nil }
	items[0].Encoded("json", enc)
	items[0].Encoded("json", enc)
	if calls != 1 {
		t.Errorf("encoded %d times", calls)
	}
}

// TestStorageErr checks the API error each etcd failure becomes: the code a
// client sees decides whether it retries.
func TestStorageErr(t *testing.T) {
	cases := []struct {
		name string
		err  error
		code int32
	}{
		{"request too large", rpctypes.ErrRequestTooLarge, http.StatusRequestEntityTooLarge},
		{"request too large (gRPC)", rpctypes.ErrGRPCRequestTooLarge, http.StatusRequestEntityTooLarge},
		{"no space", rpctypes.ErrNoSpace, http.StatusInsufficientStorage},
		{"no space wrapped", fmt.Errorf("put: %w", rpctypes.ErrNoSpace), http.StatusInsufficientStorage},
		{"compacted", rpctypes.ErrCompacted, http.StatusGone},
		{"deadline", context.DeadlineExceeded, http.StatusGatewayTimeout},
		{"unavailable", errors.New("etcdserver: leader changed"), http.StatusServiceUnavailable},
	}
	for _, tc := range cases {
		var st apierrors.APIStatus
		if !errors.As(storageErr(tc.err), &st) {
			t.Errorf("%s: not an API status", tc.name)
			continue
		}
		if got := st.Status().Code; got != tc.code {
			t.Errorf("%s: code %d, want %d (%s)", tc.name, got, tc.code, st.Status().Message)
		}
	}
}
