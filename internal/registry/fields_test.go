package registry

import "testing"

func TestWarmPoolRunsAndRaisesPanics(t *testing.T) {
	p := newWarmPool(2)
	n := 0
	p.run(func() { n++ })
	if n != 1 {
		t.Fatalf("job ran %d times", n)
	}
	defer func() {
		if r := recover(); r != "boom" {
			t.Fatalf("recovered %v, want the job's panic", r)
		}
		p.run(func() { n++ }) // the pool survives a panicking job
		if n != 2 {
			t.Fatalf("pool stopped after a panic")
		}
	}()
	p.run(func() { panic("boom") })
}
