package netpol

import (
	"context"
	"time"

	"github.com/skiff-sh/skiff/internal/work"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	netlisters "k8s.io/client-go/listers/networking/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-sh/skiff/internal/proxy"
)

// syncTimeout bounds the wait for the pod and namespace caches when the
// first policy appears.
const syncTimeout = time.Minute

// Enforcer is the NetworkPolicy source of a node's service proxy table.
// It watches only NetworkPolicies until one exists: every pod of the
// cluster (peers may be anywhere) is a lot to hold for nothing.
type Enforcer struct {
	Node string

	ctx      context.Context
	factory  informers.SharedInformerFactory
	changed  func()
	policies netlisters.NetworkPolicyLister

	pods       corelisters.PodLister
	namespaces corelisters.NamespaceLister
	synced     []cache.InformerSynced
}

var _ proxy.Source = (*Enforcer)(nil)

// Watch reads NetworkPolicies; pods and namespaces follow with the first.
func (e *Enforcer) Watch(ctx context.Context, f informers.SharedInformerFactory, changed func()) []cache.InformerSynced {
	e.ctx, e.factory, e.changed = ctx, f, changed
	pols := f.Networking().V1().NetworkPolicies()
	e.policies = pols.Lister()
	_, _ = pols.Informer().AddEventHandler(work.OnChange(func(any) { changed() }))
	return []cache.InformerSynced{pols.Informer().HasSynced}
}

// Add builds the policy rules from the informers' current state.
func (e *Enforcer) Add(rs *proxy.Ruleset) {
	pols, _ := e.policies.List(labels.Everything())
	if len(pols) == 0 {
		return
	}
	if e.pods == nil {
		e.startPeers()
	}
	ctx, cancel := context.WithTimeout(e.ctx, syncTimeout)
	defer cancel()
	if !cache.WaitForCacheSync(ctx.Done(), e.synced...) {
		// Not listed yet (the API is unreachable): the pods' isolation
		// needs them. Their initial events trigger the next sync.
		return
	}
	pods, _ := e.pods.List(labels.Everything())
	nss, _ := e.namespaces.List(labels.Everything())
	Build(Input{Node: e.Node, Pods: pods, Namespaces: nss, Policies: pols}, rs)
}

// startPeers starts the pod and namespace informers.
func (e *Enforcer) startPeers() {
	pods, nss := e.factory.Core().V1().Pods(), e.factory.Core().V1().Namespaces()
	e.pods, e.namespaces = pods.Lister(), nss.Lister()
	h := work.OnChange(func(any) { e.changed() })
	_, _ = pods.Informer().AddEventHandler(h)
	_, _ = nss.Informer().AddEventHandler(h)
	e.synced = []cache.InformerSynced{pods.Informer().HasSynced, nss.Informer().HasSynced}
	e.factory.Start(e.ctx.Done())
}
