package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/skiff-sh/skiff/internal/storage"
)

func etcdClient(t *testing.T) *clientv3.Client {
	t.Helper()
	e, err := storage.StartEmbedded(storage.EmbeddedConfig{DataDir: t.TempDir(), Name: "t"}, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// jsonCodec stores objects as JSON, enough for allocator tests.
type jsonCodec struct{}

func (jsonCodec) Encode(obj runtime.Object) ([]byte, error) {
	return runtime.Encode(scheme.Codecs.LegacyCodec(networkingv1.SchemeGroupVersion), obj)
}

func (jsonCodec) Decode(data []byte) (runtime.Object, error) {
	return runtime.Decode(scheme.Codecs.UniversalDeserializer(), data)
}

func ipAddressStore(c *clientv3.Client) *storage.Store {
	return storage.NewStore(c, jsonCodec{}, "/registry/networking.k8s.io/ipaddresses/", networkingv1.Resource("ipaddresses"))
}

// TestIPAllocatorConcurrent fills a small range from many goroutines, as
// two API servers would: every address goes to exactly one owner.
func TestIPAllocatorConcurrent(t *testing.T) {
	a, err := NewIPAllocator(ipAddressStore(etcdClient(t)), "10.43.0.0/27", time.Now) // 30 usable, 1 reserved
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var mu sync.Mutex
	got := map[string]string{}
	var wg sync.WaitGroup
	var full int
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprintf("ns/s%d", i)
			ip, err := a.AllocateNext(ctx, owner, false)
			mu.Lock()
			defer mu.Unlock()
			if errors.Is(err, ErrFull) {
				full++
				return
			}
			if err != nil {
				t.Error(err)
				return
			}
			if prev, dup := got[ip]; dup {
				t.Errorf("%s given to %s and %s", ip, prev, owner)
			}
			got[ip] = owner
		}()
	}
	wg.Wait()
	if len(got) != 29 || full != 11 {
		t.Errorf("allocated %d (want 29), full %d (want 11)", len(got), full)
	}
	if _, ok := got["10.43.0.1"]; ok {
		t.Error("the kubernetes Service address was handed out")
	}
	if err := a.Allocate(ctx, "10.43.0.1", "default/kubernetes", false); err != nil {
		t.Errorf("explicit first address: %v", err)
	}
	if err := a.Allocate(ctx, "10.44.0.1", "x/y", false); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("out of range: %v", err)
	}
	for ip, owner := range got {
		if err := a.Allocate(ctx, ip, "other/x", false); !errors.Is(err, ErrAllocated) {
			t.Errorf("taken %s: %v", ip, err)
		}
		if err := a.Release(ctx, ip, owner); err != nil {
			t.Fatal(err)
		}
		if err := a.Allocate(ctx, ip, "other/x", false); err != nil {
			t.Errorf("released %s not reusable: %v", ip, err)
		}
		break
	}
}

func TestPortAllocatorRange(t *testing.T) {
	a := NewPortAllocator(etcdClient(t), 30000, 30002)
	ctx := context.Background()
	if err := a.Allocate(ctx, "29999", "a", false); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("29999: %v", err)
	}
	if err := a.Allocate(ctx, "30001", "a", true); err != nil {
		t.Errorf("dry run: %v", err)
	}
	if err := a.Allocate(ctx, "30001", "b", false); err != nil {
		t.Errorf("dry run must not reserve: %v", err)
	}
}

// TestIPAllocatorRecords: an allocation is the IPAddress object upstream's
// allocator writes, a user's IPAddress reserves its address, and release
// removes only the owner's record.
func TestIPAllocatorRecords(t *testing.T) {
	st := ipAddressStore(etcdClient(t))
	a, err := NewIPAllocator(st, "10.43.0.0/24", time.Now)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := a.Allocate(ctx, "10.43.0.7", "web/front", false); err != nil {
		t.Fatal(err)
	}
	obj, err := st.Get(ctx, "10.43.0.7")
	if err != nil {
		t.Fatal(err)
	}
	ip := obj.(*networkingv1.IPAddress)
	want := networkingv1.ParentReference{Resource: "services", Namespace: "web", Name: "front"}
	if ip.Spec.ParentRef == nil || *ip.Spec.ParentRef != want {
		t.Errorf("parentRef %+v, want %+v", ip.Spec.ParentRef, want)
	}
	if ip.Labels[ipFamilyLabel] != "IPv4" || ip.Labels[managedByLabel] != ipAllocatorID || ip.UID == "" || ip.CreationTimestamp.IsZero() {
		t.Errorf("record metadata %+v", ip.ObjectMeta)
	}
	if err := a.Allocate(ctx, "10.43.0.7", "web/front", false); err != nil {
		t.Errorf("the owner allocating again: %v", err)
	}
	if err := a.Release(ctx, "10.43.0.7", "web/other"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(ctx, "10.43.0.7"); err != nil {
		t.Errorf("another owner's release removed the record: %v", err)
	}
	if err := a.Release(ctx, "10.43.0.7", "web/front"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(ctx, "10.43.0.7"); err == nil {
		t.Error("released record still stored")
	}
	user := &networkingv1.IPAddress{ObjectMeta: metav1.ObjectMeta{Name: "10.43.0.9"}, Spec: networkingv1.IPAddressSpec{ParentRef: &networkingv1.ParentReference{Group: "gateway.networking.k8s.io", Resource: "gateways", Namespace: "web", Name: "gw"}}}
	if _, err := st.Create(ctx, "10.43.0.9", user); err != nil {
		t.Fatal(err)
	}
	if err := a.Allocate(ctx, "10.43.0.9", "web/front", true); !errors.Is(err, ErrAllocated) {
		t.Errorf("dry run on a user's address: %v", err)
	}
	if err := a.Allocate(ctx, "10.43.0.9", "web/front", false); !errors.Is(err, ErrAllocated) {
		t.Errorf("a user's address: %v", err)
	}
}

// TestMigrateClusterIPs: allocations an older skiff kept as plain keys
// become IPAddress objects and the keys go; a second run moves nothing.
func TestMigrateClusterIPs(t *testing.T) {
	c := etcdClient(t)
	st := ipAddressStore(c)
	a, err := NewIPAllocator(st, "10.43.0.0/24", time.Now)
	if err != nil {
		t.Fatal(err)
	}
	g := &Registry{IPs: a, Log: slog.Default()}
	ctx := context.Background()
	for ip, owner := range map[string]string{"10.43.0.1": "default/kubernetes", "10.43.0.20": "kube-system/kube-dns"} {
		if _, err := c.Put(ctx, legacyClusterIPPrefix+ip, owner); err != nil {
			t.Fatal(err)
		}
	}
	n, err := g.MigrateClusterIPs(ctx, c)
	if err != nil || n != 2 {
		t.Fatalf("migrated %d, %v; want 2", n, err)
	}
	obj, err := st.Get(ctx, "10.43.0.20")
	if err != nil {
		t.Fatal(err)
	}
	if h := ipAddressHolder(obj.(*networkingv1.IPAddress)); h != "kube-system/kube-dns" {
		t.Errorf("holder %q", h)
	}
	if err := a.Allocate(ctx, "10.43.0.1", "x/y", false); !errors.Is(err, ErrAllocated) {
		t.Errorf("migrated address free again: %v", err)
	}
	if resp, err := c.Get(ctx, legacyClusterIPPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || resp.Count != 0 {
		t.Errorf("legacy keys left: %v %v", resp, err)
	}
	if n, err := g.MigrateClusterIPs(ctx, c); err != nil || n != 0 {
		t.Errorf("second run moved %d, %v", n, err)
	}
}
