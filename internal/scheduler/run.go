package scheduler

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/skiff-sh/skiff/internal/scheduler/config"
)

// RunConfig configures the scheduler inside skiff server.
type RunConfig struct {
	Rest     *rest.Config
	Config   *config.Config
	Identity string
	Metrics  *Metrics
	Log      *slog.Logger
}

// Lease timing, as upstream kube-scheduler's defaults.
const (
	leaseDuration = 15 * time.Second
	renewDeadline = 10 * time.Second
	retryPeriod   = 2 * time.Second
	clientQPS     = 5000
	clientBurst   = 10000
)

// RunLeader campaigns for the kube-system/kube-scheduler Lease and
// schedules while holding it, until ctx ends.
func RunLeader(ctx context.Context, cfg RunConfig) error {
	rc := rest.CopyConfig(cfg.Rest)
	rc.QPS, rc.Burst = clientQPS, clientBurst
	rc.UserAgent = "skiff-scheduler"
	rc.ContentType = runtime.ContentTypeProtobuf
	rc.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("scheduler client: %w", err)
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: metav1.NamespaceSystem, Name: "kube-scheduler"},
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: cfg.Identity},
	}
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock: lock, LeaseDuration: leaseDuration, RenewDeadline: renewDeadline, RetryPeriod: retryPeriod,
			ReleaseOnCancel: true, Name: "kube-scheduler",
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) {
					cfg.Log.Info("scheduler leading", "identity", cfg.Identity)
					if err := runTerm(ctx, cfg, client); err != nil {
						cfg.Log.Error("scheduler", "err", err)
					}
				},
				OnStoppedLeading: func() { cfg.Log.Info("scheduler lease released", "identity", cfg.Identity) },
			},
		})
		if err != nil {
			return fmt.Errorf("leader election: %w", err)
		}
		le.Run(ctx)
	}
	return nil
}

// runTerm schedules from fresh informers for one term.
func runTerm(ctx context.Context, cfg RunConfig, client kubernetes.Interface) error {
	factory := informers.NewSharedInformerFactory(client, 0)
	s, err := New(client, factory, cfg.Config, cfg.Metrics, cfg.Log)
	if err != nil {
		return err
	}
	factory.Start(ctx.Done())
	for _, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return ctx.Err()
		}
	}
	s.Run(ctx)
	factory.Shutdown()
	return nil
}
