package bench

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// FairnessConfig is one fairness measurement: greedy clients listing in a
// loop while a victim makes single GETs.
type FairnessConfig struct {
	// Kubeconfig sets up the objects; Greedy and Victim are the two users.
	Kubeconfig, Greedy, Victim string
	Clients                    int
	Objects                    int
	Duration                   time.Duration
	Namespace                  string
}

// FairnessResult is the victim's GET latency under the flood.
type FairnessResult struct {
	GETs, VictimErrors      int
	P50, P99, Max           time.Duration
	GreedyLists, Greedy429s int64
}

// RunFairness creates Objects ConfigMaps, then runs Clients greedy list
// loops and one victim GET loop for Duration.
func RunFairness(ctx context.Context, c FairnessConfig, out io.Writer) (*FairnessResult, error) {
	admin, _, err := clients(c.Kubeconfig, true)
	if err != nil {
		return nil, err
	}
	data := strings.Repeat("x", 1024)
	for i := range c.Objects {
		_, err := admin.CoreV1().ConfigMaps(c.Namespace).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("fair-%d", i)}, Data: map[string]string{"d": data}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, err
		}
	}
	victim, _, err := clients(c.Victim, true)
	if err != nil {
		return nil, err
	}
	run, stop := context.WithTimeout(ctx, c.Duration)
	defer stop()
	var lists, rejected atomic.Int64
	var wg sync.WaitGroup
	for range c.Clients {
		greedy, _, err := clients(c.Greedy, true)
		if err != nil {
			return nil, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for run.Err() == nil {
				err := greedy.CoreV1().RESTClient().Get().AbsPath("/api/v1/namespaces/" + c.Namespace + "/configmaps").MaxRetries(0).Do(run).Error()
				switch {
				case err == nil:
					lists.Add(1)
				case apierrors.IsTooManyRequests(err):
					rejected.Add(1)
				}
			}
		}()
	}
	res := &FairnessResult{}
	var took []time.Duration
	for run.Err() == nil {
		start := time.Now()
		_, err := victim.CoreV1().ConfigMaps(c.Namespace).Get(run, "fair-0", metav1.GetOptions{})
		if run.Err() != nil {
			break
		}
		took = append(took, time.Since(start))
		if err != nil {
			res.VictimErrors++
		}
		time.Sleep(20 * time.Millisecond)
	}
	wg.Wait()
	slices.Sort(took)
	res.GETs, res.GreedyLists, res.Greedy429s = len(took), lists.Load(), rejected.Load()
	if len(took) > 0 {
		res.P50, res.P99, res.Max = took[len(took)/2], took[len(took)*99/100], took[len(took)-1]
	}
	fmt.Fprintf(out, "victim GETs: %d (errors %d), p50 %v, p99 %v, max %v; greedy lists: %d served, %d refused (429) by %d clients in %v\n",
		res.GETs, res.VictimErrors, res.P50.Round(time.Microsecond), res.P99.Round(time.Microsecond), res.Max.Round(time.Microsecond), res.GreedyLists, res.Greedy429s, c.Clients, c.Duration)
	return res, nil
}
