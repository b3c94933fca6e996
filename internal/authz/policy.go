package authz

import (
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The bootstrap policy: upstream's default ClusterRoles and bindings (the
// ones for components skiff has), reconciled at every start (see
// Reconcile). Objects carry upstream's labels and the autoupdate
// annotation, so `kubectl get clusterrole admin -o yaml` reads as on any
// cluster.

// AutoUpdate is the annotation that lets the server bring a default
// object back to its default at start; a user who sets it to "false" keeps
// their changes.
const AutoUpdate = "rbac.authorization.kubernetes.io/autoupdate"

// Aggregation labels of the user-facing roles.
const (
	AggregateToAdmin = "rbac.authorization.k8s.io/aggregate-to-admin"
	AggregateToEdit  = "rbac.authorization.k8s.io/aggregate-to-edit"
	AggregateToView  = "rbac.authorization.k8s.io/aggregate-to-view"
)

// Well-known users and groups.
const (
	SchedulerUser         = "system:kube-scheduler"
	ControllerManagerUser = "system:kube-controller-manager"
	ProxyUser             = "system:kube-proxy"
	Authenticated         = "system:authenticated"
	Unauthenticated       = "system:unauthenticated"
	Anonymous             = "system:anonymous"
	ServiceAccountsGroup  = "system:serviceaccounts"
	BootstrappersGroup    = "system:bootstrappers"
	MonitoringGroup       = "system:monitoring"
)

// Verb sets, as upstream's policy writes them.
var (
	read      = []string{"get", "list", "watch"}
	readWrite = []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
	write     = []string{"create", "update", "patch", "delete", "deletecollection"}
	eventsW   = []string{"create", "update", "patch"}
)

// r is one resource rule: verbs, groups, resources.
func r(verbs []string, groups []string, resources ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{Verbs: verbs, APIGroups: groups, Resources: resources}
}

// named restricts a rule to resourceNames.
func named(rule rbacv1.PolicyRule, names ...string) rbacv1.PolicyRule {
	rule.ResourceNames = names
	return rule
}

// urls is one non-resource rule.
func urls(verbs []string, paths ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{Verbs: verbs, NonResourceURLs: paths}
}

func v(verbs ...string) []string  { return verbs }
func g(groups ...string) []string { return groups }

var core = g("")

func clusterRole(name string, labels map[string]string, rules ...rbacv1.PolicyRule) rbacv1.ClusterRole {
	l := map[string]string{"kubernetes.io/bootstrapping": "rbac-defaults"}
	for k, val := range labels {
		l[k] = val
	}
	return rbacv1.ClusterRole{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l, Annotations: map[string]string{AutoUpdate: "true"}},
		Rules:      rules,
	}
}

func aggregated(name string, labels map[string]string, selectorLabel string) rbacv1.ClusterRole {
	c := clusterRole(name, labels)
	c.AggregationRule = &rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{selectorLabel: "true"}}}}
	return c
}

// NodeRules are what every node agent may do beyond the Node authorizer's
// graph (upstream's system:node role, 1.37), plus what skiff's node agent
// runs besides a kubelet (service proxy, DNS, NetworkPolicy, pod routes,
// local-path volume clean-up): reading the cluster's networking state and
// PersistentVolumes.
func NodeRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		r(v("create"), g("authentication.k8s.io"), "tokenreviews"),
		r(v("create"), g("authorization.k8s.io"), "localsubjectaccessreviews", "subjectaccessreviews"),
		r(read, core, "services"),
		r(v("create", "get", "list", "watch"), core, "nodes"),
		r(v("patch", "update"), core, "nodes/status"),
		r(v("patch", "update"), core, "nodes"),
		r(eventsW, g("", "events.k8s.io"), "events"),
		r(read, core, "pods"),
		r(v("create", "delete"), core, "pods"),
		r(v("patch", "update"), core, "pods/status"),
		r(v("create"), core, "pods/eviction"),
		r(v("get"), core, "endpoints"),
		r(v("create", "get", "list", "watch"), g("certificates.k8s.io"), "certificatesigningrequests"),
		r(v("create", "delete", "get", "patch", "update"), g("coordination.k8s.io"), "leases"),
		r(v("get"), g("storage.k8s.io"), "volumeattachments"),
		r(read, g("storage.k8s.io"), "csidrivers"),
		r(v("create", "delete", "get", "patch", "update"), g("storage.k8s.io"), "csinodes"),
		r(read, g("node.k8s.io"), "runtimeclasses"),
		r(read, g("certificates.k8s.io"), "clustertrustbundles"),
		r(v("create", "get", "list", "watch"), g("certificates.k8s.io"), "podcertificaterequests"),
		// skiff's node agent runs the service proxy, DNS, NetworkPolicy
		// and pod routes (upstream: kube-proxy's system:node-proxier,
		// CoreDNS's role, a CNI's) and cleans up local-path volumes.
		r(v("list", "watch"), g("discovery.k8s.io"), "endpointslices"),
		r(v("list", "watch"), core, "namespaces", "persistentvolumes"),
		r(v("list", "watch"), g("networking.k8s.io"), "networkpolicies"),
	}
}

