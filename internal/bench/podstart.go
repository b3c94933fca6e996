package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
)

// PodStartConfig sizes the pod start benchmark.
type PodStartConfig struct {
	Kubeconfig string
	Pods       int
	// Rate is pods created per second.
	Rate  float64
	Image string
	// Node pins the pods to one node (empty: the scheduler places them).
	Node string
	// Keep leaves the pods running at the end (for idle measurements).
	Keep bool
}

// PodStartResult holds the figures of one run: creation to Running (the
// status write of the first running container) and to Ready.
type PodStartResult struct {
	RunningP50, RunningP99 time.Duration
	ReadyP50, ReadyP99     time.Duration
}

// RunPodStart creates pods at a fixed rate with an image already on the
// node and measures, from the client's create call, when each pod is seen
// Running and Ready through a watch.
func RunPodStart(ctx context.Context, c PodStartConfig, out io.Writer) (*PodStartResult, error) {
	cs, _, err := clients(c.Kubeconfig, true)
	if err != nil {
		return nil, err
	}
	ns := fmt.Sprintf("skiff-bench-podstart-%d", rand.IntN(1_000_000))
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("create namespace: %w", err)
	}
	if !c.Keep {
		defer cleanup(cs, ns, true)
	}
	w, err := cs.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	defer w.Stop()

	var mu sync.Mutex
	created := map[string]time.Time{}
	running := map[string]time.Duration{}
	ready := map[string]time.Duration{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			if ev.Type != watch.Added && ev.Type != watch.Modified {
				continue
			}
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			now := time.Now()
			mu.Lock()
			t0, known := created[p.Name]
			if known {
				if _, seen := running[p.Name]; !seen && p.Status.Phase == corev1.PodRunning {
					running[p.Name] = now.Sub(t0)
				}
				if _, seen := ready[p.Name]; !seen && isReady(p) {
					ready[p.Name] = now.Sub(t0)
				}
			}
			finished := len(ready) == c.Pods
			mu.Unlock()
			if finished {
				return
			}
		}
	}()

	interval := time.Duration(float64(time.Second) / c.Rate)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for i := 0; i < c.Pods; i++ {
		name := fmt.Sprintf("start-%04d", i)
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "podstart"}},
			Spec: corev1.PodSpec{
				NodeName:                      c.Node,
				TerminationGracePeriodSeconds: ptr.To[int64](0),
				Containers: []corev1.Container{{
					Name: "main", Image: c.Image, ImagePullPolicy: corev1.PullIfNotPresent,
					Command: []string{"sleep", "3600"},
				}},
			},
		}
		mu.Lock()
		created[name] = time.Now()
		mu.Unlock()
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("create pod %s: %w", name, err)
		}
		<-tick.C
	}
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		mu.Lock()
		n := len(ready)
		mu.Unlock()
		return nil, fmt.Errorf("only %d of %d pods Ready after 5 minutes", n, c.Pods)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	mu.Lock()
	defer mu.Unlock()
	q := func(m map[string]time.Duration) (time.Duration, time.Duration) {
		lat := make([]time.Duration, 0, len(m))
		for _, d := range m {
			lat = append(lat, d)
		}
		slices.Sort(lat)
		return lat[len(lat)/2], lat[len(lat)*99/100]
	}
	res := &PodStartResult{}
	res.RunningP50, res.RunningP99 = q(running)
	res.ReadyP50, res.ReadyP99 = q(ready)
	fmt.Fprintf(out, "podstart: %d pods at %.0f/s (image %s): create→Running p50 %s p99 %s; create→Ready p50 %s p99 %s\n",
		c.Pods, c.Rate, c.Image, res.RunningP50.Round(time.Millisecond), res.RunningP99.Round(time.Millisecond), res.ReadyP50.Round(time.Millisecond), res.ReadyP99.Round(time.Millisecond))
	return res, nil
}

func isReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
