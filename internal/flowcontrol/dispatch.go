package flowcontrol

import (
	"context"
	"errors"
	"hash/fnv"
	"math"
	"sync"
	"time"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	"k8s.io/utils/ptr"
)

// Width is how many seats a request takes, as upstream's work estimator
// reckons it: a list (or a watch's initial events) one seat per
// ObjectsPerSeat objects it goes through, the objects stored of its
// resource, at most MaxSeats; anything else one.
func Width(verb string, stored int) int {
	if verb != "list" && verb != "watch" {
		return 1
	}
	return max(1, min(MaxSeats, (stored+ObjectsPerSeat-1)/ObjectsPerSeat))
}

// Upstream's work estimator's defaults.
const (
	ObjectsPerSeat = 100
	MaxSeats       = 10
)

// ErrRejected is a request its priority level has no room for.
var ErrRejected = errors.New("too many requests")

// Decision is how a request was classified.
type Decision struct {
	Schema *flowcontrolv1.FlowSchema
	Level  *flowcontrolv1.PriorityLevelConfiguration
	Exempt bool
}

// Controller classifies and admits requests. Its configuration follows
// the FlowSchemas and PriorityLevelConfigurations it is given.
type Controller struct {
	// Seats is the server's concurrency limit, shared among the limited
	// levels by their nominal concurrency shares.
	Seats int
	// QueueWait bounds how long a request waits in a queue.
	QueueWait time.Duration

	mu      sync.Mutex
	schemas map[string]*flowcontrolv1.FlowSchema
	plcs    map[string]*flowcontrolv1.PriorityLevelConfiguration
	sorted  []*flowcontrolv1.FlowSchema // nil: to be sorted again
	levels  map[string]*level
}

// SetFlowSchema adds or replaces a FlowSchema.
func (c *Controller) SetFlowSchema(fs *flowcontrolv1.FlowSchema) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.schemas == nil {
		c.schemas = map[string]*flowcontrolv1.FlowSchema{}
	}
	c.schemas[fs.Name], c.sorted = fs, nil
}

// DeleteFlowSchema removes one.
func (c *Controller) DeleteFlowSchema(_, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.schemas, name)
	c.sorted = nil
}

// SetPriorityLevel adds or replaces a priority level; the seats of every
// level are shared out again.
func (c *Controller) SetPriorityLevel(pl *flowcontrolv1.PriorityLevelConfiguration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.plcs == nil {
		c.plcs = map[string]*flowcontrolv1.PriorityLevelConfiguration{}
	}
	c.plcs[pl.Name] = pl
	c.reshare()
}

// DeletePriorityLevel removes one.
func (c *Controller) DeletePriorityLevel(_, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.plcs, name)
	c.reshare()
}

// reshare gives each limited level ceil(Seats * shares / all shares)
// seats, keeping the queues of levels that stay.
func (c *Controller) reshare() {
	total := 0
	for _, pl := range c.plcs {
		if l := pl.Spec.Limited; pl.Spec.Type == flowcontrolv1.PriorityLevelEnablementLimited && l != nil {
			total += int(ptr.Deref(l.NominalConcurrencyShares, 0))
		}
	}
	next := map[string]*level{}
	for name, pl := range c.plcs {
		l := pl.Spec.Limited
		if pl.Spec.Type != flowcontrolv1.PriorityLevelEnablementLimited || l == nil {
			continue
		}
		seats := 1
		if total > 0 {
			seats = max(1, int(math.Ceil(float64(c.Seats)*float64(ptr.Deref(l.NominalConcurrencyShares, 0))/float64(total))))
		}
		lv := c.levels[name]
		if lv == nil {
			lv = &level{name: name}
		}
		lv.configure(seats, l.LimitResponse)
		next[name] = lv
	}
	c.levels = next
}

