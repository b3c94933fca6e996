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
	"github.com/skiff-sh/skiff/internal/controller/volumeprotection"
	"github.com/skiff-sh/skiff/internal/ingress"
)

// Controllers is every controller skiff runs, by upstream's names for
// --controllers, with its worker count and the ServiceAccount it writes as
// (upstream's account names; authz.ControllerAccounts grants each its
// role). This list is the one place a controller is registered.
func Controllers() []controller.Registration {
	return []controller.Registration{
		{Name: "clusterrole-aggregation", New: clusterroleaggregation.New, Workers: 1, ServiceAccount: "clusterrole-aggregation-controller"},
		{Name: "cronjob", New: cronjob.New, Workers: 5, ServiceAccount: "cronjob-controller"},
		{Name: "csrsigning", New: csrsigning.New, Workers: 2, ServiceAccount: "certificate-controller"},
		{Name: "daemonset", New: daemonset.New, Workers: 2, ServiceAccount: "daemon-set-controller"},
		{Name: "deployment", New: deployment.New, Workers: 5, ServiceAccount: "deployment-controller"},
		{Name: "disruption", New: disruption.New, Workers: 2, ServiceAccount: "disruption-controller"},
		{Name: "endpoint", New: endpoints.New, Workers: 5, ServiceAccount: "endpoint-controller"},
		{Name: "endpointslice", New: endpointslice.New, Workers: 5, ServiceAccount: "endpointslice-controller"},
		{Name: "endpointslicemirroring", New: endpointslice.NewMirror, Workers: 2, ServiceAccount: "endpointslicemirroring-controller"},
		{Name: "garbagecollector", New: gc.New, Workers: 20, ServiceAccount: "generic-garbage-collector"},
		{Name: "job", New: job.New, Workers: 5, ServiceAccount: "job-controller"},
		{Name: "local-path-provisioner", New: localpath.New, Workers: 2, ServiceAccount: "local-path-provisioner"},
		{Name: "namespace", New: namespace.New, Workers: 5, ServiceAccount: "namespace-controller"},
		{Name: "node-lifecycle", New: nodelifecycle.New, Workers: 1, ServiceAccount: "node-controller"},
		{Name: "nodeipam", New: nodeipam.New, Workers: 1, ServiceAccount: "node-controller"},
		{Name: "persistentvolume-binder", New: volumebinding.New, Workers: 1, ServiceAccount: "persistent-volume-binder"},
		{Name: "pv-protection", New: volumeprotection.NewVolumes, Workers: 1, ServiceAccount: "pv-protection-controller"},
		{Name: "pvc-protection", New: volumeprotection.NewClaims, Workers: 1, ServiceAccount: "pvc-protection-controller"},
		{Name: "pod-garbage-collector", New: podgc.New, Workers: 1, ServiceAccount: "pod-garbage-collector"},
		{Name: "replicaset", New: replicaset.New, Workers: 5, ServiceAccount: "replicaset-controller"},
		{Name: "replicationcontroller", New: replicaset.NewReplicationController, Workers: 5, ServiceAccount: "replication-controller"},
		{Name: "serviceaccount", New: serviceaccount.New, Workers: 2, ServiceAccount: "service-account-controller"},
		{Name: "serviceaccount-token", New: tokens.New, Workers: 2},
		{Name: "service-lb", New: servicelb.New, Workers: 2, ServiceAccount: "service-controller"},
		{Name: "resourcequota", New: resourcequota.New, Workers: 2, ServiceAccount: "resourcequota-controller"},
		{Name: "root-ca-cert-publisher", New: rootca.New, Workers: 2, ServiceAccount: "root-ca-cert-publisher"},
		{Name: "statefulset", New: statefulset.New, Workers: 5, ServiceAccount: "statefulset-controller"},
		{Name: "ttl-after-finished", New: ttlafterfinished.New, Workers: 2, ServiceAccount: "ttl-after-finished-controller"},
	}
}

// ingressRegistration is the built-in ingress proxy's controller, run when
// the server serves ingress.
func ingressRegistration(settings ingress.Settings) controller.Registration {
	return controller.Registration{Name: "ingress", New: ingress.Factory(settings), Workers: 1, ServiceAccount: "ingress-controller"}
}
