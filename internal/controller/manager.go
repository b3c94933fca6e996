package controller

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/skiff-sh/skiff/internal/authz"
	"github.com/skiff-sh/skiff/internal/kubeclient"
	"github.com/skiff-sh/skiff/internal/pki"
	"github.com/skiff-sh/skiff/internal/satoken"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	"github.com/skiff-sh/skiff/internal/leader"
)

// ManagerConfig configures the controller manager.
type ManagerConfig struct {
	// Rest reaches the API server (the server's own loopback identity).
	Rest        *rest.Config
	Controllers []Registration
	// Identity names this server in the leader-election Lease.
	Identity string
	RootCA   []byte
	CA       *pki.CA
	TokenKey *satoken.Key
	Settings Settings
	Log      *slog.Logger
}

const (
	// resyncPeriod re-delivers every informer object now and then, so a
	// missed edge never leaves state unreconciled for long.
	resyncPeriod = 10 * time.Minute
	// clientQPS and clientBurst keep client-side rate limiting out of the
	// way: the API server, not the controllers' client, is the limit.
	clientQPS   = 2000
	clientBurst = 4000
)

// RunManager campaigns for the kube-system/kube-controller-manager Lease and
// runs the controllers while it holds it, until ctx ends. Each term starts
// from fresh informers, so a lost and regained lease starts clean.
func RunManager(ctx context.Context, cfg ManagerConfig) error {
	if len(cfg.Controllers) == 0 {
		return nil
	}
	restCfg := rest.CopyConfig(cfg.Rest)
	restCfg.QPS, restCfg.Burst = clientQPS, clientBurst
	restCfg.UserAgent = "skiff-controller-manager"
	client, err := kubernetes.NewForConfig(kubeclient.Protobuf(restCfg))
	if err != nil {
		return fmt.Errorf("controller client: %w", err)
	}
	return leader.Run(ctx, client, "kube-controller-manager", cfg.Identity, cfg.Log, func(ctx context.Context) error {
		return runTerm(ctx, cfg, restCfg, client)
	})
}

// runTerm builds the shared context and runs every controller until ctx ends.
func runTerm(ctx context.Context, cfg ManagerConfig, restCfg *rest.Config, client kubernetes.Interface) error {
	md, err := metadata.NewForConfig(restCfg)
	if err != nil {
		return err
	}
	shared := &Context{
		Client:            client,
		Metadata:          md,
		InformerClient:    client,
		Informers:         informers.NewSharedInformerFactory(client, resyncPeriod),
		MetadataInformers: metadatainformer.NewSharedInformerFactory(md, resyncPeriod),
		Clock:             clock.RealClock{},
		Log:               cfg.Log,
		RootCA:            cfg.RootCA,
		CA:                cfg.CA,
		TokenKey:          cfg.TokenKey,
		Settings:          cfg.Settings,
	}
	// One context per identity: the manager's own, and each controller
	// ServiceAccount's (two controllers may share one, as upstream's node
	// lifecycle and IPAM controllers do).
	contexts := map[string]*Context{}
	contextFor := func(account string) (*Context, error) {
		if cc, ok := contexts[account]; ok {
			return cc, nil
		}
		cc := *shared
		if account != "" {
			acfg := accountConfig(restCfg, client, authz.ControllerNamespace, account, cc.Clock)
			if cc.Client, err = kubernetes.NewForConfig(acfg); err != nil {
				return nil, err
			}
			if cc.Metadata, err = metadata.NewForConfig(acfg); err != nil {
				return nil, err
			}
		}
		cc.Events = record.NewBroadcaster(record.WithContext(ctx))
		cc.Events.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: cc.Client.CoreV1().Events("")})
		contexts[account] = &cc
		return &cc, nil
	}
	defer func() {
		for _, cc := range contexts {
			cc.Events.Shutdown()
		}
	}()
	type running struct {
		c       Controller
		workers int
	}
	var all []running
	for _, r := range cfg.Controllers {
		cc, err := contextFor(r.ServiceAccount)
		if err != nil {
			return fmt.Errorf("controller %s credentials: %w", r.Name, err)
		}
		c, err := r.New(cc)
		if err != nil {
			return fmt.Errorf("controller %s: %w", r.Name, err)
		}
		all = append(all, running{c, r.Workers})
	}
	// Informers are registered by the constructors above; start them all.
	shared.Informers.Start(ctx.Done())
	shared.MetadataInformers.Start(ctx.Done())
	done := make(chan struct{}, len(all))
	for _, r := range all {
		go func() {
			r.c.Run(ctx, r.workers)
			done <- struct{}{}
		}()
	}
	for range all {
		<-done
	}
	shared.Informers.Shutdown()
	shared.MetadataInformers.Shutdown()
	return nil
}

func eventScheme() *runtime.Scheme { return scheme.Scheme }
