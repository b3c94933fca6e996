package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

// SchedulerConfig sizes the scheduler benchmark.
type SchedulerConfig struct {
	Kubeconfig string
	Nodes      int
	Pods       int
	// Mode is plain, anti-affinity or spread.
	Mode string
	// GroupSize is how many pods share a label in the anti-affinity and
	// spread modes (pods repel or spread within their group).
	GroupSize int
	Workers   int
}

// SchedulerResult holds the figures of one run.
type SchedulerResult struct {
	PodsPerSec float64
	// AttemptP50/P99 come from the server's
	// scheduler_scheduling_attempt_duration_seconds histogram.
	AttemptP50, AttemptP99 time.Duration
	// BindP50/P99 are create-to-bound latencies seen by the client.
	BindP50, BindP99 time.Duration
}

// benchZones is how many zones the fake nodes are spread over.
const benchZones = 10

// RunScheduler creates fake Ready nodes, then unscheduled pods, and
// measures binds per second from the first to the last bind, and the
// scheduling attempt latency the scheduler itself reports.
func RunScheduler(ctx context.Context, c SchedulerConfig, out io.Writer) (*SchedulerResult, error) {
	cs, _, err := clients(c.Kubeconfig, true)
	if err != nil {
		return nil, err
	}
	run := rand.IntN(1_000_000)
	ns := fmt.Sprintf("skiff-bench-sched-%d", run)
	nodePrefix := fmt.Sprintf("bench-%d-node-", run)
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("create namespace: %w", err)
	}
	defer cleanupScheduler(cs, ns, nodePrefix, c.Nodes)
	t0 := time.Now()
	if err := parallel(c.Nodes, c.Workers, func(i int) error { return createNode(ctx, cs, fmt.Sprintf("%s%05d", nodePrefix, i), i) }); err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "scheduler (%s): %d nodes created in %s\n", c.Mode, c.Nodes, time.Since(t0).Round(time.Millisecond))
	before, err := attemptHistogram(ctx, cs)
	if err != nil {
		return nil, err
	}

	w, err := cs.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	created := make([]atomic.Int64, c.Pods)
	var mu sync.Mutex
	var lat []time.Duration
	var first, last time.Time
	done := make(chan error, 1)
	go func() {
		bound := map[string]bool{}
		timeout := time.After(10 * time.Minute)
		lastRV := ""
		for len(bound) < c.Pods {
			select {
			case ev, ok := <-w.ResultChan():
				if !ok {
					// A server may end a long watch; resume where it stopped.
					next, err := cs.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: lastRV, AllowWatchBookmarks: true})
					if err != nil {
						done <- fmt.Errorf("watch closed after %d binds and could not resume: %w", len(bound), err)
						return
					}
					w = next
					continue
				}
				p, isPod := ev.Object.(*corev1.Pod)
				if isPod {
					lastRV = p.ResourceVersion
				}
				if !isPod || ev.Type != watch.Modified || p.Spec.NodeName == "" || bound[p.Name] {
					continue
				}
				now := time.Now()
				bound[p.Name] = true
				i, _ := strconv.Atoi(p.Name[strings.LastIndex(p.Name, "-")+1:])
				mu.Lock()
				if first.IsZero() {
					first = now
				}
				last = now
				if i < len(created) {
					lat = append(lat, now.Sub(time.Unix(0, created[i].Load())))
				}
				mu.Unlock()
			case <-timeout:
				done <- fmt.Errorf("only %d of %d pods bound after 10m", len(bound), c.Pods)
				return
			}
		}
		done <- nil
	}()
	if err := parallel(c.Pods, c.Workers, func(i int) error {
		created[i].Store(time.Now().UnixNano())
		_, err := cs.CoreV1().Pods(ns).Create(ctx, schedBenchPod(c, i), metav1.CreateOptions{})
		return err
	}); err != nil {
		return nil, err
	}
	if err := <-done; err != nil {
		return nil, err
	}
	after, err := attemptHistogram(ctx, cs)
	if err != nil {
		return nil, err
	}
	res := &SchedulerResult{PodsPerSec: float64(c.Pods-1) / last.Sub(first).Seconds()}
	delta := after.minus(before)
	res.AttemptP50, res.AttemptP99 = delta.quantile(0.5), delta.quantile(0.99)
	slices.Sort(lat)
	res.BindP50, res.BindP99 = lat[len(lat)/2], lat[len(lat)*99/100]
	fmt.Fprintf(out, "scheduler (%s): %d pods on %d nodes: %.0f pods/s (first to last bind %s); attempt latency p50 %s p99 %s (%.0f attempts); create→bound p50 %s p99 %s\n",
		c.Mode, c.Pods, c.Nodes, res.PodsPerSec, last.Sub(first).Round(time.Millisecond), res.AttemptP50, res.AttemptP99, delta.count, res.BindP50.Round(time.Millisecond), res.BindP99.Round(time.Millisecond))
	return res, nil
}