// ClusterRoles are the default ClusterRoles.
func ClusterRoles() []rbacv1.ClusterRole {
	toAdmin := map[string]string{AggregateToAdmin: "true"}
	toEdit := map[string]string{AggregateToEdit: "true"}
	toView := map[string]string{AggregateToView: "true"}
	return append([]rbacv1.ClusterRole{
		clusterRole("cluster-admin", nil, r(v("*"), g("*"), "*"), urls(v("*"), "*")),
		aggregated("admin", nil, AggregateToAdmin),
		aggregated("edit", toAdmin, AggregateToEdit),
		aggregated("view", toEdit, AggregateToView),
		clusterRole("system:aggregate-to-admin", toAdmin,
			r(v("create"), g("authorization.k8s.io"), "localsubjectaccessreviews"),
			r(readWrite, g("rbac.authorization.k8s.io"), "rolebindings", "roles"),
		),
		clusterRole("system:aggregate-to-edit", toEdit,
			r(read, core, "pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets", "services/proxy"),
			r(v("impersonate"), core, "serviceaccounts"),
			r(write, core, "pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"),
			r(v("create"), core, "pods/eviction"),
			r(write, core, "configmaps", "events", "persistentvolumeclaims", "replicationcontrollers", "replicationcontrollers/scale", "secrets", "serviceaccounts", "services", "services/proxy"),
			r(v("create"), core, "serviceaccounts/token"),
			r(write, g("apps"), "daemonsets", "deployments", "deployments/rollback", "deployments/scale", "replicasets", "replicasets/scale", "statefulsets", "statefulsets/scale"),
			r(write, g("autoscaling"), "horizontalpodautoscalers"),
			r(write, g("batch"), "cronjobs", "jobs"),
			r(write, g("extensions"), "daemonsets", "deployments", "deployments/rollback", "deployments/scale", "ingresses", "networkpolicies", "replicasets", "replicasets/scale", "replicationcontrollers/scale"),
			r(write, g("policy"), "poddisruptionbudgets"),
			r(write, g("networking.k8s.io"), "ingresses", "networkpolicies"),
			r(readWrite, g("coordination.k8s.io"), "leases"),
		),
		clusterRole("system:aggregate-to-view", toView,
			r(read, core, "configmaps", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status", "pods", "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services", "services/status"),
			r(read, core, "bindings", "events", "limitranges", "namespaces/status", "pods/log", "pods/status", "replicationcontrollers/status", "resourcequotas", "resourcequotas/status"),
			r(read, core, "namespaces"),
			r(read, g("discovery.k8s.io"), "endpointslices"),
			r(read, g("apps"), "controllerrevisions", "daemonsets", "daemonsets/status", "deployments", "deployments/scale", "deployments/status", "replicasets", "replicasets/scale", "replicasets/status", "statefulsets", "statefulsets/scale", "statefulsets/status"),
			r(read, g("autoscaling"), "horizontalpodautoscalers", "horizontalpodautoscalers/status"),
			r(read, g("batch"), "cronjobs", "cronjobs/status", "jobs", "jobs/status"),
			r(read, g("extensions"), "daemonsets", "daemonsets/status", "deployments", "deployments/scale", "deployments/status", "ingresses", "ingresses/status", "networkpolicies", "replicasets", "replicasets/scale", "replicasets/status", "replicationcontrollers/scale"),
			r(read, g("policy"), "poddisruptionbudgets", "poddisruptionbudgets/status"),
			r(read, g("networking.k8s.io"), "ingresses", "ingresses/status", "networkpolicies"),
		),
		clusterRole("system:auth-delegator", nil,
			r(v("create"), g("authentication.k8s.io"), "tokenreviews"),
			r(v("create"), g("authorization.k8s.io"), "subjectaccessreviews"),
		),
		clusterRole("system:basic-user", nil,
			r(v("create"), g("authorization.k8s.io"), "selfsubjectaccessreviews", "selfsubjectrulesreviews"),
			r(v("create"), g("authentication.k8s.io"), "selfsubjectreviews"),
		),
		clusterRole("system:discovery", nil,
			urls(v("get"), "/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz", "/version", "/version/"),
		),
		clusterRole("system:public-info-viewer", nil,
			urls(v("get"), "/healthz", "/livez", "/readyz", "/version", "/version/"),
		),
		clusterRole("system:monitoring", nil,
			urls(v("get"), "/healthz", "/healthz/*", "/livez", "/livez/*", "/metrics", "/metrics/slis", "/readyz", "/readyz/*"),
		),
		clusterRole("system:service-account-issuer-discovery", nil,
			urls(v("get"), "/.well-known/openid-configuration", "/openid/v1/jwks"),
		),
		clusterRole("system:node", nil, NodeRules()...),
		clusterRole("system:node-bootstrapper", nil,
			r(v("create", "get", "list", "watch"), g("certificates.k8s.io"), "certificatesigningrequests"),
		),
		clusterRole("system:node-proxier", nil,
			r(v("list", "watch"), core, "endpoints", "services"),
			r(read, core, "nodes"),
			r(eventsW, g("", "events.k8s.io"), "events"),
			r(v("list", "watch"), g("discovery.k8s.io"), "endpointslices"),
		),
		clusterRole("system:kube-dns", nil,
			r(v("list", "watch"), core, "endpoints", "services"),
		),
		clusterRole("system:kube-scheduler", nil,
			r(eventsW, g("", "events.k8s.io"), "events"),
			r(v("create"), g("coordination.k8s.io"), "leases"),
			named(r(v("get", "update"), g("coordination.k8s.io"), "leases"), "kube-scheduler"),
			r(read, core, "nodes"),
			r(v("delete", "get", "list", "watch"), core, "pods"),
			r(v("create"), core, "bindings", "pods/binding"),
			r(v("patch", "update"), core, "pods/status"),
			r(read, core, "replicationcontrollers", "services"),
			r(read, g("apps", "extensions"), "replicasets"),
			r(read, g("apps"), "statefulsets"),
			r(read, g("policy"), "poddisruptionbudgets"),
			r(read, core, "persistentvolumeclaims", "persistentvolumes"),
			r(v("create"), g("authentication.k8s.io"), "tokenreviews"),
			r(v("create"), g("authorization.k8s.io"), "subjectaccessreviews"),
			r(read, g("storage.k8s.io"), "csinodes"),
			r(read, core, "namespaces"),
			r(read, g("storage.k8s.io"), "csidrivers"),
			r(read, g("storage.k8s.io"), "csistoragecapacities"),
		),
		clusterRole("system:volume-scheduler", nil,
			r(v("get", "list", "patch", "update", "watch"), core, "persistentvolumes"),
			r(read, g("storage.k8s.io"), "storageclasses"),
			r(v("get", "list", "patch", "update", "watch"), core, "persistentvolumeclaims"),
		),
		clusterRole("system:kube-controller-manager", nil,
			r(eventsW, g("", "events.k8s.io"), "events"),
			r(v("create"), g("coordination.k8s.io"), "leases"),
			named(r(v("get", "update"), g("coordination.k8s.io"), "leases"), "kube-controller-manager"),
			r(v("create"), core, "secrets", "serviceaccounts"),
			r(v("delete"), core, "secrets"),
			r(v("get"), core, "configmaps", "namespaces", "secrets", "serviceaccounts"),
			r(v("update"), core, "secrets", "serviceaccounts"),
			r(v("create"), g("authentication.k8s.io"), "tokenreviews"),
			r(v("create"), g("authorization.k8s.io"), "subjectaccessreviews"),
			r(v("list", "watch"), g("*"), "*"),
			r(v("create"), core, "serviceaccounts/token"),
		),
		clusterRole("system:kubelet-api-admin", nil,
			r(read, core, "nodes"),
			r(v("proxy"), core, "nodes"),
			r(v("*"), core, "nodes/log", "nodes/metrics", "nodes/proxy", "nodes/stats"),
		),
		clusterRole("system:certificates.k8s.io:certificatesigningrequests:nodeclient", nil,
			r(v("create"), g("certificates.k8s.io"), "certificatesigningrequests/nodeclient")),
		clusterRole("system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", nil,
			r(v("create"), g("certificates.k8s.io"), "certificatesigningrequests/selfnodeclient")),
		clusterRole("system:certificates.k8s.io:kube-apiserver-client-approver", nil,
			named(r(v("approve"), g("certificates.k8s.io"), "signers"), "kubernetes.io/kube-apiserver-client")),
		clusterRole("system:certificates.k8s.io:kube-apiserver-client-kubelet-approver", nil,
			named(r(v("approve"), g("certificates.k8s.io"), "signers"), "kubernetes.io/kube-apiserver-client-kubelet")),
		clusterRole("system:certificates.k8s.io:kubelet-serving-approver", nil,
			named(r(v("approve"), g("certificates.k8s.io"), "signers"), "kubernetes.io/kubelet-serving")),
		clusterRole("system:certificates.k8s.io:legacy-unknown-approver", nil,
			named(r(v("approve"), g("certificates.k8s.io"), "signers"), "kubernetes.io/legacy-unknown")),
	}, controllerClusterRoles()...)
}

func crb(name, role string, subjects ...rbacv1.Subject) rbacv1.ClusterRoleBinding {
	return rbacv1.ClusterRoleBinding{
		TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/bootstrapping": "rbac-defaults"},
			Annotations: map[string]string{AutoUpdate: "true"}},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects: subjects,
	}
}

