// Package queue is the scheduling queue: an active heap in priority order,
// a back-off heap for pods that failed recently, and an unschedulable set
// whose pods move back only on cluster events that could help them.
package queue

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/utils/clock"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

// Config tunes the queue.
type Config struct {
	Less func(a, b *framework.QueuedPodInfo) bool
	// PreEnqueue returns the plugins' verdict for a pod of a profile
	// (nil = may be scheduled).
	PreEnqueue func(profile string, pod *corev1.Pod) *framework.Status
	// PluginEvents says, per plugin, which events may help a pod the
	// plugin rejected.
	PluginEvents   map[string][]framework.ClusterEvent
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// MaxUnschedulable is how long a pod may sit in the unschedulable set
	// before it is retried anyway (upstream's safety net).
	MaxUnschedulable time.Duration
	Clock            clock.Clock
}

// Queue is safe for concurrent use.
type Queue struct {
	cfg           Config
	mu            sync.Mutex
	cond          *sync.Cond
	active        *podHeap
	backoff       *podHeap
	unschedulable map[types.UID]*framework.QueuedPodInfo
	gated         map[types.UID]*framework.QueuedPodInfo
	// inFlight are popped pods being scheduled; events arriving meanwhile
	// are remembered so a pod that then fails is retried, not parked.
	inFlight map[types.UID]int64
	// cycle counts pops; moveCycle is the cycle of the last move request.
	cycle     int64
	moveCycle int64
	closed    bool
	nominated map[string][]*framework.PodInfo
	nominee   map[types.UID]string
	// nominees mirrors len(nominee) so that Filter, asking once per node,
	// need not take the lock when nothing is nominated (the usual case).
	nominees atomic.Int64
}

// New returns an empty queue.
func New(cfg Config) *Queue {
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	q := &Queue{
		cfg:           cfg,
		active:        newHeap(cfg.Less),
		unschedulable: map[types.UID]*framework.QueuedPodInfo{},
		gated:         map[types.UID]*framework.QueuedPodInfo{},
		inFlight:      map[types.UID]int64{},
		nominated:     map[string][]*framework.PodInfo{},
		nominee:       map[types.UID]string{},
	}
	q.backoff = newHeap(func(a, b *framework.QueuedPodInfo) bool { return q.backoffExpiry(a).Before(q.backoffExpiry(b)) })
	q.cond = sync.NewCond(&q.mu)
	return q
}

// Run moves pods whose back-off expired to the active heap, and retries
// pods parked too long, until ctx ends.
func (q *Queue) Run(ctx context.Context) {
	backoff := time.NewTicker(100 * time.Millisecond)
	defer backoff.Stop()
	stale := time.NewTicker(30 * time.Second)
	defer stale.Stop()
	for {
		select {
		case <-ctx.Done():
			q.Close()
			return
		case <-backoff.C:
			q.flushBackoff()
		case <-stale.C:
			q.flushStale()
		}
	}
}

// Close wakes Pop callers and makes Pop return nil.
func (q *Queue) Close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
}

func (q *Queue) newQueued(profile string, pod *corev1.Pod) *framework.QueuedPodInfo {
	now := q.cfg.Clock.Now()
	return &framework.QueuedPodInfo{PodInfo: framework.NewPodInfo(pod), Timestamp: now, InitialAttemptTimestamp: now, Profile: profile}
}

// Add queues a new pending pod.
func (q *Queue) Add(profile string, pod *corev1.Pod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.addLocked(q.newQueued(profile, pod))
	q.setNominatedLocked(pod)
}

// addLocked puts p in the active heap unless a PreEnqueue plugin gates it.
func (q *Queue) addLocked(p *framework.QueuedPodInfo) {
	if s := q.cfg.PreEnqueue(p.Profile, p.Pod); !s.IsSuccess() {
		p.Gated = true
		p.UnschedulablePlugins = sets.New(s.Plugin())
		q.gated[p.Pod.UID] = p
		return
	}
	p.Gated = false
	delete(q.gated, p.Pod.UID)
	q.active.AddOrUpdate(p)
	q.cond.Broadcast()
}

