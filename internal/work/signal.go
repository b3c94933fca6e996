package work

import "k8s.io/client-go/tools/cache"

// Signal is a coalescing wake-up for loops that recompute everything from
// listers (the node's service proxy, DNS zone, pod routes): any number of
// Fire calls before the loop next receives from C collapse into one.
type Signal struct {
	C chan struct{}
}

// NewSignal returns a Signal with nothing pending.
func NewSignal() Signal { return Signal{C: make(chan struct{}, 1)} }

// Fire marks work pending; it never blocks.
func (s Signal) Fire() {
	select {
	case s.C <- struct{}{}:
	default:
	}
}

// OnAny is an event handler firing on every add, update and delete.
func (s Signal) OnAny() cache.ResourceEventHandlerFuncs {
	return OnChange(func(any) { s.Fire() })
}
