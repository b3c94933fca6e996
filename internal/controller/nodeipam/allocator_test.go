package nodeipam

import "testing"

func TestAllocator(t *testing.T) {
	a, err := NewAllocator("10.42.0.0/22", 24)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Occupy("10.42.1.0/24") {
		t.Fatal("an in-range subnet was not accepted")
	}
	for _, bad := range []string{"10.43.0.0/24", "10.42.0.0/25", "junk"} {
		if a.Occupy(bad) {
			t.Errorf("Occupy(%q) accepted", bad)
		}
	}
	var got []string
	for range 3 {
		c, err := a.Allocate()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, c)
	}
	want := []string{"10.42.0.0/24", "10.42.2.0/24", "10.42.3.0/24"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("allocated %v, want %v", got, want)
		}
	}
	if _, err := a.Allocate(); err == nil {
		t.Fatal("a full range allocated")
	}
	a.Release("10.42.2.0/24")
	if c, err := a.Allocate(); err != nil || c != "10.42.2.0/24" {
		t.Fatalf("after release: %q %v", c, err)
	}
}

func TestAllocatorRejectsBadConfig(t *testing.T) {
	for _, tc := range []struct {
		cidr string
		mask int
	}{{"10.42.0.0/16", 8}, {"10.42.0.0/16", 33}, {"nope", 24}, {"10.0.0.0/4", 30}} {
		if _, err := NewAllocator(tc.cidr, tc.mask); err == nil {
			t.Errorf("NewAllocator(%q, %d) accepted", tc.cidr, tc.mask)
		}
	}
}

func TestAllocatorIPv6(t *testing.T) {
	a, err := NewAllocator("fd00:42::/56", 64)
	if err != nil {
		t.Fatal(err)
	}
	a.Occupy("fd00:42::/64")
	if c, _ := a.Allocate(); c != "fd00:42:0:1::/64" {
		t.Errorf("allocated %q", c)
	}
}