// parallel runs f(0..n-1) on workers goroutines and returns the first error.
func parallel(n, workers int, f func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || firstErr.Load() != nil {
					return
				}
				if err := f(i); err != nil {
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return err
	}
	return nil
}

// createNode makes a Ready node with capacity. Its status is written at
// creation (the API keeps a node's status on create, as a kubelet
// registering relies on), so the node lifecycle controller cannot race a
// second write; nothing renews it, so the server should run with a long
// --node-monitor-grace-period for runs that outlast 40 s.
func createNode(ctx context.Context, cs kubernetes.Interface, name string, i int) error {
	capacity := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("128Gi"), corev1.ResourcePods: resource.MustParse("110")}
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		corev1.LabelHostname: name, corev1.LabelTopologyZone: fmt.Sprintf("zone-%d", i%benchZones), "skiff.io/bench": "true",
	}}, Status: corev1.NodeStatus{Capacity: capacity, Allocatable: capacity,
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: metav1.Now()}}}}
	got, err := cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create node %s: %w", name, err)
	}
	if len(got.Status.Allocatable) == 0 {
		// A server that drops status on create: write it once.
		got.Status = n.Status
		if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, got, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("node %s status: %w", name, err)
		}
	}
	return nil
}

func schedBenchPod(c SchedulerConfig, i int) *corev1.Pod {
	group := fmt.Sprintf("g%d", i/max(c.GroupSize, 1))
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pod-%d", i), Labels: map[string]string{"app": "bench", "group": group}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.local/bench:1", Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")}}}}},
	}
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"group": group}}
	switch c.Mode {
	case "anti-affinity":
		p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{TopologyKey: corev1.LabelHostname, LabelSelector: sel}}}}
	case "spread":
		p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: corev1.LabelTopologyZone, WhenUnsatisfiable: corev1.DoNotSchedule, LabelSelector: sel}}
	}
	return p
}

// histogram is a scraped Prometheus histogram (cumulative buckets).
type histogram struct {
	bounds []float64
	counts []float64
	count  float64
}

func (h histogram) minus(o histogram) histogram {
	out := histogram{bounds: h.bounds, counts: make([]float64, len(h.counts)), count: h.count - o.count}
	for i := range h.counts {
		out.counts[i] = h.counts[i]
		if i < len(o.counts) {
			out.counts[i] -= o.counts[i]
		}
	}
	return out
}

// quantile interpolates linearly within the bucket, as histogram_quantile.
func (h histogram) quantile(q float64) time.Duration {
	if h.count == 0 {
		return 0
	}
	rank := q * h.count
	lo, prev := 0.0, 0.0
	for i, c := range h.counts {
		if c >= rank {
			frac := 0.0
			if c > prev {
				frac = (rank - prev) / (c - prev)
			}
			return time.Duration((lo + (h.bounds[i]-lo)*frac) * float64(time.Second))
		}
		lo, prev = h.bounds[i], c
	}
	return time.Duration(lo * float64(time.Second))
}

// attemptHistogram scrapes the scheduled-attempt latency histogram (all
// profiles summed) from the server's /metrics.
func attemptHistogram(ctx context.Context, cs kubernetes.Interface) (histogram, error) {
	b, err := cs.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return histogram{}, fmt.Errorf("scrape /metrics: %w", err)
	}
	byBound := map[float64]float64{}
	var h histogram
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "scheduler_scheduling_attempt_duration_seconds") || !strings.Contains(line, `result="scheduled"`) {
			continue
		}
		fields := strings.Fields(line)
		v, _ := strconv.ParseFloat(fields[len(fields)-1], 64)
		switch {
		case strings.HasPrefix(line, "scheduler_scheduling_attempt_duration_seconds_bucket"):
			// ',le="' and not 'le="', which "profile=" also contains.
			le := line[strings.Index(line, `,le="`)+5:]
			le = le[:strings.Index(le, `"`)]
			if le == "+Inf" {
				continue
			}
			bound, _ := strconv.ParseFloat(le, 64)
			byBound[bound] += v
		case strings.HasPrefix(line, "scheduler_scheduling_attempt_duration_seconds_count"):
			h.count += v
		}
	}
	for bnd := range byBound {
		h.bounds = append(h.bounds, bnd)
	}
	slices.Sort(h.bounds)
	for _, bnd := range h.bounds {
		h.counts = append(h.counts, byBound[bnd])
	}
	return h, nil
}

func cleanupScheduler(cs *kubernetes.Clientset, ns, nodePrefix string, nodes int) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	deletePods(ctx, cs, ns)
	cs.CoreV1().Nodes().DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "skiff.io/bench=true"})
	deleteNamespace(ctx, cs, ns)
}
