package work

import (
	"testing"
	"time"
)

func TestExpectations(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	e := NewExpectations(func() time.Time { return now })
	e.Expect("ns/rs", 2, []string{"ns/p1"})
	if e.Satisfied("ns/rs") {
		t.Fatal("satisfied before anything was observed")
	}
	e.Added("ns/rs")
	e.Added("ns/rs")
	e.Deleted("ns/rs", "ns/p1")
	if !e.Satisfied("ns/rs") {
		t.Fatal("not satisfied after every create and delete was observed")
	}
	e.Expect("ns/rs", 1, nil)
	now = now.Add(ExpectationsTTL + time.Second)
	if !e.Satisfied("ns/rs") {
		t.Fatal("expectations never expire")
	}
}

// TestExpectationsExpiry: a sync that finds its object waiting learns when
// the wait ends, so a lost event stalls it for the TTL at most.
func TestExpectationsExpiry(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	e := NewExpectations(func() time.Time { return now })
	e.Expect("ns/rs", 0, []string{"ns/lost"})
	now = now.Add(time.Minute)
	if d := e.Expiry("ns/rs"); d != ExpectationsTTL-time.Minute+time.Second {
		t.Errorf("expiry %v", d)
	}
	now = now.Add(ExpectationsTTL)
	if !e.Satisfied("ns/rs") {
		t.Error("still waiting past the TTL")
	}
	if d := e.Expiry("ns/rs"); d != 0 {
		t.Errorf("expiry of nothing pending: %v", d)
	}
}
