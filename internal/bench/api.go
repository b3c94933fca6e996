// Package bench measures a cluster through its API, so the same numbers can
// be taken from skiff and from upstream Kubernetes side by side.
package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// APIConfig sets the size of the API benchmark.
type APIConfig struct {
	Kubeconfig string
	Pods       int   // pods to create per worker count
	Workers    []int // concurrent creators, e.g. 16 and 64
	Watchers   int
	Updates    int
	Lists      int // LIST repetitions per encoding
	// Namespace, when set, is an existing namespace to work in (a user
	// who may not create namespaces, as for the authorization figures);
	// its pods and ConfigMaps are deleted afterwards, not the namespace.
	Namespace string
}

// APIResult holds the figures of one run.
type APIResult struct {
	Creates []CreateResult
	// Lists holds, per encoding, the median time until the whole LIST
	// response has arrived, and until client-go has also decoded it.
	Lists       []ListResult
	ListedItems int
	FanOut      FanOutResult
	RSSBefore   float64
	RSSAfter    float64
}

// FanOutResult times the watch fan-out from the first update.
type FanOutResult struct {
	Written   time.Duration // until the last update was acknowledged
	Delivered time.Duration // until every watcher had seen every update
	Events    int
}

// ListResult is the median LIST time in one encoding.
type ListResult struct {
	Encoding string
	Received time.Duration // request sent to last byte received
	Decoded  time.Duration // request sent to typed objects in hand (client-go)
}

// CreateResult is the pod-create throughput at one concurrency.
type CreateResult struct {
	Workers  int
	Pods     int
	PerSec   float64
	P50, P99 time.Duration
	Errors   int64
}

func clients(kubeconfig string, proto bool) (*kubernetes.Clientset, *rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = -1, 0
	cfg.Timeout = 2 * time.Minute
	if proto {
		cfg.ContentType = "application/vnd.kubernetes.protobuf"
		cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	} else {
		cfg.ContentType, cfg.AcceptContentTypes = "application/json", "application/json"
	}
	cs, err := kubernetes.NewForConfig(cfg)
	return cs, cfg, err
}

// RunAPI runs the API benchmark, writing progress to out.
func RunAPI(ctx context.Context, c APIConfig, out io.Writer) (*APIResult, error) {
	cs, _, err := clients(c.Kubeconfig, true)
	if err != nil {
		return nil, err
	}
	jsonCS, _, err := clients(c.Kubeconfig, false)
	if err != nil {
		return nil, err
	}
	res := &APIResult{}
	res.RSSBefore = serverRSS(ctx, cs)
	ns := c.Namespace
	if ns == "" {
		ns = fmt.Sprintf("skiff-bench-%d", rand.IntN(1_000_000))
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("create namespace: %w", err)
		}
	}
	defer cleanup(cs, ns, c.Namespace == "")
	// ServiceAccount admission refuses pods until the namespace's default
	// ServiceAccount exists: creates are timed from then, not counted as
	// errors before it.
	if err := waitDefaultServiceAccount(ctx, cs, ns); err != nil {
		return nil, err
	}

	for i, w := range c.Workers {
		cr, err := createPods(ctx, cs, ns, fmt.Sprintf("p%d-", i), c.Pods, w)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(out, "pod creates, %d workers: %.0f/s (p50 %s, p99 %s, %d errors)\n", w, cr.PerSec, cr.P50, cr.P99, cr.Errors)
		res.Creates = append(res.Creates, cr)
		if i < len(c.Workers)-1 {
			if err := deletePods(ctx, cs, ns); err != nil {
				return nil, err
			}
		}
	}

	encodings := []struct {
		cs   *kubernetes.Clientset
		name string
	}{{jsonCS, "JSON"}, {cs, "protobuf"}}
	if c.Lists < 1 { // --lists 0: creates only
		encodings = nil
	}
	for _, enc := range encodings {
		lr, n, err := timeLists(ctx, enc.cs, ns, c.Lists)
		if err != nil {
			return nil, err
		}
		lr.Encoding, res.ListedItems = enc.name, n
		res.Lists = append(res.Lists, lr)
		fmt.Fprintf(out, "LIST %d pods (%s): median %s to receive, %s to receive and decode (of %d)\n", n, enc.name, lr.Received, lr.Decoded, c.Lists)
	}

	fo, err := fanOut(ctx, cs, ns, c.Watchers, c.Updates)
	if err != nil {
		return nil, err
	}
	res.FanOut = fo
	fmt.Fprintf(out, "watch fan-out: %d watchers x %d updates delivered in %s (updates written in %s, %d events)\n", c.Watchers, c.Updates, fo.Delivered, fo.Written, fo.Events)
	res.RSSAfter = serverRSS(ctx, cs)
	fmt.Fprintf(out, "server RSS: %.1f MB before, %.1f MB after\n", res.RSSBefore/1e6, res.RSSAfter/1e6)
	return res, nil
}

