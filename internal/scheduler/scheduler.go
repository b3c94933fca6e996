// Package scheduler runs skiff's scheduler: informers feed the cache and
// the queue; one loop pops a pod, runs its profile's plugins over the
// snapshot, assumes the pod onto the chosen node and binds it
// asynchronously so a slow bind never stalls the next cycle.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"

	schedcache "github.com/skiff-sh/skiff/internal/scheduler/cache"
	"github.com/skiff-sh/skiff/internal/scheduler/config"
	"github.com/skiff-sh/skiff/internal/scheduler/framework"
	"github.com/skiff-sh/skiff/internal/scheduler/queue"
)

// Scheduler is one leader term's scheduler.
type Scheduler struct {
	client   kubernetes.Interface
	cfg      *config.Config
	cache    *schedcache.Cache
	queue    *queue.Queue
	algo     *algorithm
	profiles map[string]*framework.Framework
	handles  map[string]*handle
	listers  framework.Listers
	pods     corelisters.PodLister
	nsLabels corelisters.NamespaceLister
	events   events.EventBroadcaster
	log      *slog.Logger
	metrics  *Metrics
	waiting  *waitingPods
	// conditions writes PodScheduled=False for failed attempts.
	conditions *conditionWriter
}

// New builds a scheduler over an informer factory; the caller starts the
// factory and then calls Run. Events are written with eventClient.
func New(client, eventClient kubernetes.Interface, factory informers.SharedInformerFactory, cfg *config.Config, metrics *Metrics, log *slog.Logger) (*Scheduler, error) {
	s := &Scheduler{
		client:   client,
		cfg:      cfg,
		cache:    schedcache.New(),
		algo:     &algorithm{snapshot: framework.NewEmptySnapshot(), percentage: cfg.Percentage},
		profiles: map[string]*framework.Framework{},
		handles:  map[string]*handle{},
		events:   events.NewBroadcaster(&events.EventSinkImpl{Interface: eventClient.EventsV1()}),
		log:      log,
		metrics:  metrics,
		waiting:  newWaitingPods(),
	}
	s.listers = framework.Listers{
		Namespaces:             factory.Core().V1().Namespaces().Lister(),
		PVCs:                   factory.Core().V1().PersistentVolumeClaims().Lister(),
		PVs:                    factory.Core().V1().PersistentVolumes().Lister(),
		StorageClasses:         factory.Storage().V1().StorageClasses().Lister(),
		PDBs:                   factory.Policy().V1().PodDisruptionBudgets().Lister(),
		Services:               factory.Core().V1().Services().Lister(),
		ReplicationControllers: factory.Core().V1().ReplicationControllers().Lister(),
		ReplicaSets:            factory.Apps().V1().ReplicaSets().Lister(),
		StatefulSets:           factory.Apps().V1().StatefulSets().Lister(),
	}
	s.nsLabels = s.listers.Namespaces
	pluginEvents := map[string][]framework.ClusterEvent{}
	var less func(a, b *framework.QueuedPodInfo) bool
	for i := range cfg.Profiles {
		p := &cfg.Profiles[i]
		h := &handle{s: s, recorder: s.events.NewRecorder(scheme.Scheme, *p.SchedulerName)}
		fwk, err := config.Build(p, h)
		if err != nil {
			return nil, fmt.Errorf("profiles[%d]: %w", i, err)
		}
		h.fwk = fwk
		if less == nil {
			less = fwk.QueueSort.Less
		} else if fwk.QueueSort.Name() != s.profiles[*cfg.Profiles[0].SchedulerName].QueueSort.Name() {
			return nil, fmt.Errorf("profiles[%d].plugins.queueSort: Invalid value: queue sort plugin must be the same for all profiles", i)
		}
		s.profiles[fwk.ProfileName] = fwk
		s.handles[fwk.ProfileName] = h
		for name, pl := range fwk.Plugins {
			if ext, ok := pl.(framework.EnqueueExtensions); ok {
				pluginEvents[name] = ext.EventsToRegister()
			}
		}
	}
	s.queue = queue.New(queue.Config{
		Less: less,
		PreEnqueue: func(profile string, pod *corev1.Pod) *framework.Status {
			return s.profiles[profile].RunPreEnqueue(context.Background(), pod)
		},
		PluginEvents:     pluginEvents,
		InitialBackoff:   cfg.InitialBackoff,
		MaxBackoff:       cfg.MaxBackoff,
		MaxUnschedulable: 5 * time.Minute,
	})
	podInformer := factory.InformerFor(&corev1.Pod{}, newPodInformer)
	s.pods = corelisters.NewPodLister(podInformer.GetIndexer())
	s.conditions = newConditionWriter(client, s.pods, log)
	if err := s.addHandlers(factory, podInformer); err != nil {
		return nil, err
	}
	return s, nil
}

