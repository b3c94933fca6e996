// Package warm runs work on long-lived goroutines whose stacks have
// already grown.
//
// A new goroutine (net/http starts one per request) begins with a small
// stack, and deep call chains (the request chain, protobuf sizing of a
// pod, structured-merge-diff walks) grow it by copying, several times per
// request: in CPU profiles of pod creates, stack copying was about 5 % of
// the server. A pool goroutine keeps the stack it grew for the next job.
package warm

// Pool is a fixed set of goroutines that run jobs handed to them.
type Pool struct{ jobs chan func() }

// New starts a pool of workers goroutines. They live as long as the
// process: a pool is made once per server component.
func New(workers int) *Pool {
	p := &Pool{jobs: make(chan func())}
	for range workers {
		go func() {
			for job := range p.jobs {
				job()
			}
		}()
	}
	return p
}

// Run calls f on a pool goroutine, waiting for one to be free, and returns
// when f does. For short CPU-bound work: a pool as large as GOMAXPROCS
// never makes it wait for long.
func (p *Pool) Run(f func()) {
	done := make(chan any, 1)
	p.jobs <- wrap(f, done)
	if r := <-done; r != nil {
		panic(r)
	}
}

// TryRun calls f on an idle pool goroutine and waits for it, or calls f on
// the caller's goroutine when every pool goroutine is busy. For work that
// may block (a request waiting on etcd): it never queues behind another.
func (p *Pool) TryRun(f func()) {
	done := make(chan any, 1)
	select {
	case p.jobs <- wrap(f, done):
	default:
		f()
		return
	}
	if r := <-done; r != nil {
		panic(r)
	}
}

// wrap sends f's panic, or nil, to done: a panic is raised again on the
// caller's goroutine, where its recovery (a request's 500, net/http's
// ErrAbortHandler) handles it instead of the pool goroutine crashing the
// process.
func wrap(f func(), done chan<- any) func() {
	return func() {
		defer func() { done <- recover() }()
		f()
	}
}