// timeLists lists the namespace's pods n times in the client's encoding,
// raw and decoded, and returns the medians. The first, cold, round of each
// is not counted: it measures caches filling, not serving.
func timeLists(ctx context.Context, cs *kubernetes.Clientset, ns string, n int) (ListResult, int, error) {
	var raw, decoded []time.Duration
	items := 0
	for i := range n + 1 {
		start := time.Now()
		if _, err := cs.CoreV1().RESTClient().Get().Namespace(ns).Resource("pods").DoRaw(ctx); err != nil {
			return ListResult{}, 0, fmt.Errorf("list pods: %w", err)
		}
		r := time.Since(start)
		start = time.Now()
		l, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return ListResult{}, 0, fmt.Errorf("list pods: %w", err)
		}
		if i > 0 {
			raw, decoded = append(raw, r), append(decoded, time.Since(start))
		}
		items = len(l.Items)
	}
	slices.Sort(raw)
	slices.Sort(decoded)
	return ListResult{Received: raw[len(raw)/2], Decoded: decoded[len(decoded)/2]}, items, nil
}

func benchPod(name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "bench"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.local/bench:1"}}},
	}
}

func createPods(ctx context.Context, cs *kubernetes.Clientset, ns, prefix string, n, workers int) (CreateResult, error) {
	return timeCreates(n, workers, func(i int) error {
		_, err := cs.CoreV1().Pods(ns).Create(ctx, benchPod(fmt.Sprintf("%s%05d", prefix, i)), metav1.CreateOptions{})
		return err
	}), nil
}

// timeCreates runs n creates from workers goroutines and times them.
func timeCreates(n, workers int, create func(i int) error) CreateResult {
	var next, errs atomic.Int64
	lat := make([]time.Duration, n)
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				t0 := time.Now()
				err := create(i)
				lat[i] = time.Since(t0)
				if err != nil {
					errs.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	slices.Sort(lat)
	return CreateResult{Workers: workers, Pods: n, PerSec: float64(n) / el.Seconds(), P50: lat[n/2], P99: lat[n*99/100], Errors: errs.Load()}
}

func deletePods(ctx context.Context, cs *kubernetes.Clientset, ns string) error {
	zero := int64(0)
	return cs.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
}

// fanOutWriters is how many objects the fan-out updates concurrently.
const fanOutWriters = 8

// fanOut opens watchers on a set of ConfigMaps, applies updates to them
// from several writers (every update changes the object: a no-op update
// makes no event), and measures from the first update until every
// watcher has seen every update.
func fanOut(ctx context.Context, cs *kubernetes.Clientset, ns string, watchers, updates int) (FanOutResult, error) {
	cms := cs.CoreV1().ConfigMaps(ns)
	objs := make([]*corev1.ConfigMap, fanOutWriters)
	var rv string
	for i := range objs {
		obj, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("fanout-%d", i), Labels: map[string]string{"bench": "fanout"}}, Data: map[string]string{"n": "initial"}}, metav1.CreateOptions{})
		if err != nil {
			return FanOutResult{}, err
		}
		objs[i], rv = obj, obj.ResourceVersion
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var total atomic.Int64
	for range watchers {
		w, err := cms.Watch(wctx, metav1.ListOptions{LabelSelector: "bench=fanout", ResourceVersion: rv})
		if err != nil {
			return FanOutResult{}, fmt.Errorf("watch: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer w.Stop()
			seen := 0
			for ev := range w.ResultChan() {
				if ev.Type == watch.Modified {
					seen++
					total.Add(1)
					if seen == updates {
						return
					}
				}
			}
		}()
	}
	start := time.Now()
	var werr atomic.Value
	var writers sync.WaitGroup
	for i, obj := range objs {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for n := i; n < updates; n += fanOutWriters {
				obj.Data["n"] = fmt.Sprint(n)
				next, err := cms.Update(ctx, obj, metav1.UpdateOptions{})
				if err != nil {
					werr.Store(err)
					return
				}
				obj = next
			}
		}()
	}
	writers.Wait()
	written := time.Since(start)
	if err, ok := werr.Load().(error); ok {
		return FanOutResult{}, fmt.Errorf("update: %w", err)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		return FanOutResult{}, fmt.Errorf("fan-out incomplete after 2m: %d of %d events", total.Load(), watchers*updates)
	}
	return FanOutResult{Written: written, Delivered: time.Since(start), Events: int(total.Load())}, nil
}

// serverRSS reads process_resident_memory_bytes from /metrics (0 if the
// cluster does not expose it to this user).
func serverRSS(ctx context.Context, cs *kubernetes.Clientset) float64 {
	b, err := cs.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "process_resident_memory_bytes ") {
			var v float64
			fmt.Sscan(strings.TrimPrefix(line, "process_resident_memory_bytes "), &v)
			return v
		}
	}
	return 0
}

func cleanup(cs *kubernetes.Clientset, ns string, namespace bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	deletePods(ctx, cs, ns)
	cs.CoreV1().ConfigMaps(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
	if namespace {
		deleteNamespace(ctx, cs, ns)
	}
}

// deleteNamespace deletes ns and waits until it is gone, so that a run
// leaves the cluster idle: the events a run caused (FailedScheduling for
// pods no node could take) are removed with the namespace, and a server
// measured after the run is not still removing them.
func deleteNamespace(ctx context.Context, cs kubernetes.Interface, ns string) {
	if err := cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		return
	}
	for ctx.Err() == nil {
		if _, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitDefaultServiceAccount waits (30 s at most) for ns's default
// ServiceAccount, which the serviceaccount controller makes.
func waitDefaultServiceAccount(ctx context.Context, cs kubernetes.Interface, ns string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("namespace %s has no default ServiceAccount after 30 s: %w", ns, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
