// Package kubelet is skiff's node agent: it registers the Node, keeps its
// Lease and status current, and runs the pods bound to it through a CRI
// runtime (containerd), reporting their status back to the API.
package kubelet

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"

	"github.com/skiff-sh/skiff/internal/kubelet/nodestatus"
	"github.com/skiff-sh/skiff/internal/kubelet/plan"
	"github.com/skiff-sh/skiff/internal/runtime"
)

// Config is the node agent's configuration.
type Config struct {
	NodeName string
	Hostname string
	NodeIP   net.IP
	// RootDir holds pod directories, volumes and container logs.
	RootDir string
	// CNIConfDir is where the pod network configuration is written.
	CNIConfDir string
	// PodCIDR, when set, is registered as the Node's spec.podCIDR; else
	// the kubelet waits for the control plane to assign one.
	PodCIDR  string
	Labels   map[string]string
	Taints   []v1.Taint
	Reserved v1.ResourceList
	MaxPods  int
	// StaticPodDir holds pod manifests the node runs without the API
	// (mirrored there); empty disables static pods.
	StaticPodDir string
	// Port is the kubelet's HTTPS port, published in the Node's status.
	Port int
	// Version is reported as the node's kubeletVersion.
	Version string
	// EvictionHard are the hard eviction thresholds (none: no eviction).
	EvictionHard []Threshold
	// TokenRefresh renews projected ServiceAccount tokens at least this
	// often (0: at 80 % of their life, at most daily).
	TokenRefresh time.Duration
	// GC bounds dead containers and unused images (zero: DefaultGCPolicy).
	GC GCPolicy
	// PinnedImages are never garbage collected (the pause image).
	PinnedImages []string
	// ImageMounts serves image volumes; nil: the runtime cannot.
	ImageMounts ImageMounter
	// ClusterDNS are the cluster DNS addresses ClusterFirst pods use
	// (none: they get the node's resolvers); ClusterDomain is the domain
	// of their search path.
	ClusterDNS    []string
	ClusterDomain string
	// ResolvConf is the node's resolver configuration ("" is
	// /etc/resolv.conf).
	ResolvConf string
	// Informers is the node's shared informer factory for cluster-wide
	// objects (Services, PersistentVolumes); nil makes one. Its owner
	// shuts it down.
	Informers informers.SharedInformerFactory
	Log       *slog.Logger
	// Clock drives back-off, probes and status times (tests: a fake).
	Clock clock.WithTicker
}

// Kubelet runs the pods of one node.
type Kubelet struct {
	cfg     Config
	client  kubernetes.Interface
	rt      runtime.Service
	log     *slog.Logger
	clock   clock.WithTicker
	events  record.EventRecorder
	machine nodestatus.Machine
	// runtimeName prefixes container IDs in status ("containerd://...").
	runtimeName string

	nodeMu           sync.Mutex
	node             *v1.Node
	lastStatusReport time.Time
	pressure         nodestatus.Pressure // from the last eviction signal reading

	mu      sync.Mutex
	pods    map[types.UID]*v1.Pod
	static  map[types.UID]*v1.Pod // from StaticPodDir, by manifest hash
	mirrors map[string]*v1.Pod    // mirror pods in the API, by namespace/name
	workers map[types.UID]chan struct{}
	synced  bool
	// evicted: pods to end Failed/Evicted, with the message to report
	evicted map[types.UID]string
	// admitted: pods that passed the node's admission (they hold its
	// ports and resources); admitMu serialises admission
	admitted map[types.UID]bool
	admitMu  sync.Mutex

	imageMu sync.Mutex
	images  map[string]imageRecord // image GC's memory of use, by image ID

	backoff    *plan.Backoff
	startErr   sync.Map // podUID/container → waiting reason and message
	eventsSeen sync.Map // podUID/reason/message → when last recorded
	// pullFailures: pull/podUID/container → when the last pull failed
	pullFailures sync.Map
	services     corelisters.ServiceLister
	probes       *probeManager
	podCerts     podCerts
	tokens       tokenCache
	reviews      reviews
	// resized: container ID → the resources an in-place resize applied
	resized sync.Map
	metrics *metrics
	// firstSeen: when the kubelet first saw each pod not yet running, for
	// the pod start duration metric
	firstSeen map[types.UID]time.Time
}

// ImageMounter mounts an image's filesystem read-only at a node path.
type ImageMounter interface {
	Mount(ctx context.Context, ref, target string) error
	Unmount(ctx context.Context, target string) error
}