// Run schedules until ctx ends; informers must be started.
func (s *Scheduler) Run(ctx context.Context, synced ...cache.InformerSynced) {
	s.events.StartRecordingToSink(ctx.Done())
	defer s.events.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return
	}
	go s.queue.Run(ctx)
	go s.conditions.run(ctx)
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.metrics.refresh(s.queue)
			}
		}
	}()
	for ctx.Err() == nil {
		s.scheduleOne(ctx)
	}
}

// responsible reports whether a pod belongs to one of our profiles.
func (s *Scheduler) responsible(pod *corev1.Pod) (string, bool) {
	name := pod.Spec.SchedulerName
	if name == "" {
		name = config.DefaultSchedulerName
	}
	_, ok := s.profiles[name]
	return name, ok
}

// scheduleOne runs one scheduling cycle.
func (s *Scheduler) scheduleOne(ctx context.Context) {
	qp := s.queue.Pop()
	if qp == nil {
		return
	}
	pod := qp.Pod
	fwk := s.profiles[qp.Profile]
	if pod.DeletionTimestamp != nil || s.cache.IsAssumed(pod.UID) {
		s.queue.Done(pod.UID)
		return
	}
	start := time.Now()
	s.cache.UpdateSnapshot(s.algo.snapshot)
	state := framework.NewCycleState()
	res, err := s.algo.schedule(ctx, fwk, state, qp.PodInfo)
	if err != nil {
		s.failed(ctx, fwk, state, qp, err, start)
		return
	}
	assumed := pod.DeepCopy()
	assumed.Spec.NodeName = res.node
	pi := *qp.PodInfo
	pi.Pod = assumed
	if st := fwk.RunReserve(ctx, state, assumed, res.node); !st.IsSuccess() {
		fwk.RunUnreserve(ctx, state, assumed, res.node)
		s.failed(ctx, fwk, state, qp, statusError(st), start)
		return
	}
	if err := s.cache.AssumePod(&pi); err != nil {
		fwk.RunUnreserve(ctx, state, assumed, res.node)
		s.failed(ctx, fwk, state, qp, err, start)
		return
	}
	permit, timeout, waitFor := fwk.RunPermit(ctx, state, assumed, res.node)
	if !permit.IsSuccess() && permit.Code() != framework.Wait {
		s.cache.ForgetPod(assumed)
		fwk.RunUnreserve(ctx, state, assumed, res.node)
		s.failed(ctx, fwk, state, qp, statusError(permit), start)
		return
	}
	s.metrics.attempt(fwk.ProfileName, "scheduled", time.Since(start))
	var wp *waitingPod
	if permit.Code() == framework.Wait {
		wp = s.waiting.add(assumed.UID, waitFor, timeout)
	}
	go s.bind(ctx, fwk, state, qp, assumed, res.node, wp)
}

// statusError turns a rejection into a FitError-like error that keeps the
// rejecting plugin.
func statusError(st *framework.Status) error {
	if st.IsRejected() {
		return &rejection{st}
	}
	return st.AsError()
}

type rejection struct{ s *framework.Status }

func (r *rejection) Error() string { return r.s.Message() }

// bind is the binding cycle: wait for Permit, PreBind, Bind, PostBind.
func (s *Scheduler) bind(ctx context.Context, fwk *framework.Framework, state *framework.CycleState, qp *framework.QueuedPodInfo, assumed *corev1.Pod, node string, wp *waitingPod) {
	fail := func(err error) {
		s.cache.ForgetPod(assumed)
		fwk.RunUnreserve(ctx, state, assumed, node)
		s.failed(ctx, fwk, state, qp, err, time.Time{})
	}
	if wp != nil {
		if st := wp.wait(ctx); !st.IsSuccess() {
			s.waiting.remove(assumed.UID)
			fail(statusError(st))
			return
		}
		s.waiting.remove(assumed.UID)
	}
	if st := fwk.RunPreBind(ctx, state, assumed, node); !st.IsSuccess() {
		fail(statusError(st))
		return
	}
	if st := fwk.RunBind(ctx, state, assumed, node); !st.IsSuccess() {
		fail(st.AsError())
		return
	}
	s.queue.Done(assumed.UID)
	s.queue.DeleteNominated(assumed.UID)
	fwk.RunPostBind(ctx, state, assumed, node)
	s.metrics.scheduled(qp)
	s.handles[fwk.ProfileName].recorder.Eventf(assumed, nil, corev1.EventTypeNormal, "Scheduled", "Binding", "Successfully assigned %s/%s to %s", assumed.Namespace, assumed.Name, node)
}