// Classify finds the first FlowSchema (by precedence) that matches r and
// its priority level; a schema naming a missing level falls through to
// catch-all, as upstream.
func (c *Controller) Classify(r Request) (Decision, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sorted == nil {
		for _, fs := range c.schemas {
			c.sorted = append(c.sorted, fs)
		}
		sortSchemas(c.sorted)
	}
	for _, fs := range c.sorted {
		if !Matches(fs, r) {
			continue
		}
		pl := c.plcs[fs.Spec.PriorityLevelConfiguration.Name]
		if pl == nil {
			pl = c.plcs[CatchAll]
		}
		if pl == nil {
			continue
		}
		return Decision{Schema: fs, Level: pl, Exempt: pl.Spec.Type == flowcontrolv1.PriorityLevelEnablementExempt}, FlowKey(fs, r)
	}
	return Decision{Exempt: true}, ""
}

// Admit waits for width seats of d's level for flow (see Width), and
// returns the function that gives them back; ErrRejected when the level's
// queues are full (or it rejects rather than queues) or the wait ran out.
func (c *Controller) Admit(ctx context.Context, d Decision, flow string, width int) (func(), error) {
	if d.Exempt || d.Level == nil {
		return func() {}, nil
	}
	c.mu.Lock()
	lv := c.levels[d.Level.Name]
	c.mu.Unlock()
	if lv == nil {
		return func() {}, nil
	}
	wait := c.QueueWait
	if wait == 0 {
		wait = 15 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	return lv.admit(ctx, flow, width)
}

// Stats are a level's counts, for metrics: its seats, those in use, and
// the requests waiting for some.
type Stats struct {
	Seats, Executing, Waiting int
}

// LevelStats reports every limited level.
func (c *Controller) LevelStats() map[string]Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]Stats{}
	for name, lv := range c.levels {
		out[name] = lv.stats()
	}
	return out
}

// level is one limited priority level: its seats and queues.
type level struct {
	name string

	mu        sync.Mutex
	seats     int
	executing int
	reject    bool
	hand      int
	limit     int
	queues    [][]*waiter
	// inUse are the seats each queue's dispatched requests hold: the
	// next seats go to the waiting queue holding fewest (upstream's fair
	// queuing evens out what queues get in the same way).
	inUse []int
	next  int // round-robin position among the queues
}

type waiter struct {
	ready chan struct{}
	width int // seats it takes
	queue int // the queue it waited in
	gone  bool
}

func (lv *level) configure(seats int, resp flowcontrolv1.LimitResponse) {
	lv.mu.Lock()
	defer lv.mu.Unlock()
	lv.seats = seats
	lv.reject = resp.Type != flowcontrolv1.LimitResponseTypeQueue || resp.Queuing == nil
	if lv.reject {
		lv.hand, lv.limit = 0, 0
		lv.release()
		lv.queues, lv.inUse = nil, nil
		return
	}
	q := resp.Queuing
	if len(lv.queues) != int(q.Queues) {
		lv.release()
		lv.queues, lv.inUse = make([][]*waiter, q.Queues), make([]int, q.Queues)
	}
	lv.hand, lv.limit = int(q.HandSize), int(q.QueueLengthLimit)
	lv.dispatch()
}

// release lets every waiter through (a reconfiguration drops queues).
func (lv *level) release() {
	for _, q := range lv.queues {
		for _, w := range q {
			if !w.gone {
				lv.executing += w.width
				close(w.ready)
			}
		}
	}
}

func (lv *level) stats() Stats {
	lv.mu.Lock()
	defer lv.mu.Unlock()
	s := Stats{Seats: lv.seats, Executing: lv.executing}
	for _, q := range lv.queues {
		s.Waiting += len(q)
	}
	return s
}

