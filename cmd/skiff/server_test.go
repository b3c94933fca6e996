package main

import (
	"os"
	"runtime/debug"
	"testing"
)

func TestSetGCPercent(t *testing.T) {
	orig := debug.SetGCPercent(100)
	defer debug.SetGCPercent(orig)

	t.Run("applied without GOGC", func(t *testing.T) {
		t.Setenv("GOGC", "")
		// t.Setenv cannot unset; an empty GOGC still counts as set, so
		// unset it for this case and let Setenv's cleanup restore it.
		unsetenv(t, "GOGC")
		if err := setGCPercent(250); err != nil {
			t.Fatal(err)
		}
		if got := debug.SetGCPercent(100); got != 250 {
			t.Fatalf("GC percent = %d, want 250", got)
		}
	})
	t.Run("GOGC takes precedence", func(t *testing.T) {
		t.Setenv("GOGC", "100")
		if err := setGCPercent(300); err != nil {
			t.Fatal(err)
		}
		if got := debug.SetGCPercent(100); got != 100 {
			t.Fatalf("GC percent = %d, want GOGC's 100", got)
		}
	})
	for _, p := range []int{0, -1} {
		if err := setGCPercent(p); err == nil {
			t.Errorf("setGCPercent(%d): no error", p)
		}
	}
}

func unsetenv(t *testing.T, key string) {
	t.Helper()
	if err := os.Unsetenv(key); err != nil {
		t.Fatal(err)
	}
}
