package warm

import (
	"testing"
)

func TestRunRaisesPanicsAndSurvivesThem(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(*Pool, func())
	}{{"Run", (*Pool).Run}, {"TryRun", (*Pool).TryRun}} {
		t.Run(tc.name, func(t *testing.T) {
			p := New(2)
			n := 0
			tc.run(p, func() { n++ })
			if n != 1 {
				t.Fatalf("job ran %d times", n)
			}
			func() {
				defer func() {
					if r := recover(); r != "boom" {
						t.Fatalf("recovered %v, want the job's panic", r)
					}
				}()
				tc.run(p, func() { panic("boom") })
			}()
			for range 4 { // both goroutines survive a panicking job
				tc.run(p, func() { n++ })
			}
			if n != 5 {
				t.Fatalf("%d jobs ran after a panic, want 4", n-1)
			}
		})
	}
}

// TryRun never waits for a busy pool: with its only goroutine blocked, a
// second job runs at once on the caller's goroutine.
func TestTryRunRunsInlineWhenBusy(t *testing.T) {
	p := New(1)
	release, started := make(chan struct{}), make(chan struct{})
	go p.Run(func() { close(started); <-release }) // Run waits for the pool goroutine
	<-started
	ran := false
	p.TryRun(func() { ran = true })
	if !ran {
		t.Fatal("job did not run while the pool was busy")
	}
	close(release)
}
