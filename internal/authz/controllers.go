package authz

import (
	"slices"

	rbacv1 "k8s.io/api/rbac/v1"
)

// ControllerRolePrefix names the ClusterRole (and binding) of each
// controller's ServiceAccount in kube-system, as upstream's
// --use-service-account-credentials: system:controller:<account>.
const ControllerRolePrefix = "system:controller:"

// ControllerNamespace holds the controllers' ServiceAccounts.
const ControllerNamespace = "kube-system"

// eventsRule lets a controller record events, in either API group.
func eventsRule() rbacv1.PolicyRule { return r(eventsW, g("", "events.k8s.io"), "events") }

// controllerRules maps each controller's ServiceAccount to what it may do:
// upstream 1.37's rules for the controllers both have, and the least that
// skiff's own controllers (local-path-provisioner, ingress) need. Informers
// are not the controllers' concern: the controller manager lists and
// watches for them all under its own identity (system:kube-controller-manager),
// so a rule with list/watch here is upstream's, not a need of skiff's.
// Where skiff's controller does a little more than upstream's, the line
// says so.
func controllerRules() map[string][]rbacv1.PolicyRule {
	return map[string][]rbacv1.PolicyRule{
		"certificate-controller": {
			r(v("get", "list", "watch", "delete"), g("certificates.k8s.io"), "certificatesigningrequests"),
			r(v("update"), g("certificates.k8s.io"), "certificatesigningrequests/approval", "certificatesigningrequests/status"),
			// kubelet-serving: skiff's approver also approves a node's
			// serving certificate for its own names (upstream leaves that
			// to an external approver).
			named(r(v("approve"), g("certificates.k8s.io"), "signers"), "kubernetes.io/kube-apiserver-client-kubelet", "kubernetes.io/kubelet-serving"),
			named(r(v("sign"), g("certificates.k8s.io"), "signers"),
				"kubernetes.io/kube-apiserver-client", "kubernetes.io/kube-apiserver-client-kubelet", "kubernetes.io/kubelet-serving", "kubernetes.io/legacy-unknown"),
			r(v("create"), g("authorization.k8s.io"), "subjectaccessreviews"),
			eventsRule(),
		},
		"clusterrole-aggregation-controller": {
			// Writing an aggregated role's rules grants what it aggregates,
			// hence escalate.
			r(v("escalate", "get", "list", "watch", "update", "patch"), g("rbac.authorization.k8s.io"), "clusterroles"),
		},
		"cronjob-controller": {
			r(v("get", "list", "watch", "update"), g("batch"), "cronjobs"),
			r(v("get", "list", "watch", "create", "update", "delete", "patch"), g("batch"), "jobs"),
			r(v("update"), g("batch"), "cronjobs/status", "cronjobs/finalizers"),
			r(v("list", "watch", "delete"), core, "pods"),
			eventsRule(),
		},
		"daemon-set-controller": {
			r(read, g("extensions", "apps"), "daemonsets"),
			r(v("update"), g("extensions", "apps"), "daemonsets/status", "daemonsets/finalizers"),
			r(v("list", "watch"), core, "nodes"),
			r(v("list", "watch", "create", "delete", "patch"), core, "pods"),
			r(v("create"), core, "pods/binding"),
			r(v("get", "list", "watch", "create", "delete", "update", "patch"), g("apps"), "controllerrevisions"),
			eventsRule(),
		},
		"deployment-controller": {
			// patch: skiff's controller records the revision annotation
			// with a merge patch where upstream's updates.
			r(v("get", "list", "watch", "update", "patch"), g("extensions", "apps"), "deployments"),
			r(v("update"), g("extensions", "apps"), "deployments/status", "deployments/finalizers"),
			r(v("get", "list", "watch", "create", "update", "patch", "delete"), g("apps", "extensions"), "replicasets"),
			r(v("get", "list", "watch", "update"), core, "pods"),
			eventsRule(),
		},
		"disruption-controller": {
			r(read, g("extensions", "apps"), "deployments"),
			r(read, g("apps", "extensions"), "replicasets"),
			r(read, core, "replicationcontrollers"),
			r(read, g("policy"), "poddisruptionbudgets"),
			r(read, g("apps"), "statefulsets"),
			r(v("update"), g("policy"), "poddisruptionbudgets/status"),
			r(v("patch", "update"), core, "pods/status"),
			r(v("get"), g("*"), "*/scale"),
			eventsRule(),
		},
		"endpoint-controller": {
			r(read, core, "services", "pods"),
			r(v("get", "list", "watch", "create", "update", "delete"), core, "endpoints"),
			r(v("create"), core, "endpoints/restricted"),
			eventsRule(),
		},
		"endpointslice-controller": {
			r(read, core, "services", "pods", "nodes"),
			r(v("update"), core, "services/finalizers"),
			r(v("get", "list", "watch", "create", "update", "delete"), g("discovery.k8s.io"), "endpointslices"),
			eventsRule(),
		},
		"endpointslicemirroring-controller": {
			r(read, core, "services", "endpoints"),
			r(v("update"), core, "services/finalizers", "endpoints/finalizers"),
			r(v("get", "list", "watch", "create", "update", "delete"), g("discovery.k8s.io"), "endpointslices"),
			eventsRule(),
		},
		"generic-garbage-collector": {
			r(v("get", "list", "watch", "patch", "update", "delete"), g("*"), "*"),
			eventsRule(),
		},
		"ingress-controller": {
			// skiff's built-in ingress proxy publishes its address.
			r(v("update"), g("networking.k8s.io"), "ingresses/status"),
			eventsRule(),
		},
		"job-controller": {
			r(v("get", "list", "watch", "update", "patch"), g("batch"), "jobs"),
			r(v("update"), g("batch"), "jobs/status", "jobs/finalizers"),
			r(v("list", "watch", "create", "delete", "patch"), core, "pods"),
			eventsRule(),
		},
		"local-path-provisioner": {
			// skiff's built-in provisioner (k3s's local-path-provisioner):
			// it makes volumes for claims of its StorageClass.
			r(read, core, "persistentvolumeclaims"),
			r(v("get", "list", "watch", "create"), core, "persistentvolumes"),
			r(read, g("storage.k8s.io"), "storageclasses"),
			eventsRule(),
		},
		"namespace-controller": {
			r(v("get", "list", "watch", "delete"), core, "namespaces"),
			r(v("update"), core, "namespaces/finalize", "namespaces/status"),
			r(v("get", "list", "watch", "delete", "deletecollection"), g("*"), "*"),
		},
		"node-controller": {
			r(v("get", "list", "watch", "update", "delete", "patch"), core, "nodes"),
			r(v("patch", "update"), core, "nodes/status"),
			r(v("patch", "update"), core, "pods/status"),
			r(v("list", "watch", "get", "delete"), core, "pods"),
			eventsRule(),
		},
		"persistent-volume-binder": {
			r(v("get", "list", "watch", "update", "create", "delete"), core, "persistentvolumes"),
			r(v("update"), core, "persistentvolumes/status"),
			r(v("get", "list", "watch", "update"), core, "persistentvolumeclaims"),
			r(v("update"), core, "persistentvolumeclaims/status"),
			r(v("list", "watch", "get", "create", "delete"), core, "pods"),
			r(read, g("storage.k8s.io"), "storageclasses"),
			r(v("list", "watch"), core, "nodes"),
			eventsRule(),
			r(v("watch"), core, "events"),
			r(v("get"), core, "services"),
		},
		"pod-garbage-collector": {
			r(v("list", "watch", "delete"), core, "pods"),
			r(read, core, "nodes"),
			r(v("patch"), core, "pods/status"),
		},
		"pvc-protection-controller": {
			r(v("get", "list", "watch", "update"), core, "persistentvolumeclaims"),
			r(v("list", "watch", "get"), core, "pods"),
			eventsRule(),
		},
		"pv-protection-controller": {
			r(v("get", "list", "watch", "update"), core, "persistentvolumes"),
			eventsRule(),
		},
		"replicaset-controller": {
			r(v("get", "list", "watch", "update"), g("apps", "extensions"), "replicasets"),
			r(v("update"), g("apps", "extensions"), "replicasets/status", "replicasets/finalizers"),
			r(v("list", "watch", "patch", "create", "delete"), core, "pods"),
			eventsRule(),
		},
		"replication-controller": {
			r(v("get", "list", "watch", "update"), core, "replicationcontrollers"),
			r(v("update"), core, "replicationcontrollers/status", "replicationcontrollers/finalizers"),
			r(v("list", "watch", "patch", "create", "delete"), core, "pods"),
			eventsRule(),
		},
		"resourcequota-controller": {
			r(v("list", "watch"), g("*"), "*"),
			r(v("update"), core, "resourcequotas/status"),
			eventsRule(),
		},
		"root-ca-cert-publisher": {
			r(v("create", "update"), core, "configmaps"),
			eventsRule(),
		},
		"service-account-controller": {
			r(v("create"), core, "serviceaccounts"),
			eventsRule(),
		},
		"service-controller": {
			r(read, core, "services"),
			r(v("patch", "update"), core, "services/status"),
			r(v("list", "watch"), core, "nodes"),
			eventsRule(),
		},
		"statefulset-controller": {
			r(v("list", "watch"), core, "pods"),
			r(read, g("apps"), "statefulsets"),
			r(v("update"), g("apps"), "statefulsets/status", "statefulsets/finalizers"),
			r(v("get", "create", "delete", "update", "patch"), core, "pods"),
			r(v("get", "create", "delete", "update", "patch", "list", "watch"), g("apps"), "controllerrevisions"),
			r(v("get", "create", "list", "watch"), core, "persistentvolumeclaims"),
			r(v("update", "delete"), core, "persistentvolumeclaims"),
			r(v("update"), core, "pods/finalizers"),
			eventsRule(),
		},
		"ttl-after-finished-controller": {
			r(v("get", "list", "watch", "delete"), g("batch"), "jobs"),
			eventsRule(),
		},
	}
}

// ControllerAccounts lists the controllers' ServiceAccount names.
func ControllerAccounts() []string {
	var out []string
	for sa := range controllerRules() {
		out = append(out, sa)
	}
	slices.Sort(out)
	return out
}

func controllerClusterRoles() []rbacv1.ClusterRole {
	rules := controllerRules()
	var out []rbacv1.ClusterRole
	for _, sa := range ControllerAccounts() {
		out = append(out, clusterRole(ControllerRolePrefix+sa, nil, rules[sa]...))
	}
	return out
}

func controllerClusterRoleBindings() []rbacv1.ClusterRoleBinding {
	var out []rbacv1.ClusterRoleBinding
	for _, sa := range ControllerAccounts() {
		out = append(out, crb(ControllerRolePrefix+sa, ControllerRolePrefix+sa,
			rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: ControllerNamespace}))
	}
	return out
}
