package scheduler

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/skiff-sh/skiff/internal/kubeclient"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-sh/skiff/internal/leader"
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

// Client rate limits high enough that the API server, not the client, is
// the limit for placement: bindings and status writes.
const (
	clientQPS   = 5000
	clientBurst = 10000
)

// Events go through a client of their own, limited as upstream's
// kube-scheduler client is by default (50 QPS, bursts of 100). An event is
// a record for people, and a storm of thousands of pods per second would
// otherwise spend a quarter of the control plane on Scheduled and
// FailedScheduling events; past the limit the recorder's queue drops
// them, as upstream's does.
const (
	eventQPS   = 50
	eventBurst = 100
)

// RunLeader campaigns for the kube-system/kube-scheduler Lease and
// schedules while holding it, until ctx ends.
func RunLeader(ctx context.Context, cfg RunConfig) error {
	rc := rest.CopyConfig(cfg.Rest)
	rc.QPS, rc.Burst = clientQPS, clientBurst
	rc.UserAgent = "skiff-scheduler"
	client, err := kubernetes.NewForConfig(kubeclient.Protobuf(rc))
	if err != nil {
		return fmt.Errorf("scheduler client: %w", err)
	}
	ec := rest.CopyConfig(rc)
	ec.QPS, ec.Burst = eventQPS, eventBurst
	eventClient, err := kubernetes.NewForConfig(kubeclient.Protobuf(ec))
	if err != nil {
		return fmt.Errorf("scheduler event client: %w", err)
	}
	return leader.Run(ctx, client, "kube-scheduler", cfg.Identity, cfg.Log, func(ctx context.Context) error {
		return runTerm(ctx, cfg, client, eventClient)
	})
}

// runTerm schedules from fresh informers for one term.
func runTerm(ctx context.Context, cfg RunConfig, client, eventClient kubernetes.Interface) error {
	factory := informers.NewSharedInformerFactory(client, 0)
	s, err := New(client, eventClient, factory, cfg.Config, cfg.Metrics, cfg.Log)
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
