package scheduler

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/util/workqueue"
)

// conditionWorkers bounds the PodScheduled=False writes in flight. They
// are bookkeeping, not placement: a storm of unschedulable pods must not
// turn into thousands of concurrent status patches competing with the
// requests of users and with bindings (upstream's scheduler gets the same
// effect from its client's 50 QPS limit).
const conditionWorkers = 4

// unschedulable is the condition a failed attempt wants a pod to show.
type unschedulable struct {
	pod       *corev1.Pod
	reason    string
	message   string
	nominated string
}

// conditionWriter writes PodScheduled=False conditions and nominations
// from a few workers. A pod that fails again before its write keeps only
// the latest wish; a pod bound, deleted or already showing the condition
// by the time a worker gets to it is not written at all.
type conditionWriter struct {
	client kubernetes.Interface
	pods   corelisters.PodLister
	log    *slog.Logger
	queue  workqueue.TypedInterface[types.UID]

	mu      sync.Mutex
	pending map[types.UID]unschedulable
}

func newConditionWriter(client kubernetes.Interface, pods corelisters.PodLister, log *slog.Logger) *conditionWriter {
	return &conditionWriter{
		client:  client,
		pods:    pods,
		log:     log,
		queue:   workqueue.NewTyped[types.UID](),
		pending: map[types.UID]unschedulable{},
	}
}

// enqueue records the latest wish for u.pod.
func (w *conditionWriter) enqueue(u unschedulable) {
	w.mu.Lock()
	w.pending[u.pod.UID] = u
	w.mu.Unlock()
	w.queue.Add(u.pod.UID)
}

// run writes until ctx ends.
func (w *conditionWriter) run(ctx context.Context) {
	var wg sync.WaitGroup
	for range conditionWorkers {
		wg.Go(func() {
			for w.next(ctx) {
			}
		})
	}
	<-ctx.Done()
	w.queue.ShutDown()
	wg.Wait()
}

func (w *conditionWriter) next(ctx context.Context) bool {
	uid, shutdown := w.queue.Get()
	if shutdown {
		return false
	}
	defer w.queue.Done(uid)
	w.mu.Lock()
	u, ok := w.pending[uid]
	delete(w.pending, uid)
	w.mu.Unlock()
	if !ok {
		return true
	}
	cur, err := w.pods.Pods(u.pod.Namespace).Get(u.pod.Name)
	if err != nil || cur.UID != uid || cur.Spec.NodeName != "" || cur.DeletionTimestamp != nil {
		return true
	}
	u.pod = cur
	w.write(ctx, u)
	return true
}

// conditionShown reports whether pod already carries what u asks for.
func conditionShown(u unschedulable) bool {
	if u.pod.Status.NominatedNodeName != u.nominated {
		return false
	}
	for _, c := range u.pod.Status.Conditions {
		if c.Type == corev1.PodScheduled {
			return c.Status == corev1.ConditionFalse && c.Reason == u.reason && c.Message == u.message
		}
	}
	return false
}

func (w *conditionWriter) write(ctx context.Context, u unschedulable) {
	if conditionShown(u) {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	pod := u.pod
	cond := corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: u.reason, Message: u.message, LastTransitionTime: metav1.Now(), ObservedGeneration: pod.Generation}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			// Still False: only the reason or message changed, not the status.
			cond.LastTransitionTime = c.LastTransitionTime
		}
	}
	status := map[string]any{"conditions": []corev1.PodCondition{cond}}
	if u.nominated != "" {
		status["nominatedNodeName"] = u.nominated
	}
	// The uid makes the patch a precondition: a pod recreated under the
	// same name is left alone.
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"uid": pod.UID}, "status": status})
	if err == nil {
		_, err = w.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	}
	if err != nil && !apierrors.IsNotFound(err) {
		w.log.Warn("update pod condition", "pod", pod.Namespace+"/"+pod.Name, "err", err)
	}
}