func user(name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}
}

func group(name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: name}
}

// ClusterRoleBindings are the default ClusterRoleBindings.
func ClusterRoleBindings() []rbacv1.ClusterRoleBinding {
	return append([]rbacv1.ClusterRoleBinding{
		crb("cluster-admin", "cluster-admin", group(Masters)),
		crb("system:basic-user", "system:basic-user", group(Authenticated)),
		crb("system:discovery", "system:discovery", group(Authenticated)),
		crb("system:public-info-viewer", "system:public-info-viewer", group(Authenticated), group(Unauthenticated)),
		crb("system:monitoring", "system:monitoring", group(MonitoringGroup)),
		crb("system:service-account-issuer-discovery", "system:service-account-issuer-discovery", group(ServiceAccountsGroup)),
		crb("system:kube-scheduler", "system:kube-scheduler", user(SchedulerUser)),
		crb("system:volume-scheduler", "system:volume-scheduler", user(SchedulerUser)),
		crb("system:kube-controller-manager", "system:kube-controller-manager", user(ControllerManagerUser)),
		crb("system:kube-dns", "system:kube-dns", rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: "kube-dns", Namespace: "kube-system"}),
		crb("system:node-proxier", "system:node-proxier", user(ProxyUser)),
		// Upstream binds system:node to nobody: the Node authorizer
		// applies its rules to nodes itself.
		crb("system:node", "system:node"),
		crb("system:node-bootstrapper", "system:node-bootstrapper", group(BootstrappersGroup)),
		crb("system:certificates.k8s.io:certificatesigningrequests:nodeclient", "system:certificates.k8s.io:certificatesigningrequests:nodeclient", group(BootstrappersGroup)),
		crb("system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", group(NodesGroup)),
	}, controllerClusterRoleBindings()...)
}

