package framework

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	policylisters "k8s.io/client-go/listers/policy/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/events"
)

// MaxNodeScore is the largest normalized score; MinNodeScore the smallest.
const (
	MaxNodeScore int64 = 100
	MinNodeScore int64 = 0
)

// Plugin is anything with a name; the extension-point interfaces below
// say what it does.
type Plugin interface{ Name() string }

// QueueSortPlugin orders the active queue.
type QueueSortPlugin interface {
	Plugin
	Less(a, b *QueuedPodInfo) bool
}

// PreEnqueuePlugin keeps a pod out of the active queue (e.g. gates).
type PreEnqueuePlugin interface {
	Plugin
	PreEnqueue(ctx context.Context, pod *corev1.Pod) *Status
}

// PreFilterResult narrows the nodes to filter; nil NodeNames means all.
type PreFilterResult struct {
	NodeNames sets.Set[string]
}

// PreFilterPlugin computes per-pod state once before filtering.
type PreFilterPlugin interface {
	Plugin
	PreFilter(ctx context.Context, state *CycleState, pod *PodInfo, nodes []*NodeInfo) (*PreFilterResult, *Status)
	// PreFilterExtensions updates the state when preemption simulates
	// adding or removing pods; nil if the state does not depend on them.
	PreFilterExtensions() PreFilterExtensions
}

// PreFilterExtensions keep PreFilter state true under simulated changes.
type PreFilterExtensions interface {
	AddPod(ctx context.Context, state *CycleState, pod *PodInfo, add *PodInfo, node *NodeInfo) *Status
	RemovePod(ctx context.Context, state *CycleState, pod *PodInfo, remove *PodInfo, node *NodeInfo) *Status
}

// FilterPlugin decides whether a node can run the pod.
type FilterPlugin interface {
	Plugin
	Filter(ctx context.Context, state *CycleState, pod *PodInfo, node *NodeInfo) *Status
}

// PostFilterResult nominates a node for the pod.
type PostFilterResult struct {
	NominatedNodeName string
}

// PostFilterPlugin runs when no node fits (preemption).
type PostFilterPlugin interface {
	Plugin
	PostFilter(ctx context.Context, state *CycleState, pod *PodInfo, statuses *NodeToStatus) (*PostFilterResult, *Status)
}

// PreScorePlugin computes per-pod scoring state once.
type PreScorePlugin interface {
	Plugin
	PreScore(ctx context.Context, state *CycleState, pod *PodInfo, nodes []*NodeInfo) *Status
}

// NodeScore is one node's score.
type NodeScore struct {
	Name  string
	Score int64
}

// ScorePlugin ranks feasible nodes.
type ScorePlugin interface {
	Plugin
	Score(ctx context.Context, state *CycleState, pod *PodInfo, node *NodeInfo) (int64, *Status)
	// ScoreExtensions returns the normalizer, or nil when scores are
	// already in [MinNodeScore, MaxNodeScore].
	ScoreExtensions() ScoreExtensions
}

// ScoreExtensions normalizes a plugin's raw scores.
type ScoreExtensions interface {
	NormalizeScore(ctx context.Context, state *CycleState, pod *PodInfo, scores []NodeScore) *Status
}

// ReservePlugin reserves resources for the chosen node; Unreserve undoes
// it when a later step fails.
type ReservePlugin interface {
	Plugin
	Reserve(ctx context.Context, state *CycleState, pod *corev1.Pod, nodeName string) *Status
	Unreserve(ctx context.Context, state *CycleState, pod *corev1.Pod, nodeName string)
}

// PermitPlugin approves, rejects or delays binding.
type PermitPlugin interface {
	Plugin
	Permit(ctx context.Context, state *CycleState, pod *corev1.Pod, nodeName string) (*Status, time.Duration)
}

// PreBindPlugin runs before binding (e.g. binds volumes).
type PreBindPlugin interface {
	Plugin
	PreBind(ctx context.Context, state *CycleState, pod *corev1.Pod, nodeName string) *Status
}

