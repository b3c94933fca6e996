package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// DeploymentConfig sizes the controller benchmark.
type DeploymentConfig struct {
	Kubeconfig string
	ScaleTo    int // replicas for the scale-up test
	Rollout    int // replicas for the rolling-update test
}

// DeploymentResult holds the figures of one run.
type DeploymentResult struct {
	ScaleUp time.Duration // scale 0 → ScaleTo until every pod exists
	Rollout time.Duration // template change until the rollout is complete
}

// RunDeployment measures the workload controllers: how fast a Deployment
// scaled from 0 gets all its pods created, and how fast a rolling update
// completes when pods turn ready promptly (the benchmark plays the node:
// without a kubelet it marks each new pod Running and Ready itself).
func RunDeployment(ctx context.Context, c DeploymentConfig, out io.Writer) (*DeploymentResult, error) {
	cs, _, err := clients(c.Kubeconfig, true)
	if err != nil {
		return nil, err
	}
	ns := fmt.Sprintf("skiff-bench-%d", rand.IntN(1_000_000))
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("create namespace: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cs.CoreV1().Namespaces().Delete(cctx, ns, metav1.DeleteOptions{})
	}()
	res := &DeploymentResult{}

	// Scale-up: count pod creations from the moment replicas is raised.
	d, err := cs.AppsV1().Deployments(ns).Create(ctx, benchDeployment("scale", 0), metav1.CreateOptions{})
	if err != nil {
		return nil, err
	}
	w, err := cs.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: "bench=scale", ResourceVersion: d.ResourceVersion})
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if _, err := cs.AppsV1().Deployments(ns).UpdateScale(ctx, "scale", &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "scale", Namespace: ns}, Spec: autoscalingv1.ScaleSpec{Replicas: int32(c.ScaleTo)}}, metav1.UpdateOptions{}); err != nil {
		w.Stop()
		return nil, err
	}
	seen := 0
	timeout := time.After(5 * time.Minute)
	for seen < c.ScaleTo {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				return nil, fmt.Errorf("pod watch closed after %d of %d pods", seen, c.ScaleTo)
			}
			if ev.Type == watch.Added {
				seen++
			}
		case <-timeout:
			w.Stop()
			return nil, fmt.Errorf("only %d of %d pods after 5m", seen, c.ScaleTo)
		}
	}
	w.Stop()
	res.ScaleUp = time.Since(start)
	fmt.Fprintf(out, "deployment scale 0 → %d: all pods created in %s (%.0f pods/s)\n", c.ScaleTo, res.ScaleUp, float64(c.ScaleTo)/res.ScaleUp.Seconds())
	if err := cs.AppsV1().Deployments(ns).Delete(ctx, "scale", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)}); err != nil {
		return nil, err
	}

	// Rolling update with a simulated node marking pods ready.
	nctx, stopNode := context.WithCancel(ctx)
	defer stopNode()
	if err := startNode(nctx, cs, ns, "bench=rollout"); err != nil {
		return nil, err
	}
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, benchDeployment("rollout", int32(c.Rollout)), metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	if err := waitComplete(ctx, cs, ns, "rollout"); err != nil {
		return nil, err
	}
	start = time.Now()
	patch := []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"registry.local/bench:2"}]}}}}`)
	if _, err := cs.AppsV1().Deployments(ns).Patch(ctx, "rollout", types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return nil, err
	}
	if err := waitComplete(ctx, cs, ns, "rollout"); err != nil {
		return nil, err
	}
	res.Rollout = time.Since(start)
	fmt.Fprintf(out, "rolling update of %d replicas (25%% surge/unavailable): complete in %s\n", c.Rollout, res.Rollout)
	return res, nil
}

func benchDeployment(name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"bench": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.local/bench:1"}}},
			},
		},
	}
}

// startNode marks every new pod matching selector Running and Ready, with
// several writers, until ctx ends.
func startNode(ctx context.Context, cs *kubernetes.Clientset, ns, selector string) error {
	w, err := cs.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return err
	}
	todo := make(chan *corev1.Pod, 10000)
	go func() {
		defer close(todo)
		defer w.Stop()
		for ev := range w.ResultChan() {
			if p, ok := ev.Object.(*corev1.Pod); ok && ev.Type == watch.Added {
				todo <- p
			}
		}
	}()
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range todo {
				p.Status.Phase = corev1.PodRunning
				p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
				cs.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{})
			}
		}()
	}
	return nil
}

// waitComplete waits until the Deployment's rollout is complete, as
// `kubectl rollout status` judges it.
func waitComplete(ctx context.Context, cs *kubernetes.Clientset, ns, name string) error {
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		n := *d.Spec.Replicas
		st := d.Status
		if st.ObservedGeneration >= d.Generation && st.UpdatedReplicas == n && st.Replicas == n && st.AvailableReplicas == n {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("deployment %s/%s did not complete its rollout in 5m", ns, name)
}