// New connects the kubelet's parts; Run starts it.
func New(cfg Config, client kubernetes.Interface, rt runtime.Service) (*Kubelet, error) {
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.MaxPods == 0 {
		cfg.MaxPods = 110
	}
	if cfg.Hostname == "" {
		cfg.Hostname = cfg.NodeName
	}
	if cfg.GC == (GCPolicy{}) {
		cfg.GC = DefaultGCPolicy
	}
	for _, d := range []string{cfg.RootDir, filepath.Join(cfg.RootDir, "pods"), filepath.Join(cfg.RootDir, "logs")} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("kubelet: %w", err)
		}
	}
	v, err := rt.Version(context.Background(), &cri.VersionRequest{})
	if err != nil {
		return nil, fmt.Errorf("kubelet: runtime version: %w", err)
	}
	k := &Kubelet{
		cfg: cfg, client: client, rt: rt, log: cfg.Log.With("component", "kubelet"), clock: cfg.Clock,
		runtimeName: v.RuntimeName,
		pods:        map[types.UID]*v1.Pod{}, workers: map[types.UID]chan struct{}{},
		static: map[types.UID]*v1.Pod{}, mirrors: map[string]*v1.Pod{},
		evicted: map[types.UID]string{}, admitted: map[types.UID]bool{}, images: map[string]imageRecord{},
		metrics: newMetrics(cfg.NodeName), firstSeen: map[types.UID]time.Time{},
		backoff: plan.NewBackoff(cfg.Clock),
	}
	k.probes = newProbeManager(k)
	k.machine = nodestatus.ReadMachine(cfg.RootDir, v.RuntimeName+"://"+v.RuntimeVersion, cfg.Version)
	return k, nil
}

// Run registers the node and syncs pods until ctx ends. Containers keep
// running when it returns: a restarted agent adopts them.
func (k *Kubelet) Run(ctx context.Context) error {
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: k.client.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	k.events = broadcaster.NewRecorder(scheme.Scheme, v1.EventSource{Component: "kubelet", Host: k.cfg.NodeName})

	k.measure(ctx) // the node registers with its real pressure conditions
	for {
		err := k.registerNode(ctx)
		if err == nil {
			break
		}
		k.log.Warn("node registration failed; retrying", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	k.log.Info("node registered", "node", k.cfg.NodeName)
	go k.heartbeat(ctx)
	cidr, err := k.waitPodCIDR(ctx)
	if err != nil {
		return err
	}
	if err := k.writeCNIConfig(cidr); err != nil {
		return err
	}

	// Static pods are known before the API's pods, so their mirrors are
	// not mistaken for orphans.
	if k.cfg.StaticPodDir != "" {
		pods, errs := readStaticPods(k.cfg.StaticPodDir, k.cfg.NodeName, k.clock.Now())
		for _, err := range errs {
			k.log.Warn("static pod manifest", "err", err)
		}
		k.mu.Lock()
		for uid, p := range pods {
			k.static[uid] = p
		}
		k.mu.Unlock()
	}
	factory := informers.NewSharedInformerFactoryWithOptions(k.client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", k.cfg.NodeName).String()
		}))
	podInformer := factory.Core().V1().Pods().Informer()
	// Services feed the pods' environment; all of them, one informer.
	svcFactory := k.cfg.Informers
	if svcFactory == nil {
		svcFactory = informers.NewSharedInformerFactory(k.client, 0)
		defer svcFactory.Shutdown()
	}
	k.services = svcFactory.Core().V1().Services().Lister()
	svcSynced := svcFactory.Core().V1().Services().Informer().HasSynced
	// Volumes: a deleted local-path volume of this node leaves a directory
	// only the node can remove.
	_, _ = svcFactory.Core().V1().PersistentVolumes().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if pv, ok := obj.(*v1.PersistentVolume); ok {
				k.volumeDeleted(pv)
			}
		},
	})
	svcFactory.Start(ctx.Done())
	_, _ = podInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { k.podChanged(obj.(*v1.Pod)) },
		UpdateFunc: func(_, obj any) { k.podChanged(obj.(*v1.Pod)) },
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if p, ok := obj.(*v1.Pod); ok {
				k.podGone(p)
			}
		},
	})
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), podInformer.HasSynced, svcSynced) {
		return ctx.Err()
	}
	k.mu.Lock()
	k.synced = true
	k.mu.Unlock()
	go k.relist(ctx)
	go k.housekeeping(ctx)
	go k.watchStaticPods(ctx)
	k.mu.Lock()
	static := make([]types.UID, 0, len(k.static))
	for uid := range k.static {
		static = append(static, uid)
	}
	k.mu.Unlock()
	for _, uid := range static {
		k.wake(uid)
	}
	<-ctx.Done()
	factory.Shutdown()
	return nil
}

func (k *Kubelet) podChanged(p *v1.Pod) {
	if isMirror(p) {
		// A mirror is only a reflection: the static pod it names runs.
		k.mu.Lock()
		k.mirrors[p.Namespace+"/"+p.Name] = p
		k.mu.Unlock()
		k.wake(types.UID(p.Annotations[annotationConfigMirror]))
		return
	}
	k.mu.Lock()
	k.pods[p.UID] = p
	if _, ok := k.firstSeen[p.UID]; !ok && p.Status.Phase == v1.PodPending {
		k.firstSeen[p.UID] = k.clock.Now()
	}
	k.mu.Unlock()
	k.wake(p.UID)
}

