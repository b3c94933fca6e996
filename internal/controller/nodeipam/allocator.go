// Package nodeipam gives each Node a pod CIDR (spec.podCIDR) carved from
// the cluster CIDR, as upstream's node IPAM controller does with its range
// allocator. The allocation lives in the Node objects themselves: a
// restarted controller rebuilds it from them.
package nodeipam

import (
	"fmt"
	"math/big"
	"net"
)

// Allocator hands out equal subnets of a cluster range. It is pure state;
// the controller serialises calls.
type Allocator struct {
	cluster *net.IPNet
	// bits is the subnet mask size; count the number of subnets.
	bits, count int
	used        []bool
	free        int
	next        int
}

// NewAllocator splits cluster into subnets of maskSize bits.
func NewAllocator(cluster string, maskSize int) (*Allocator, error) {
	_, ipnet, err := net.ParseCIDR(cluster)
	if err != nil {
		return nil, fmt.Errorf("cluster CIDR %q: %w", cluster, err)
	}
	ones, total := ipnet.Mask.Size()
	if maskSize < ones || maskSize > total {
		return nil, fmt.Errorf("node CIDR mask size %d must lie between the cluster CIDR's prefix %d and %d", maskSize, ones, total)
	}
	if maskSize-ones > 24 {
		return nil, fmt.Errorf("node CIDR mask size %d leaves more than 2^24 subnets of %s", maskSize, cluster)
	}
	n := 1 << (maskSize - ones)
	return &Allocator{cluster: ipnet, bits: maskSize, count: n, used: make([]bool, n), free: n}, nil
}

// index is the position of subnet cidr in the range, or false when it is
// not one of the range's subnets.
func (a *Allocator) index(cidr string) (int, bool) {
	ip, ipnet, err := net.ParseCIDR(cidr)
	if err != nil || !a.cluster.Contains(ip) {
		return 0, false
	}
	if ones, _ := ipnet.Mask.Size(); ones != a.bits {
		return 0, false
	}
	base := new(big.Int).SetBytes(a.cluster.IP.To16())
	off := new(big.Int).Sub(new(big.Int).SetBytes(ipnet.IP.To16()), base)
	_, total := a.cluster.Mask.Size()
	off.Rsh(off, uint(total-a.bits))
	return int(off.Int64()), true
}

// subnet is the CIDR at position i.
func (a *Allocator) subnet(i int) string {
	_, total := a.cluster.Mask.Size()
	off := new(big.Int).Lsh(big.NewInt(int64(i)), uint(total-a.bits))
	ip := new(big.Int).Add(new(big.Int).SetBytes(a.cluster.IP.To16()), off).Bytes()
	buf := make(net.IP, 16)
	copy(buf[16-len(ip):], ip)
	if a.cluster.IP.To4() != nil {
		buf = buf.To4()
	}
	return (&net.IPNet{IP: buf, Mask: net.CIDRMask(a.bits, total)}).String()
}

// Occupy marks cidr taken (a Node already carries it). It reports false
// for a CIDR outside the range or of another size, which stays the Node's
// own business.
func (a *Allocator) Occupy(cidr string) bool {
	i, ok := a.index(cidr)
	if !ok {
		return false
	}
	if !a.used[i] {
		a.used[i] = true
		a.free--
	}
	return true
}

// Release frees cidr.
func (a *Allocator) Release(cidr string) {
	if i, ok := a.index(cidr); ok && a.used[i] {
		a.used[i] = false
		a.free++
	}
}

// Allocate takes the next free subnet after the last one handed out, so a
// released subnet is not reused at once while its routes may linger.
func (a *Allocator) Allocate() (string, error) {
	if a.free == 0 {
		return "", fmt.Errorf("the cluster CIDR %s has no free /%d left", a.cluster, a.bits)
	}
	for k := 0; k < a.count; k++ {
		i := (a.next + k) % a.count
		if !a.used[i] {
			a.used[i] = true
			a.free--
			a.next = (i + 1) % a.count
			return a.subnet(i), nil
		}
	}
	return "", fmt.Errorf("the cluster CIDR %s has no free /%d left", a.cluster, a.bits)
}
