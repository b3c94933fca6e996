// Package leader runs a control-plane component only while it holds its
// kube-system Lease, campaigning again whenever the lease is lost.
package leader

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Lease timing, as upstream components' defaults.
const (
	leaseDuration = 15 * time.Second
	renewDeadline = 10 * time.Second
	retryPeriod   = 2 * time.Second
)

// Run campaigns for the kube-system Lease called name and calls term while
// holding it (term must return when its context ends), until ctx ends.
func Run(ctx context.Context, client kubernetes.Interface, name, identity string, log *slog.Logger, term func(context.Context) error) error {
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: metav1.NamespaceSystem, Name: name},
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: identity},
	}
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock: lock, LeaseDuration: leaseDuration, RenewDeadline: renewDeadline, RetryPeriod: retryPeriod,
			ReleaseOnCancel: true, Name: name,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) {
					log.Info("leading", "lease", name, "identity", identity)
					if err := term(ctx); err != nil {
						log.Error("term ended", "lease", name, "err", err)
					}
				},
				OnStoppedLeading: func() { log.Info("lease released", "lease", name, "identity", identity) },
			},
		})
		if err != nil {
			return fmt.Errorf("leader election for %s: %w", name, err)
		}
		le.Run(ctx)
	}
	return nil
}
