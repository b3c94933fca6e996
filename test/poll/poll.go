// Package poll is how the integration and end-to-end tests wait: one
// Eventually with the timeout in plain sight at every call.
package poll

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// interval is how often a condition is checked.
const interval = 100 * time.Millisecond

// Eventually checks cond until it returns nil or timeout passes, then fails
// the test with cond's last error.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", timeout, err)
		}
		time.Sleep(interval)
	}
}

// State adapts a condition that reports whether it holds and, if not, the
// state it saw: its error names what was awaited and that state.
func State(what string, cond func() (bool, string)) func() error {
	return func() error {
		ok, state := cond()
		if ok {
			return nil
		}
		if state == "" {
			return errors.New(what)
		}
		return fmt.Errorf("%s: still %s", what, state)
	}
}
