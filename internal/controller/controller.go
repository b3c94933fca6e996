// Package controller runs skiff's controllers: level-triggered loops over
// shared informers, each draining a rate-limited work queue, started once
// this server holds the controller-manager Lease.
package controller

import (
	"context"
	"errors"
	"fmt"
	"github.com/skiff-sh/skiff/internal/pki"
	"log/slog"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
)

// Context is what every controller is built from: clients, the process's
// one informer factory (and its metadata-only twin), events, time, logs.
type Context struct {
	Client            kubernetes.Interface
	Metadata          metadata.Interface
	Informers         informers.SharedInformerFactory
	MetadataInformers metadatainformer.SharedInformerFactory
	Events            record.EventBroadcaster
	Clock             clock.WithTicker
	Log               *slog.Logger
	// RootCA is the cluster CA certificate (PEM) published in every
	// namespace as the kube-root-ca.crt ConfigMap.
	RootCA []byte
	// CA signs certificates (nil when the server has no CA key).
	CA       *pki.CA
	Settings Settings
}

// Settings are the controllers' tunables (server flags).
type Settings struct {
	// JobBackoff is the first delay before a Job replaces a failed pod.
	JobBackoff time.Duration
	// TerminatedPodThreshold is how many finished pods are kept.
	TerminatedPodThreshold int
	// NodeGracePeriod is how long a node may be silent before it is
	// marked Unknown and tainted unreachable.
	NodeGracePeriod time.Duration
	// NodeEvictionRate bounds how many nodes per second get NoExecute taints.
	NodeEvictionRate float64
	// ClusterCIDR is the pod range the node IPAM controller splits into
	// per-node subnets of NodeCIDRMaskSize bits.
	ClusterCIDR      string
	NodeCIDRMaskSize int
}

// Recorder returns an event recorder that reports as component.
func (c *Context) Recorder(component string) record.EventRecorder {
	return c.Events.NewRecorder(eventScheme(), corev1.EventSource{Component: component})
}

// Controller is one reconcile loop. Run blocks until ctx ends; it starts its
// workers only after the informers it reads from have synced.
type Controller interface {
	Run(ctx context.Context, workers int)
}

// Factory builds a controller from the shared context.
type Factory func(*Context) (Controller, error)

// Registration names a controller and says how many workers it gets.
type Registration struct {
	Name    string
	New     Factory
	Workers int
}

// Select picks the registrations a --controllers list enables, with
// upstream's syntax: "*" is every controller, "name" enables one, "-name"
// disables one. An empty list enables none.
func Select(all []Registration, spec []string) ([]Registration, error) {
	known := map[string]bool{}
	for _, r := range all {
		known[r.Name] = true
	}
	star := false
	on, off := map[string]bool{}, map[string]bool{}
	for _, s := range spec {
		switch {
		case s == "*":
			star = true
		case len(s) > 1 && s[0] == '-':
			if !known[s[1:]] {
				return nil, fmt.Errorf("--controllers: unknown controller %q", s[1:])
			}
			off[s[1:]] = true
		case s != "":
			if !known[s] {
				return nil, fmt.Errorf("--controllers: unknown controller %q", s)
			}
			on[s] = true
		}
	}
	var out []Registration
	for _, r := range all {
		if (star || on[r.Name]) && !off[r.Name] {
			out = append(out, r)
		}
	}
	return out, nil
}

// Names lists registration names, for flag help.
func Names(all []Registration) []string {
	var out []string
	for _, r := range all {
		out = append(out, r.Name)
	}
	return slices.Sorted(slices.Values(out))
}

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
