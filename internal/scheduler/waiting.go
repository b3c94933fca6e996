package scheduler

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

// waitingPod is a pod a Permit plugin holds until every waiting plugin
// allows it, one rejects it, or the timeout passes.
type waitingPod struct {
	mu      sync.Mutex
	pending map[string]bool
	done    chan *framework.Status
	timer   *time.Timer
}

func (w *waitingPod) finish(s *framework.Status) {
	select {
	case w.done <- s:
	default:
	}
}

// Allow implements framework.WaitingPod.
func (w *waitingPod) Allow(plugin string) {
	w.mu.Lock()
	delete(w.pending, plugin)
	left := len(w.pending)
	w.mu.Unlock()
	if left == 0 {
		w.finish(nil)
	}
}

// Reject implements framework.WaitingPod.
func (w *waitingPod) Reject(plugin, msg string) {
	w.finish(framework.NewStatus(framework.Unschedulable, msg).WithPlugin(plugin))
}

func (w *waitingPod) wait(ctx context.Context) *framework.Status {
	defer w.timer.Stop()
	select {
	case s := <-w.done:
		return s
	case <-ctx.Done():
		return framework.AsStatus(ctx.Err())
	}
}

type waitingPods struct {
	mu   sync.Mutex
	pods map[types.UID]*waitingPod
}

func newWaitingPods() *waitingPods { return &waitingPods{pods: map[types.UID]*waitingPod{}} }

func (w *waitingPods) add(uid types.UID, plugins []string, timeout time.Duration) *waitingPod {
	wp := &waitingPod{pending: map[string]bool{}, done: make(chan *framework.Status, 1)}
	for _, p := range plugins {
		wp.pending[p] = true
	}
	wp.timer = time.AfterFunc(timeout, func() {
		wp.finish(framework.NewStatus(framework.Unschedulable, "rejected due to timeout after waiting "+timeout.String()+" at plugin(s) permit"))
	})
	w.mu.Lock()
	w.pods[uid] = wp
	w.mu.Unlock()
	return wp
}

func (w *waitingPods) get(uid string) *waitingPod {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pods[types.UID(uid)]
}

func (w *waitingPods) remove(uid types.UID) {
	w.mu.Lock()
	delete(w.pods, uid)
	w.mu.Unlock()
}
