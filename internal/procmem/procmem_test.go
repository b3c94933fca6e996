package procmem

import (
	"runtime/metrics"
	"testing"
)

// The test binary maps its own executable read-only; all of it is advised.
func TestReleaseExecutablePages(t *testing.T) {
	if n := ReleaseExecutablePages(); n <= 0 {
		t.Fatalf("advised %d bytes of the executable, want the read-only mappings", n)
	}
}

func TestShouldReturn(t *testing.T) {
	for _, c := range []struct {
		name      string
		prev, cur memSample
		want      bool
	}{
		{"quiet with much free heap", memSample{Allocs: 1 << 30}, memSample{Allocs: 1<<30 + 1<<20, Free: 300 << 20}, true},
		{"busy", memSample{Allocs: 1 << 30}, memSample{Allocs: 2 << 30, Free: 300 << 20}, false},
		{"quiet, little free heap", memSample{Allocs: 1 << 30}, memSample{Allocs: 1 << 30, Free: 10 << 20}, false},
		{"quiet with much uncollected garbage", memSample{Allocs: 1 << 30}, memSample{Allocs: 1 << 30, Free: 10 << 20, Garbage: 200 << 20}, true},
		{"busy with much garbage", memSample{Allocs: 1 << 30}, memSample{Allocs: 2 << 30, Garbage: 200 << 20}, false},
	} {
		if got := shouldReturn(c.prev, c.cur); got != c.want {
			t.Errorf("%s: %v", c.name, got)
		}
	}
}

// TestReadMem: the runtime metrics it reads exist (a renamed metric would
// read as zero and the returner would never act).
func TestReadMem(t *testing.T) {
	buf := make([][]byte, 0, 64)
	for range 64 {
		buf = append(buf, make([]byte, 1<<20))
	}
	_ = buf
	if m := readMem(); m.Allocs < 64<<20 {
		t.Errorf("allocs %d after 64 MiB allocated", m.Allocs)
	}
	for _, d := range metrics.All() {
		if d.Name == "/memory/classes/heap/free:bytes" {
			return
		}
	}
	t.Error("runtime metric /memory/classes/heap/free:bytes is gone")
}