// failed records a failed attempt: PostFilter (preemption) for pods that
// fit nowhere, the pod back in the queue, its PodScheduled condition and
// a FailedScheduling event.
func (s *Scheduler) failed(ctx context.Context, fwk *framework.Framework, state *framework.CycleState, qp *framework.QueuedPodInfo, err error, start time.Time) {
	pod := qp.Pod
	reason := corev1.PodReasonUnschedulable
	isError := false
	nominated := ""
	var fitErr *framework.FitError
	var rej *rejection
	switch {
	case errors.As(err, &fitErr):
		qp.UnschedulablePlugins = fitErr.Diagnosis.UnschedulablePlugins
		if fwk.HasPostFilter() {
			s.metrics.preemptionAttempts.Inc()
			res, st := fwk.RunPostFilter(ctx, state, qp.PodInfo, fitErr.Diagnosis.NodeToStatus)
			if res != nil && res.NominatedNodeName != "" {
				nominated = res.NominatedNodeName
				fitErr.Diagnosis.PostFilterMsg = fmt.Sprintf("preemption: found a potential placement for pod on node %s.", nominated)
			} else if st != nil {
				fitErr.Diagnosis.PostFilterMsg = st.Message()
			}
		}
	case errors.As(err, &rej):
		qp.UnschedulablePlugins = sets.New(rej.s.Plugin())
	case errors.Is(err, ErrNoNodes):
		qp.UnschedulablePlugins = sets.New[string]()
	default:
		reason = "SchedulerError"
		isError = true
	}
	if !start.IsZero() {
		result := "unschedulable"
		if isError {
			result = "error"
		}
		s.metrics.attempt(fwk.ProfileName, result, time.Since(start))
	}
	// A pod deleted or bound meanwhile is not requeued.
	cur, getErr := s.pods.Pods(pod.Namespace).Get(pod.Name)
	if getErr != nil || cur.UID != pod.UID || cur.Spec.NodeName != "" {
		s.queue.Done(pod.UID)
		return
	}
	if cur != pod {
		// Only a pod the informer has replaced needs its info computed again.
		qp.PodInfo = framework.NewPodInfo(cur)
	}
	if nominated != "" {
		s.queue.AddNominated(qp.PodInfo, nominated)
	}
	s.queue.AddUnschedulable(qp, isError)
	msg := err.Error()
	s.handles[fwk.ProfileName].recorder.Eventf(cur, nil, corev1.EventTypeWarning, "FailedScheduling", "Scheduling", "%s", msg)
	s.conditions.enqueue(unschedulable{pod: cur, reason: reason, message: msg, nominated: nominated})
}

// handle is what a profile's plugins see.
type handle struct {
	s        *Scheduler
	fwk      *framework.Framework
	recorder events.EventRecorder
}

var _ framework.Handle = (*handle)(nil)

func (h *handle) Snapshot() *framework.Snapshot  { return h.s.algo.snapshot }
func (h *handle) Listers() *framework.Listers    { return &h.s.listers }
func (h *handle) Client() kubernetes.Interface   { return h.s.client }
func (h *handle) Recorder() events.EventRecorder { return h.recorder }
func (h *handle) Nominator() framework.Nominator { return h.s.queue }
func (h *handle) Runner() framework.Runner       { return h.fwk }
func (h *handle) WaitingPod(uid string) framework.WaitingPod {
	if wp := h.s.waiting.get(uid); wp != nil {
		return wp
	}
	return nil
}

// NamespaceLabels implements Handle.
func (h *handle) NamespaceLabels(ns string) labels.Set {
	n, err := h.s.nsLabels.Get(ns)
	if err != nil {
		return nil
	}
	return n.Labels
}

// Parallel implements Handle with upstream's chunking.
func (h *handle) Parallel(ctx context.Context, n int, f func(i int)) {
	if n <= 0 {
		return
	}
	if n < 32 {
		for i := 0; i < n && ctx.Err() == nil; i++ {
			f(i)
		}
		return
	}
	workers := h.s.cfg.Parallelism
	chunk := chunkSize(n, workers)
	workqueue.ParallelizeUntil(ctx, workers, n, f, workqueue.WithChunkSize(chunk))
}

// chunkSize is upstream's: about √n, but at most n/workers+1.
func chunkSize(n, workers int) int {
	s := 1
	for s*s < n {
		s++
	}
	if r := n/workers + 1; s > r {
		s = r
	}
	return max(s, 1)
}
