//go:build kernel

// Kernel tests and benchmarks: they need root, ip and nft, and make a
// network namespace each; `make e2e` runs them (go test -tags kernel).

package proxy

import "testing"

// BenchmarkAdopt is a restarted agent taking over a table of 1,000
// Services × 10 endpoints: every chain rewritten in place.
func BenchmarkAdopt(b *testing.B) {
	_, ns := testNetns(b)
	svcs, slices := scale(1000, 10)
	first, err := NewTable(testConfig(), int(ns.Fd()))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := first.Apply(Build(testConfig(), svcs, slices)); err != nil {
		b.Fatal(err)
	}
	first.Close()
	for b.Loop() {
		tbl, err := NewTable(testConfig(), int(ns.Fd()))
		if err != nil {
			b.Fatal(err)
		}
		st, err := tbl.Apply(Build(testConfig(), svcs, slices))
		if err != nil || !st.Adopted || st.ChainsChanged != 11000 {
			b.Fatalf("%+v %v", st, err)
		}
		tbl.Close()
	}
}
