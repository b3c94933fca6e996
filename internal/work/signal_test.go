package work

import "testing"

func TestSignalCoalesces(t *testing.T) {
	s := NewSignal()
	s.Fire()
	s.Fire() // folded into the first
	select {
	case <-s.C:
	default:
		t.Fatal("nothing pending after Fire")
	}
	select {
	case <-s.C:
		t.Fatal("two Fires woke the loop twice")
	default:
	}
	s.OnAny().OnUpdate(nil, nil)
	if len(s.C) != 1 {
		t.Error("an update event did not fire")
	}
}