// Update replaces a pending pod. A pod that was parked as unschedulable
// is retried when its spec changed, since the change may make it fit.
func (q *Queue) Update(profile string, old, pod *corev1.Pod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	uid := pod.UID
	q.setNominatedLocked(pod)
	if p, ok := q.gated[uid]; ok {
		p.PodInfo = framework.NewPodInfo(pod)
		q.addLocked(p)
		return
	}
	if p, ok := q.active.Get(uid); ok {
		p.PodInfo = framework.NewPodInfo(pod)
		q.active.AddOrUpdate(p)
		return
	}
	if p, ok := q.backoff.Get(uid); ok {
		p.PodInfo = framework.NewPodInfo(pod)
		q.backoff.AddOrUpdate(p)
		return
	}
	if p, ok := q.unschedulable[uid]; ok {
		p.PodInfo = framework.NewPodInfo(pod)
		if old != nil && schedulingRelevantChange(old, pod) {
			delete(q.unschedulable, uid)
			q.requeueLocked(p)
		}
		return
	}
	if _, ok := q.inFlight[uid]; ok {
		return // the running attempt will requeue it
	}
	q.addLocked(q.newQueued(profile, pod))
}

// schedulingRelevantChange ignores status-only changes made by the
// scheduler itself (conditions, nominatedNodeName).
func schedulingRelevantChange(old, pod *corev1.Pod) bool {
	return !equality.Semantic.DeepEqual(old.Spec, pod.Spec) || !equality.Semantic.DeepEqual(old.Labels, pod.Labels)
}

// Delete removes a pod wherever it is.
func (q *Queue) Delete(pod *corev1.Pod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	uid := pod.UID
	q.active.Delete(uid)
	q.backoff.Delete(uid)
	delete(q.unschedulable, uid)
	delete(q.gated, uid)
	q.deleteNominatedLocked(uid)
}

// Pop blocks until a pod is active and returns it, or nil once closed.
func (q *Queue) Pop() *framework.QueuedPodInfo {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.active.Len() == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return nil
	}
	p := q.active.PopFirst()
	p.Attempts++
	q.cycle++
	q.inFlight[p.Pod.UID] = q.cycle
	return p
}

// Done ends the attempt for a popped pod.
func (q *Queue) Done(uid types.UID) {
	q.mu.Lock()
	delete(q.inFlight, uid)
	q.mu.Unlock()
}

// AddUnschedulable returns a pod whose attempt failed. It waits for a
// helpful event, unless one arrived during the attempt or the failure was
// an error, in which case it backs off and is retried.
func (q *Queue) AddUnschedulable(p *framework.QueuedPodInfo, isError bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	cycle, ok := q.inFlight[p.Pod.UID]
	delete(q.inFlight, p.Pod.UID)
	if !ok {
		// Deleted while in flight: Delete removed everything else.
		return
	}
	p.Timestamp = q.cfg.Clock.Now()
	if q.moveCycle >= cycle || isError {
		q.backoff.AddOrUpdate(p)
		return
	}
	q.unschedulable[p.Pod.UID] = p
}

// requeueLocked sends p to back-off if its back-off has not expired, else
// to the active heap.
func (q *Queue) requeueLocked(p *framework.QueuedPodInfo) {
	if q.backoffExpiry(p).After(q.cfg.Clock.Now()) {
		q.backoff.AddOrUpdate(p)
		return
	}
	q.addLocked(p)
}

// OnEvent retries the parked pods that a plugin rejected and registered
// this event for; pods rejected by no plugin in particular are retried on
// any event.
func (q *Queue) OnEvent(e framework.ClusterEvent) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.moveCycle = q.cycle
	for uid, p := range q.unschedulable {
		if q.helps(p, e) {
			delete(q.unschedulable, uid)
			q.requeueLocked(p)
		}
	}
}

