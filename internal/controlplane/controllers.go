package controlplane

import (
	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/clusterroleaggregation"
	"github.com/skiff-sh/skiff/internal/controller/cronjob"
	"github.com/skiff-sh/skiff/internal/controller/csrsigning"
	"github.com/skiff-sh/skiff/internal/controller/daemonset"
	"github.com/skiff-sh/skiff/internal/controller/deployment"
	"github.com/skiff-sh/skiff/internal/controller/disruption"
	"github.com/skiff-sh/skiff/internal/controller/endpoints"
	"github.com/skiff-sh/skiff/internal/controller/endpointslice"
	"github.com/skiff-sh/skiff/internal/controller/gc"
	"github.com/skiff-sh/skiff/internal/controller/job"
	"github.com/skiff-sh/skiff/internal/controller/localpath"
	"github.com/skiff-sh/skiff/internal/controller/namespace"
	"github.com/skiff-sh/skiff/internal/controller/nodeipam"
	"github.com/skiff-sh/skiff/internal/controller/nodelifecycle"
	"github.com/skiff-sh/skiff/internal/controller/podgc"
	"github.com/skiff-sh/skiff/internal/controller/replicaset"
	"github.com/skiff-sh/skiff/internal/controller/resourcequota"
	"github.com/skiff-sh/skiff/internal/controller/rootca"
	"github.com/skiff-sh/skiff/internal/controller/serviceaccount"
	"github.com/skiff-sh/skiff/internal/controller/servicelb"
	"github.com/skiff-sh/skiff/internal/controller/statefulset"
	"github.com/skiff-sh/skiff/internal/controller/tokens"
	"github.com/skiff-sh/skiff/internal/controller/ttlafterfinished"
	"github.com/skiff-sh/skiff/internal/controller/volumebinding"
)

// Controllers is every controller skiff runs, by upstream's names for
// --controllers, with its worker count. This list is the one place a
// controller is registered.
func Controllers() []controller.Registration {
	return []controller.Registration{
		{Name: "clusterrole-aggregation", New: clusterroleaggregation.New, Workers: 1},
		{Name: "cronjob", New: cronjob.New, Workers: 5},
		{Name: "csrsigning", New: csrsigning.New, Workers: 2},
		{Name: "daemonset", New: daemonset.New, Workers: 2},
		{Name: "deployment", New: deployment.New, Workers: 5},
		{Name: "disruption", New: disruption.New, Workers: 2},
		{Name: "endpoint", New: endpoints.New, Workers: 5},
		{Name: "endpointslice", New: endpointslice.New, Workers: 5},
		{Name: "endpointslicemirroring", New: endpointslice.NewMirror, Workers: 2},
		{Name: "garbagecollector", New: gc.New, Workers: 20},
		{Name: "job", New: job.New, Workers: 5},
		{Name: "local-path-provisioner", New: localpath.New, Workers: 2},
		{Name: "namespace", New: namespace.New, Workers: 5},
		{Name: "node-lifecycle", New: nodelifecycle.New, Workers: 1},
		{Name: "nodeipam", New: nodeipam.New, Workers: 1},
		{Name: "persistentvolume-binder", New: volumebinding.New, Workers: 1},
		{Name: "pod-garbage-collector", New: podgc.New, Workers: 1},
		{Name: "replicaset", New: replicaset.New, Workers: 5},
		{Name: "replicationcontroller", New: replicaset.NewReplicationController, Workers: 5},
		{Name: "serviceaccount", New: serviceaccount.New, Workers: 2},
		{Name: "serviceaccount-token", New: tokens.New, Workers: 2},
		{Name: "service-lb", New: servicelb.New, Workers: 2},
		{Name: "resourcequota", New: resourcequota.New, Workers: 2},
		{Name: "root-ca-cert-publisher", New: rootca.New, Workers: 2},
		{Name: "statefulset", New: statefulset.New, Workers: 5},
		{Name: "ttl-after-finished", New: ttlafterfinished.New, Workers: 2},
	}
}
