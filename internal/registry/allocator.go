package registry

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"net/netip"
	"strconv"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// AllocatorConfig sets the ranges Services draw from.
type AllocatorConfig struct {
	ServiceCIDR string // e.g. 10.43.0.0/16
	NodePortMin int    // 30000
	NodePortMax int    // 32767
}

// ErrFull is returned when no value is left in the range.
var ErrFull = errors.New("range is full")

// ErrAllocated is returned when a requested value is already in use.
var ErrAllocated = errors.New("provided value is already allocated")

// ErrOutOfRange is returned when a requested value is outside the range.
var ErrOutOfRange = errors.New("provided value is not in the valid range")

// Allocator hands out unique values from a range. Each allocation is an etcd
// key created in a transaction, so concurrent servers never hand out the
// same value and allocations survive restarts.
type Allocator struct {
	client *clientv3.Client
	prefix string
	size   int
	value  func(i int) string
	index  func(v string) (int, bool)
}

// NewIPAllocator allocates addresses of cidr, skipping the network address
// and keeping the first host address for the kubernetes Service.
func NewIPAllocator(client *clientv3.Client, cidr string) (*Allocator, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil || !p.Addr().Is4() {
		return nil, fmt.Errorf("service CIDR %q: must be an IPv4 CIDR", cidr)
	}
	p = p.Masked()
	bits := 32 - p.Bits()
	if bits < 2 || bits > 20 {
		return nil, fmt.Errorf("service CIDR %q: size must be between /12 and /30", cidr)
	}
	base := new(big.Int).SetBytes(p.Addr().AsSlice())
	size := (1 << bits) - 2 // no network or broadcast address
	value := func(i int) string {
		n := new(big.Int).Add(base, big.NewInt(int64(i+1)))
		b := n.FillBytes(make([]byte, 4))
		return netip.AddrFrom4([4]byte(b)).String()
	}
	index := func(v string) (int, bool) {
		a, err := netip.ParseAddr(v)
		if err != nil || !a.Is4() || !p.Contains(a) {
			return 0, false
		}
		i := int(new(big.Int).Sub(new(big.Int).SetBytes(a.AsSlice()), base).Int64()) - 1
		return i, i >= 0 && i < size
	}
	return &Allocator{client: client, prefix: "/registry/skiff/allocations/clusterips/", size: size, value: value, index: index}, nil
}

// NewPortAllocator allocates node ports in [lo, hi].
func NewPortAllocator(client *clientv3.Client, lo, hi int) *Allocator {
	return &Allocator{
		client: client, prefix: "/registry/skiff/allocations/nodeports/", size: hi - lo + 1,
		value: func(i int) string { return strconv.Itoa(lo + i) },
		index: func(v string) (int, bool) {
			n, err := strconv.Atoi(v)
			return n - lo, err == nil && n >= lo && n <= hi
		},
	}
}

// First is the first value of the range (the kubernetes Service's IP).
func (a *Allocator) First() string { return a.value(0) }

// Contains reports whether v is inside the range.
func (a *Allocator) Contains(v string) bool { _, ok := a.index(v); return ok }

// Allocate reserves v for owner. With dryRun it only checks.
func (a *Allocator) Allocate(ctx context.Context, v, owner string, dryRun bool) error {
	if _, ok := a.index(v); !ok {
		return ErrOutOfRange
	}
	key := a.prefix + v
	if dryRun {
		resp, err := a.client.Get(ctx, key)
		if err != nil {
			return err
		}
		if len(resp.Kvs) > 0 && string(resp.Kvs[0].Value) != owner {
			return ErrAllocated
		}
		return nil
	}
	resp, err := a.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, owner)).
		Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return fmt.Errorf("allocate %s: %w", v, err)
	}
	if !resp.Succeeded {
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) > 0 && string(kvs[0].Value) == owner {
			return nil
		}
		return ErrAllocated
	}
	return nil
}

// AllocateNext reserves a free value for owner, starting at a random place
// (index 0 is skipped: it is reserved for a well-known owner).
func (a *Allocator) AllocateNext(ctx context.Context, owner string, dryRun bool) (string, error) {
	start := 1 + rand.IntN(max(a.size-1, 1))
	for i := range a.size - 1 {
		v := a.value(1 + (start-1+i)%(a.size-1))
		err := a.Allocate(ctx, v, owner, dryRun)
		if err == nil {
			return v, nil
		}
		if !errors.Is(err, ErrAllocated) {
			return "", err
		}
	}
	return "", ErrFull
}

// Release frees v if owner holds it.
func (a *Allocator) Release(ctx context.Context, v, owner string) error {
	key := a.prefix + v
	_, err := a.client.Txn(ctx).If(clientv3.Compare(clientv3.Value(key), "=", owner)).Then(clientv3.OpDelete(key)).Commit()
	return err
}