// Retired names default ClusterRoles and ClusterRoleBindings of earlier
// skiff versions that the bootstrap reconciler deletes: a grant that no
// longer exists in the policy must not outlive an upgrade.
// skiff:controller-manager held every controller's rights under one
// identity before each controller had its own ServiceAccount.
var Retired = []string{"skiff:controller-manager"}

// Roles are the default Roles (all in kube-system): who may read the
// ConfigMap that tells aggregated API servers whom to trust.
func Roles() []rbacv1.Role {
	cr := clusterRole("extension-apiserver-authentication-reader", nil,
		named(r(v("get", "list", "watch"), core, "configmaps"), "extension-apiserver-authentication"))
	return []rbacv1.Role{{TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
		ObjectMeta: withNamespace(cr.ObjectMeta, "kube-system"), Rules: cr.Rules}}
}

// RoleBindings are the default RoleBindings (all in kube-system), as
// upstream binds the reader Role to its controller manager and scheduler.
func RoleBindings() []rbacv1.RoleBinding {
	b := crb("system::extension-apiserver-authentication-reader", "extension-apiserver-authentication-reader", user(ControllerManagerUser), user(SchedulerUser))
	return []rbacv1.RoleBinding{{TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
		ObjectMeta: withNamespace(b.ObjectMeta, "kube-system"), RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: b.RoleRef.Name}, Subjects: b.Subjects}}
}

func withNamespace(m metav1.ObjectMeta, ns string) metav1.ObjectMeta {
	m.Namespace = ns
	return m
}
