package proxy

import (
	"context"
	"log/slog"
	"time"

	"github.com/skiff-sh/skiff/internal/work"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
)

// retryAfter is how long a failed Apply waits before the table is rebuilt.
const retryAfter = 2 * time.Second

// checkEvery is how often the proxy makes sure its table still exists.
const checkEvery = 30 * time.Second

// Source adds rules of its own to every sync (NetworkPolicy does).
type Source interface {
	// Watch registers the informers it reads on factory, calling changed
	// on every event, and returns their synced checks.
	Watch(ctx context.Context, factory informers.SharedInformerFactory, changed func()) []cache.InformerSynced
	// Add adds its chains, sets and map elements to rs.
	Add(rs *Ruleset)
}

// Run programs table (and closes it when done) as the node's table from the Services and EndpointSlices in
// factory until ctx ends. Every change triggers a sync; changes arriving
// during one are folded into the next, so a burst costs one extra Apply.
// The table stays when Run returns: connections keep working while the
// agent restarts, and the next start rebuilds it.
func Run(ctx context.Context, table *Table, cfg Config, factory informers.SharedInformerFactory, log *slog.Logger, extra ...Source) error {
	defer table.Close()
	svcs := factory.Core().V1().Services()
	slices := factory.Discovery().V1().EndpointSlices()
	kick := work.NewSignal()
	_, _ = svcs.Informer().AddEventHandler(kick.OnAny())
	_, _ = slices.Informer().AddEventHandler(kick.OnAny())
	synced := []cache.InformerSynced{svcs.Informer().HasSynced, slices.Informer().HasSynced}
	for _, x := range extra {
		synced = append(synced, x.Watch(ctx, factory, kick.Fire)...)
	}
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return ctx.Err()
	}
	builder := NewBuilder(cfg)
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	check := time.NewTicker(checkEvery)
	defer check.Stop()
	for {
		start := time.Now()
		s, _ := svcs.Lister().List(labels.Everything())
		e, _ := slices.Lister().List(labels.Everything())
		rs := builder.Build(s, e)
		for _, x := range extra {
			x.Add(rs)
		}
		built := time.Since(start)
		st, err := table.Apply(rs)
		if err != nil {
			log.Error("service proxy sync failed; retrying", "err", err)
			retry.Reset(retryAfter)
		} else if st.Rebuilt || st.ChainsAdded+st.ChainsChanged+st.ChainsRemoved+st.Elements > 0 {
			log.Debug("service rules synced", "services", len(s), "chains_added", st.ChainsAdded, "chains_changed", st.ChainsChanged,
				"chains_removed", st.ChainsRemoved, "elements", st.Elements, "rebuilt", st.Rebuilt,
				"build", built.String(), "took", time.Since(start).String())
		}
		for waiting := true; waiting; {
			select {
			case <-ctx.Done():
				return nil
			case <-kick.C:
				waiting = false
			case <-retry.C:
				waiting = false
			case <-check.C:
				if present, err := table.Check(); err == nil && !present {
					log.Warn("skiff's nftables table is gone; programming it again")
					waiting = false
				}
			}
		}
	}
}
