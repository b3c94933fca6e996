package netpol

import (
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	netlisters "k8s.io/client-go/listers/networking/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/proxy"
)

// Enforcer is the NetworkPolicy source of a node's service proxy table.
type Enforcer struct {
	Node string

	pods       corelisters.PodLister
	namespaces corelisters.NamespaceLister
	policies   netlisters.NetworkPolicyLister
}

var _ proxy.Source = (*Enforcer)(nil)

// Watch reads pods (their addresses and labels, cluster-wide: peers may
// be anywhere), namespaces and policies.
func (e *Enforcer) Watch(f informers.SharedInformerFactory, changed func()) []cache.InformerSynced {
	h := controller.OnChange(func(any) { changed() })
	pods, nss, pols := f.Core().V1().Pods(), f.Core().V1().Namespaces(), f.Networking().V1().NetworkPolicies()
	e.pods, e.namespaces, e.policies = pods.Lister(), nss.Lister(), pols.Lister()
	var synced []cache.InformerSynced
	for _, inf := range []cache.SharedIndexInformer{pods.Informer(), nss.Informer(), pols.Informer()} {
		_, _ = inf.AddEventHandler(h)
		synced = append(synced, inf.HasSynced)
	}
	return synced
}

// Add builds the policy rules from the informers' current state.
func (e *Enforcer) Add(rs *proxy.Ruleset) {
	pols, _ := e.policies.List(labels.Everything())
	if len(pols) == 0 {
		return // nothing isolated: no need to look at every pod
	}
	pods, _ := e.pods.List(labels.Everything())
	nss, _ := e.namespaces.List(labels.Everything())
	Build(Input{Node: e.Node, Pods: pods, Namespaces: nss, Policies: pols}, rs)
}