func (lv *level) admit(ctx context.Context, flow string, width int) (func(), error) {
	lv.mu.Lock()
	// A request wider than the level runs alone on all of its seats.
	width = max(1, min(width, lv.seats))
	if lv.executing+width <= lv.seats && lv.waiting() == 0 {
		// Seats taken at once still count for the flow's queue.
		qi := -1
		if len(lv.queues) > 0 {
			qi = lv.pick(flow)
			lv.inUse[qi] += width
		}
		lv.executing += width
		lv.mu.Unlock()
		return func() { lv.done(width, qi) }, nil
	}
	if lv.reject {
		lv.mu.Unlock()
		return nil, ErrRejected
	}
	qi := lv.pick(flow)
	if len(lv.queues[qi]) >= lv.limit {
		lv.mu.Unlock()
		return nil, ErrRejected
	}
	w := &waiter{ready: make(chan struct{}), width: width, queue: qi}
	lv.queues[qi] = append(lv.queues[qi], w)
	lv.mu.Unlock()
	done := func() { lv.done(width, qi) }
	select {
	case <-w.ready:
		return done, nil
	case <-ctx.Done():
		lv.mu.Lock()
		defer lv.mu.Unlock()
		select {
		case <-w.ready:
			// Dispatched meanwhile: give the seats back.
			lv.give(width, qi)
			lv.dispatch()
		default:
			w.gone = true
			lv.queues[qi] = removeWaiter(lv.queues[qi], w)
		}
		return nil, ErrRejected
	}
}

func removeWaiter(q []*waiter, w *waiter) []*waiter {
	for i, x := range q {
		if x == w {
			return append(q[:i], q[i+1:]...)
		}
	}
	return q
}

func (lv *level) waiting() int {
	n := 0
	for _, q := range lv.queues {
		n += len(q)
	}
	return n
}

// pick is the shortest of the hand of queues flow is dealt: shuffle
// sharding, so one flow's flood fills few queues and others' hands
// likely hold a short one.
func (lv *level) pick(flow string) int {
	h := fnv.New64a()
	h.Write([]byte(flow))
	v := h.Sum64()
	n := uint64(len(lv.queues))
	best, bestLen := -1, math.MaxInt
	dealt := map[int]bool{}
	for i := 0; i < lv.hand && len(dealt) < len(lv.queues); i++ {
		q := int(v % n)
		v = v/n + uint64(i)*0x9e3779b97f4a7c15
		for dealt[q] {
			q = (q + 1) % len(lv.queues)
		}
		dealt[q] = true
		if l := len(lv.queues[q]); l < bestLen {
			best, bestLen = q, l
		}
	}
	return best
}

// done gives width seats, taken through queue qi (-1: none), back and
// lets the next waiters in.
func (lv *level) done(width, qi int) {
	lv.mu.Lock()
	defer lv.mu.Unlock()
	lv.give(width, qi)
	lv.dispatch()
}

// give returns width seats taken through queue qi (-1: none).
func (lv *level) give(width, qi int) {
	lv.executing -= width
	if qi >= 0 && qi < len(lv.inUse) {
		lv.inUse[qi] = max(0, lv.inUse[qi]-width)
	}
}

// dispatch hands free seats to waiters: next is the waiting queue whose
// dispatched requests hold the fewest seats (ties taken in turn), so a
// light flow is served before a heavy one's next request and no queue
// waits behind another's length. The chosen queue's first request waits
// until its seats are all free (a wide request is not passed over for
// narrower ones forever).
func (lv *level) dispatch() {
	for {
		qi := -1
		for i := range lv.queues {
			j := (lv.next + i) % len(lv.queues)
			if len(lv.queues[j]) > 0 && (qi < 0 || lv.inUse[j] < lv.inUse[qi]) {
				qi = j
			}
		}
		if qi < 0 {
			return
		}
		w := lv.queues[qi][0]
		if lv.executing+min(w.width, lv.seats) > lv.seats {
			return
		}
		lv.queues[qi] = lv.queues[qi][1:]
		lv.next = (qi + 1) % len(lv.queues)
		lv.executing += w.width
		lv.inUse[qi] += w.width
		close(w.ready)
	}
}