// BindPlugin binds; Skip passes to the next bind plugin.
type BindPlugin interface {
	Plugin
	Bind(ctx context.Context, state *CycleState, pod *corev1.Pod, nodeName string) *Status
}

// PostBindPlugin is told about a successful bind.
type PostBindPlugin interface {
	Plugin
	PostBind(ctx context.Context, state *CycleState, pod *corev1.Pod, nodeName string)
}

// EnqueueExtensions name the cluster events after which a pod this plugin
// rejected may fit; the queue moves rejected pods on those events only.
type EnqueueExtensions interface {
	EventsToRegister() []ClusterEvent
}

// EventResource is the kind of object an event is about.
type EventResource string

// Resources the scheduler watches.
const (
	PodResource          EventResource = "Pod"
	NodeResource         EventResource = "Node"
	PVCResource          EventResource = "PersistentVolumeClaim"
	PVResource           EventResource = "PersistentVolume"
	StorageClassResource EventResource = "StorageClass"
	NamespaceResource    EventResource = "Namespace"
	CSINodeResource      EventResource = "CSINode"
)

// ActionType is a bit set of what happened.
type ActionType uint32

// Actions. Pod actions are about pods assigned to nodes; the pending pod's
// own updates are handled by the queue directly.
const (
	Add ActionType = 1 << iota
	Delete
	UpdateNodeAllocatable
	UpdateNodeLabel
	UpdateNodeTaint
	UpdateNodeCondition
	UpdateNodeAnnotation
	UpdatePodLabel
	UpdatePodScaleDown
	UpdateOther

	Update = UpdateNodeAllocatable | UpdateNodeLabel | UpdateNodeTaint | UpdateNodeCondition | UpdateNodeAnnotation | UpdatePodLabel | UpdatePodScaleDown | UpdateOther
	All    = Add | Delete | Update
)

// ClusterEvent is a change that may make pending pods schedulable.
type ClusterEvent struct {
	Resource EventResource
	Action   ActionType
	// Label names the event in metrics and logs.
	Label string
}

// Match reports whether a registered event covers e.
func (r ClusterEvent) Match(e ClusterEvent) bool {
	return r.Resource == e.Resource && r.Action&e.Action != 0
}

// QueuedPodInfo is a pod in the scheduling queue.
type QueuedPodInfo struct {
	*PodInfo
	// Timestamp is when the pod was last added to the queue.
	Timestamp time.Time
	// InitialAttemptTimestamp is the first attempt's time.
	InitialAttemptTimestamp time.Time
	Attempts                int
	// UnschedulablePlugins rejected the pod in its last attempt.
	UnschedulablePlugins sets.Set[string]
	// PendingPlugins returned Pending in its last attempt.
	PendingPlugins sets.Set[string]
	// Gated is set while a PreEnqueue plugin keeps the pod out.
	Gated bool
	// Profile is the schedulerName the pod belongs to.
	Profile string
}

// NodeToStatus records why each node was rejected.
type NodeToStatus struct {
	m map[string]*Status
	// absent is the status of nodes not in m (e.g. all nodes when a
	// PreFilter rejected the pod).
	absent *Status
}

// NewNodeToStatus returns an empty map whose absent nodes have status absent.
func NewNodeToStatus(absent *Status) *NodeToStatus {
	return &NodeToStatus{m: map[string]*Status{}, absent: absent}
}

// Set records a node's status.
func (n *NodeToStatus) Set(node string, s *Status) { n.m[node] = s }

// Get returns a node's status.
func (n *NodeToStatus) Get(node string) *Status {
	if s, ok := n.m[node]; ok {
		return s
	}
	return n.absent
}

// Len counts recorded nodes.
func (n *NodeToStatus) Len() int { return len(n.m) }

// Each calls f for each recorded node.
func (n *NodeToStatus) Each(f func(node string, s *Status)) {
	for k, v := range n.m {
		f(k, v)
	}
}

