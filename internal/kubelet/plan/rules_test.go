package plan

import (
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	v1 "k8s.io/api/core/v1"
)

func TestBackoff(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC))
	b := NewBackoff(clk)
	const key = "pod/c"
	if w := b.Wait(key, clk.Now()); w != 0 {
		t.Fatalf("first restart waits %s", w)
	}
	var delays []time.Duration
	for i := 0; i < 7; i++ {
		delays = append(delays, b.Next(key))
	}
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 300 * time.Second, 300 * time.Second}
	for i := range want {
		if delays[i] != want[i] {
			t.Fatalf("delays %v, want %v", delays, want)
		}
	}
	exited := clk.Now()
	clk.Step(time.Minute)
	if w := b.Wait(key, exited); w != 4*time.Minute {
		t.Errorf("a minute after exit with a 5 min back-off: wait %s", w)
	}
	// Ten quiet minutes (twice the maximum) start it over.
	clk.Step(10*time.Minute + time.Second)
	if w := b.Wait(key, exited); w != 0 {
		t.Errorf("after a long run: wait %s", w)
	}
	if d := b.Next(key); d != 10*time.Second {
		t.Errorf("restarted back-off %s", d)
	}
	b.Forget("pod/")
	if b.Current(key) != 0 {
		t.Error("forget kept the entry")
	}
}

func TestShouldRestart(t *testing.T) {
	cases := []struct {
		policy v1.RestartPolicy
		code   int32
		want   bool
	}{
		{v1.RestartPolicyAlways, 0, true}, {v1.RestartPolicyAlways, 1, true},
		{v1.RestartPolicyOnFailure, 0, false}, {v1.RestartPolicyOnFailure, 137, true},
		{v1.RestartPolicyNever, 1, false},
	}
	for _, c := range cases {
		if got := ShouldRestart(c.policy, c.code); got != c.want {
			t.Errorf("%s exit %d: %v", c.policy, c.code, got)
		}
	}
}