func (q *Queue) helps(p *framework.QueuedPodInfo, e framework.ClusterEvent) bool {
	if len(p.UnschedulablePlugins) == 0 && len(p.PendingPlugins) == 0 {
		return true
	}
	for name := range p.UnschedulablePlugins {
		for _, r := range q.cfg.PluginEvents[name] {
			if r.Match(e) {
				return true
			}
		}
	}
	for name := range p.PendingPlugins {
		for _, r := range q.cfg.PluginEvents[name] {
			if r.Match(e) {
				return true
			}
		}
	}
	return false
}

// Activate moves the given pending pods to the active heap (used after
// preemption victims are gone and by plugins).
func (q *Queue) Activate(uids ...types.UID) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, uid := range uids {
		if p, ok := q.unschedulable[uid]; ok {
			delete(q.unschedulable, uid)
			q.addLocked(p)
		} else if p, ok := q.backoff.Get(uid); ok {
			q.backoff.Delete(uid)
			q.addLocked(p)
		}
	}
}

func (q *Queue) backoffDuration(p *framework.QueuedPodInfo) time.Duration {
	d := q.cfg.InitialBackoff
	for i := 1; i < p.Attempts; i++ {
		d *= 2
		if d >= q.cfg.MaxBackoff {
			return q.cfg.MaxBackoff
		}
	}
	return d
}

func (q *Queue) backoffExpiry(p *framework.QueuedPodInfo) time.Time {
	return p.Timestamp.Add(q.backoffDuration(p))
}

func (q *Queue) flushBackoff() {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.cfg.Clock.Now()
	for {
		p := q.backoff.Peek()
		if p == nil || q.backoffExpiry(p).After(now) {
			return
		}
		q.backoff.PopFirst()
		q.addLocked(p)
	}
}

func (q *Queue) flushStale() {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.cfg.Clock.Now()
	for uid, p := range q.unschedulable {
		if now.Sub(p.Timestamp) > q.cfg.MaxUnschedulable {
			delete(q.unschedulable, uid)
			q.requeueLocked(p)
		}
	}
}

// Counts reports the sizes of the active, back-off, unschedulable and
// gated sets.
func (q *Queue) Counts() (active, backoff, unschedulable, gated int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.active.Len(), q.backoff.Len(), len(q.unschedulable), len(q.gated)
}

// AddNominated records that pod is nominated to node (by preemption).
func (q *Queue) AddNominated(pi *framework.PodInfo, node string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.deleteNominatedLocked(pi.Pod.UID)
	if node == "" {
		return
	}
	q.nominee[pi.Pod.UID] = node
	q.nominated[node] = append(q.nominated[node], pi)
	q.nominees.Store(int64(len(q.nominee)))
}

// DeleteNominated forgets a nomination.
func (q *Queue) DeleteNominated(uid types.UID) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.deleteNominatedLocked(uid)
}

func (q *Queue) setNominatedLocked(pod *corev1.Pod) {
	node := pod.Status.NominatedNodeName
	if q.nominee[pod.UID] == node {
		return
	}
	q.deleteNominatedLocked(pod.UID)
	if node != "" {
		q.nominee[pod.UID] = node
		q.nominated[node] = append(q.nominated[node], framework.NewPodInfo(pod))
		q.nominees.Store(int64(len(q.nominee)))
	}
}

func (q *Queue) deleteNominatedLocked(uid types.UID) {
	node, ok := q.nominee[uid]
	if !ok {
		return
	}
	delete(q.nominee, uid)
	q.nominees.Store(int64(len(q.nominee)))
	list := q.nominated[node]
	for i, p := range list {
		if p.Pod.UID == uid {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(q.nominated, node)
	} else {
		q.nominated[node] = list
	}
}

// NominatedPodsForNode returns the pods nominated to node.
func (q *Queue) NominatedPodsForNode(node string) []*framework.PodInfo {
	if q.nominees.Load() == 0 {
		return nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]*framework.PodInfo(nil), q.nominated[node]...)
}
