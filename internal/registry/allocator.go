package registry

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/skiff-sh/skiff/internal/storage"
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

// Allocator hands out unique values from a range. Each allocation is a
// record created in an etcd transaction, so concurrent servers never hand
// out the same value and allocations survive restarts.
type Allocator struct {
	records records
	size    int
	value   func(i int) string
	index   func(v string) (int, bool)
}

// records is where an allocator keeps who holds which value.
type records interface {
	// claim records owner as v's holder unless v is held; it returns the
	// holder that was there ("" when the claim succeeded).
	claim(ctx context.Context, v, owner string) (holder string, err error)
	// holder is v's current holder, "" when v is free.
	holder(ctx context.Context, v string) (string, error)
	// release frees v if owner holds it.
	release(ctx context.Context, v, owner string) error
}

// NewIPAllocator allocates addresses of cidr, skipping the network address
// and keeping the first host address for the kubernetes Service. Its
// records are IPAddress objects, as upstream's allocator keeps them.
func NewIPAllocator(ips *storage.Store, cidr string, now func() time.Time) (*Allocator, error) {
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
	return &Allocator{records: ipAddressRecords{store: ips, now: now}, size: size, value: value, index: index}, nil
}

// NewPortAllocator allocates node ports in [lo, hi].
func NewPortAllocator(client *clientv3.Client, lo, hi int) *Allocator {
	return &Allocator{
		records: keyRecords{client: client, prefix: "/registry/skiff/allocations/nodeports/"}, size: hi - lo + 1,
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
	var holder string
	var err error
	if dryRun {
		holder, err = a.records.holder(ctx, v)
	} else {
		holder, err = a.records.claim(ctx, v, owner)
	}
	if err != nil {
		return fmt.Errorf("allocate %s: %w", v, err)
	}
	if holder != "" && holder != owner {
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
	return a.records.release(ctx, v, owner)
}

// keyRecords keep each allocation as a plain etcd key whose value is the
// owner.
type keyRecords struct {
	client *clientv3.Client
	prefix string
}

func (k keyRecords) claim(ctx context.Context, v, owner string) (string, error) {
	key := k.prefix + v
	resp, err := k.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, owner)).
		Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return "", err
	}
	if resp.Succeeded {
		return "", nil
	}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		return string(kvs[0].Value), nil
	}
	return "", nil
}

func (k keyRecords) holder(ctx context.Context, v string) (string, error) {
	resp, err := k.client.Get(ctx, k.prefix+v)
	if err != nil || len(resp.Kvs) == 0 {
		return "", err
	}
	return string(resp.Kvs[0].Value), nil
}

func (k keyRecords) release(ctx context.Context, v, owner string) error {
	key := k.prefix + v
	_, err := k.client.Txn(ctx).If(clientv3.Compare(clientv3.Value(key), "=", owner)).Then(clientv3.OpDelete(key)).Commit()
	return err
}
