// Package work is the kit every level-triggered loop is built from, in the
// controller manager and on the node alike: the rate-limited work queue and
// its workers, informer event helpers, expectations of a controller's own
// writes, coalescing signals, and claiming of pods by their controller.
package work

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
)

// NewQueue is the one work-queue shape every controller uses: per-item
// exponential back-off from 5 ms to 1000 s combined with an overall
// 10 qps / 100 burst bucket, as upstream's default controller rate limiter.
func NewQueue[T comparable](name string) workqueue.TypedRateLimitingInterface[T] {
	return workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[T](), workqueue.TypedRateLimitingQueueConfig[T]{Name: name})
}

// Work drains queue with workers goroutines until ctx ends, calling sync for
// each key: an error re-queues the key with back-off; success forgets it.
func Work[T comparable](ctx context.Context, log *slog.Logger, queue workqueue.TypedRateLimitingInterface[T], workers int, sync func(context.Context, T) error) {
	defer queue.ShutDown()
	for range workers {
		go func() {
			defer runtime.HandleCrashWithContext(ctx)
			for processNext(ctx, log, queue, sync) {
			}
		}()
	}
	<-ctx.Done()
}

func processNext[T comparable](ctx context.Context, log *slog.Logger, queue workqueue.TypedRateLimitingInterface[T], sync func(context.Context, T) error) bool {
	key, quit := queue.Get()
	if quit {
		return false
	}
	defer queue.Done(key)
	err := sync(ctx, key)
	var after RetryAfter
	if errors.As(err, &after) {
		queue.Forget(key)
		queue.AddAfter(key, time.Duration(after))
		return true
	}
	if err != nil {
		if ctx.Err() == nil {
			log.Debug("sync failed; retrying", "key", key, "err", err, "retries", queue.NumRequeues(key))
		}
		queue.AddRateLimited(key)
		return true
	}
	queue.Forget(key)
	return true
}

// Serve waits for the informers a controller reads to sync, then drains
// its queue with workers goroutines until ctx ends.
func Serve[T comparable](ctx context.Context, log *slog.Logger, queue workqueue.TypedRateLimitingInterface[T], workers int, sync func(context.Context, T) error, synced ...cache.InformerSynced) {
	if !WaitForSync(ctx, synced...) {
		return
	}
	Work(ctx, log, queue, workers, sync)
}

// Enqueue returns an event handler function that queues an object's
// namespace/name key.
func Enqueue(queue workqueue.TypedInterface[string]) func(any) {
	return func(obj any) {
		if key, ok := KeyOf(obj); ok {
			queue.Add(key)
		}
	}
}

// OnChange calls f with the object of every add, update and delete.
func OnChange(f func(any)) cache.ResourceEventHandlerFuncs {
	return cache.ResourceEventHandlerFuncs{AddFunc: f, UpdateFunc: func(_, obj any) { f(obj) }, DeleteFunc: f}
}

// OwnerKey is the namespace/name key of the controller of kind that owns
// obj (a tombstone is unwrapped), if there is one.
func OwnerKey(obj any, kind string) (string, bool) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	m, ok := obj.(metav1.Object)
	if !ok {
		return "", false
	}
	ref := metav1.GetControllerOfNoCopy(m)
	if ref == nil || ref.Kind != kind {
		return "", false
	}
	return m.GetNamespace() + "/" + ref.Name, true
}

// RetryAfter is returned by a sync that is waiting on something outside its
// control (content still being deleted, a deadline ahead): the key comes back
// after the duration, without error back-off.
type RetryAfter time.Duration

func (r RetryAfter) Error() string { return fmt.Sprintf("retry after %s", time.Duration(r)) }

// WaitForSync waits for informers to sync, or for ctx to end.
func WaitForSync(ctx context.Context, synced ...cache.InformerSynced) bool {
	return cache.WaitForCacheSync(ctx.Done(), synced...)
}

// KeyOf is the namespace/name key of an informer object, tolerating the
// tombstones informers deliver for deletes they missed.
func KeyOf(obj any) (string, bool) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	return key, err == nil
}

// Every calls f every period until ctx ends (a resync for controllers whose
// state also depends on time).
func Every(ctx context.Context, clk clock.WithTicker, period time.Duration, f func()) {
	t := clk.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			f()
		}
	}
}