func (k *Kubelet) podGone(p *v1.Pod) {
	if isMirror(p) {
		k.mu.Lock()
		if cur := k.mirrors[p.Namespace+"/"+p.Name]; cur != nil && cur.UID == p.UID {
			delete(k.mirrors, p.Namespace+"/"+p.Name)
		}
		k.mu.Unlock()
		k.wake(types.UID(p.Annotations[annotationConfigMirror]))
		return
	}
	k.mu.Lock()
	delete(k.pods, p.UID)
	delete(k.firstSeen, p.UID)
	k.mu.Unlock()
	k.wake(p.UID)
}

// pod is the pod the worker for uid syncs: an API pod, or a static pod
// carrying its mirror's status.
func (k *Kubelet) pod(uid types.UID) *v1.Pod {
	k.mu.Lock()
	defer k.mu.Unlock()
	if s, ok := k.static[uid]; ok {
		view := s.DeepCopy()
		if m := k.mirrors[s.Namespace+"/"+s.Name]; m != nil && m.Annotations[annotationConfigMirror] == string(uid) {
			view.Status = m.Status
		}
		return view
	}
	return k.pods[uid]
}

// wake asks the pod's worker to sync, starting one if needed. Each pod has
// at most one worker, so a pod's syncs never overlap.
func (k *Kubelet) wake(uid types.UID) {
	k.mu.Lock()
	ch, ok := k.workers[uid]
	if !ok {
		ch = make(chan struct{}, 1)
		k.workers[uid] = ch
		go k.work(uid, ch)
	}
	k.mu.Unlock()
	select {
	case ch <- struct{}{}:
	default:
	}
}

// work runs one pod's syncs: on a wake-up, or when the last sync asked to
// be called again after a delay. A sync that needs nothing more ends the
// worker; the next event starts a new one.
func (k *Kubelet) work(uid types.UID, wake chan struct{}) {
	ctx := context.Background()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-wake:
		case <-timer.C:
		}
		started := time.Now()
		next := k.syncPod(ctx, uid)
		k.metrics.workerDuration.WithLabelValues("sync").Observe(time.Since(started).Seconds())
		if next == 0 {
			k.mu.Lock()
			if len(wake) == 0 {
				delete(k.workers, uid)
				k.mu.Unlock()
				return
			}
			k.mu.Unlock()
			continue
		}
		timer.Stop()
		timer.Reset(next)
	}
}

// relist is the pod lifecycle event generator: once a second it lists the
// runtime's sandboxes and containers and wakes the workers of pods whose
// runtime state changed, including pods the API no longer knows (orphans to
// clean up).
func (k *Kubelet) relist(ctx context.Context) {
	last := map[types.UID]string{}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		seen, err := k.fingerprints(ctx)
		if err != nil {
			if ctx.Err() == nil {
				k.log.Warn("relist runtime", "err", err)
			}
			continue
		}
		for uid, fp := range seen {
			if last[uid] != fp {
				k.wake(uid)
			}
		}
		for uid := range last {
			if _, ok := seen[uid]; !ok {
				k.wake(uid)
			}
		}
		last = seen
	}
}

func (k *Kubelet) fingerprints(ctx context.Context) (map[types.UID]string, error) {
	sb, err := k.rt.ListPodSandbox(ctx, &cri.ListPodSandboxRequest{})
	if err != nil {
		return nil, err
	}
	cs, err := k.rt.ListContainers(ctx, &cri.ListContainersRequest{})
	if err != nil {
		return nil, err
	}
	parts := map[types.UID][]string{}
	var readySandboxes, running int64
	for _, s := range sb.Items {
		if s.State == cri.PodSandboxState_SANDBOX_READY {
			readySandboxes++
		}
		uid := types.UID(s.Labels[labelPodUID])
		parts[uid] = append(parts[uid], s.Id+s.State.String())
	}
	for _, c := range cs.Containers {
		if c.State == cri.ContainerState_CONTAINER_RUNNING {
			running++
		}
		uid := types.UID(c.Labels[labelPodUID])
		parts[uid] = append(parts[uid], c.Id+c.State.String())
	}
	k.metrics.runningPods.Store(readySandboxes)
	k.metrics.runningContainers.Store(running)
	out := make(map[types.UID]string, len(parts))
	for uid, p := range parts {
		if uid == "" {
			continue
		}
		sort.Strings(p)
		b, _ := json.Marshal(p)
		out[uid] = string(b)
	}
	return out, nil
}

// sinceSeen is how long ago the kubelet first saw a pod still starting
// (zero once it runs), for start-up timings in the debug log.
func (k *Kubelet) sinceSeen(uid types.UID) time.Duration {
	k.mu.Lock()
	defer k.mu.Unlock()
	if t, ok := k.firstSeen[uid]; ok {
		return k.clock.Since(t)
	}
	return 0
}

func (k *Kubelet) setNode(n *v1.Node) {
	k.nodeMu.Lock()
	k.node = n
	k.nodeMu.Unlock()
}

func (k *Kubelet) getNode() *v1.Node {
	k.nodeMu.Lock()
	defer k.nodeMu.Unlock()
	return k.node
}

func equalJSON(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

func sortImages(imgs []v1.ContainerImage) {
	sort.SliceStable(imgs, func(i, j int) bool { return imgs[i].SizeBytes > imgs[j].SizeBytes })
}
