package procmem

import "testing"

// The test binary maps its own executable read-only; all of it is advised.
func TestReleaseExecutablePages(t *testing.T) {
	if n := ReleaseExecutablePages(); n <= 0 {
		t.Fatalf("advised %d bytes of the executable, want the read-only mappings", n)
	}
}