// Absent is the status of unrecorded nodes.
func (n *NodeToStatus) Absent() *Status { return n.absent }

// Listers are the informer-backed views plugins read besides the snapshot.
type Listers struct {
	Namespaces     corelisters.NamespaceLister
	PVCs           corelisters.PersistentVolumeClaimLister
	PVs            corelisters.PersistentVolumeLister
	StorageClasses storagelisters.StorageClassLister
	PDBs           policylisters.PodDisruptionBudgetLister
	// Services and workload controllers give pods without spread
	// constraints their default spreading selector.
	Services               corelisters.ServiceLister
	ReplicationControllers corelisters.ReplicationControllerLister
	ReplicaSets            appslisters.ReplicaSetLister
	StatefulSets           appslisters.StatefulSetLister
}

// Handle is what plugins get from the scheduler.
type Handle interface {
	// Snapshot is the cluster as this cycle sees it.
	Snapshot() *Snapshot
	Listers() *Listers
	Client() kubernetes.Interface
	Recorder() events.EventRecorder
	// NamespaceLabels returns a namespace's labels (nil if unknown).
	NamespaceLabels(ns string) labels.Set
	// Nominator knows pods nominated to nodes by preemption.
	Nominator() Nominator
	// Parallel runs f(i) for i in [0,n) on the scheduler's workers.
	Parallel(ctx context.Context, n int, f func(i int))
	// Runner runs the profile's plugins (used by preemption).
	Runner() Runner
	// WaitingPod returns a pod held by a Permit plugin, or nil.
	WaitingPod(uid string) WaitingPod
}

// Nominator tracks pods nominated to nodes.
type Nominator interface {
	NominatedPodsForNode(node string) []*PodInfo
}

// Runner exposes the framework's plugin runs to PostFilter plugins.
type Runner interface {
	RunPreFilter(ctx context.Context, state *CycleState, pod *PodInfo) (*PreFilterResult, *Status, sets.Set[string])
	RunFilterWithNominatedPods(ctx context.Context, state *CycleState, pod *PodInfo, node *NodeInfo) *Status
	RunPreFilterExtensionAddPod(ctx context.Context, state *CycleState, pod, add *PodInfo, node *NodeInfo) *Status
	RunPreFilterExtensionRemovePod(ctx context.Context, state *CycleState, pod, remove *PodInfo, node *NodeInfo) *Status
}

// WaitingPod is a pod a Permit plugin holds.
type WaitingPod interface {
	Allow(plugin string)
	Reject(plugin, msg string)
}

// StateKey names a plugin's entry in the cycle state.
type StateKey string

// StateData is cloneable per-cycle state.
type StateData interface {
	Clone() StateData
}

// CycleState carries data between a cycle's extension points. Plugins
// write it in PreFilter/PreScore and read it from parallel Filter/Score
// calls, so it is guarded.
type CycleState struct {
	mu   sync.RWMutex
	data map[StateKey]StateData
	// SkipFilter and SkipScore name plugins whose PreFilter/PreScore
	// returned Skip.
	SkipFilter sets.Set[string]
	SkipScore  sets.Set[string]
}

// NewCycleState returns empty state.
func NewCycleState() *CycleState {
	return &CycleState{data: map[StateKey]StateData{}}
}

// Read returns a value.
func (c *CycleState) Read(k StateKey) (StateData, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	v, ok := c.data[k]
	return v, ok
}

// Write stores a value.
func (c *CycleState) Write(k StateKey, v StateData) {
	c.mu.Lock()
	c.data[k] = v
	c.mu.Unlock()
}

// Clone deep-copies the state for a simulation.
func (c *CycleState) Clone() *CycleState {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := &CycleState{data: make(map[StateKey]StateData, len(c.data)), SkipFilter: c.SkipFilter.Clone(), SkipScore: c.SkipScore.Clone()}
	for k, v := range c.data {
		out.data[k] = v.Clone()
	}
	return out
}
