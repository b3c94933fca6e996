package registry

import (
	"net/netip"

	authnv1 "k8s.io/api/authentication/v1"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	networkingv1 "k8s.io/api/networking/v1"
	nodev1 "k8s.io/api/node/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	resourcev1 "k8s.io/api/resource/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	storagev1 "k8s.io/api/storage/v1"
	storagemigrationv1 "k8s.io/api/storagemigration/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/api/validation/path"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// def builds a Resource with the fields every entry needs.
func def[T runtime.Object, L runtime.Object](gv schema.GroupVersion, plural, kind string, namespaced bool, newT func() T, newL func() L) *Resource {
	return &Resource{
		GVR: gv.WithResource(plural), Kind: kind, Namespaced: namespaced,
		SingularName:  lower(kind),
		StoragePrefix: storagePrefix(gv.Group, plural),
		New:           func() runtime.Object { return newT() },
		NewList:       func() runtime.Object { return newL() },
	}
}

// storagePrefix follows upstream's etcd layout: core and most groups use the
// plural name; a few kept historical names.
func storagePrefix(group, plural string) string {
	switch {
	case group == "" && plural == "nodes":
		return "minions"
	case group == "" && plural == "services":
		return "services/specs"
	case group == "" && plural == "endpoints":
		return "services/endpoints"
	case group == "" && plural == "replicationcontrollers":
		return "controllers"
	case group == "autoscaling":
		return "horizontalpodautoscalers"
	case group == "events.k8s.io":
		return "events"
	case group == "" || group == "apps" || group == "batch" || group == "autoscaling" || group == "policy":
		return plural
	}
	return group + "/" + plural
}

func with(r *Resource, f func(*Resource)) *Resource { f(r); return r }

// Catalog lists every built-in resource skiff serves, with its strategy.
func Catalog() []*Resource {
	core, apps, batch := corev1.SchemeGroupVersion, appsv1.SchemeGroupVersion, batchv1.SchemeGroupVersion
	dnsLabel := apivalidation.NameIsDNSLabel
	return []*Resource{
		with(def(core, "pods", "Pod", true, func() *corev1.Pod { return &corev1.Pod{} }, func() *corev1.PodList { return &corev1.PodList{} }), podStrategy),
		with(def(core, "nodes", "Node", false, func() *corev1.Node { return &corev1.Node{} }, func() *corev1.NodeList { return &corev1.NodeList{} }), nodeStrategy),
		with(def(core, "namespaces", "Namespace", false, func() *corev1.Namespace { return &corev1.Namespace{} }, func() *corev1.NamespaceList { return &corev1.NamespaceList{} }), func(r *Resource) { namespaceStrategy(r); r.NameFn = dnsLabel }),
		with(def(core, "services", "Service", true, func() *corev1.Service { return &corev1.Service{} }, func() *corev1.ServiceList { return &corev1.ServiceList{} }), serviceStrategy),
		with(def(core, "endpoints", "Endpoints", true, func() *corev1.Endpoints { return &corev1.Endpoints{} }, func() *corev1.EndpointsList { return &corev1.EndpointsList{} }), func(r *Resource) {
			r.ShortNames = []string{"ep"}
			r.SingularName = "endpoints"
			r.Columns, r.Row = endpointsTable()
		}),
		with(def(core, "configmaps", "ConfigMap", true, func() *corev1.ConfigMap { return &corev1.ConfigMap{} }, func() *corev1.ConfigMapList { return &corev1.ConfigMapList{} }), configMapStrategy),
		with(def(core, "secrets", "Secret", true, func() *corev1.Secret { return &corev1.Secret{} }, func() *corev1.SecretList { return &corev1.SecretList{} }), secretStrategy),
		with(def(core, "serviceaccounts", "ServiceAccount", true, func() *corev1.ServiceAccount { return &corev1.ServiceAccount{} }, func() *corev1.ServiceAccountList { return &corev1.ServiceAccountList{} }), func(r *Resource) {
			r.ShortNames = []string{"sa"}
			r.Columns, r.Row = serviceAccountTable()
			addAction(r, "token", tokenAction)
		}),
		with(def(core, "events", "Event", true, func() *corev1.Event { return &corev1.Event{} }, func() *corev1.EventList { return &corev1.EventList{} }), eventStrategy),
		with(def(core, "persistentvolumes", "PersistentVolume", false, func() *corev1.PersistentVolume { return &corev1.PersistentVolume{} }, func() *corev1.PersistentVolumeList { return &corev1.PersistentVolumeList{} }), pvStrategy),
		with(def(core, "persistentvolumeclaims", "PersistentVolumeClaim", true, func() *corev1.PersistentVolumeClaim { return &corev1.PersistentVolumeClaim{} }, func() *corev1.PersistentVolumeClaimList { return &corev1.PersistentVolumeClaimList{} }), pvcStrategy),
		with(def(core, "replicationcontrollers", "ReplicationController", true, func() *corev1.ReplicationController { return &corev1.ReplicationController{} }, func() *corev1.ReplicationControllerList { return &corev1.ReplicationControllerList{} }), rcStrategy),
		with(def(core, "resourcequotas", "ResourceQuota", true, func() *corev1.ResourceQuota { return &corev1.ResourceQuota{} }, func() *corev1.ResourceQuotaList { return &corev1.ResourceQuotaList{} }), func(r *Resource) { r.ShortNames = []string{"quota"}; r.Status = true; r.Columns, r.Row = quotaTable() }),
		with(def(core, "limitranges", "LimitRange", true, func() *corev1.LimitRange { return &corev1.LimitRange{} }, func() *corev1.LimitRangeList { return &corev1.LimitRangeList{} }), limitRangeStrategy),
		with(def(core, "podtemplates", "PodTemplate", true, func() *corev1.PodTemplate { return &corev1.PodTemplate{} }, func() *corev1.PodTemplateList { return &corev1.PodTemplateList{} }), podTemplateStrategy),
		with(def(core, "bindings", "Binding", true, func() *corev1.Binding { return &corev1.Binding{} }, func() *corev1.PodList { return &corev1.PodList{} }), func(r *Resource) { r.Verbs = []string{"create"}; addAction(r, "", bindingAction) }),

		with(def(apps, "deployments", "Deployment", true, func() *appsv1.Deployment { return &appsv1.Deployment{} }, func() *appsv1.DeploymentList { return &appsv1.DeploymentList{} }), deploymentStrategy),
		with(def(apps, "replicasets", "ReplicaSet", true, func() *appsv1.ReplicaSet { return &appsv1.ReplicaSet{} }, func() *appsv1.ReplicaSetList { return &appsv1.ReplicaSetList{} }), replicaSetStrategy),
		with(def(apps, "statefulsets", "StatefulSet", true, func() *appsv1.StatefulSet { return &appsv1.StatefulSet{} }, func() *appsv1.StatefulSetList { return &appsv1.StatefulSetList{} }), statefulSetStrategy),
		with(def(apps, "daemonsets", "DaemonSet", true, func() *appsv1.DaemonSet { return &appsv1.DaemonSet{} }, func() *appsv1.DaemonSetList { return &appsv1.DaemonSetList{} }), daemonSetStrategy),
		with(def(apps, "controllerrevisions", "ControllerRevision", true, func() *appsv1.ControllerRevision { return &appsv1.ControllerRevision{} }, func() *appsv1.ControllerRevisionList { return &appsv1.ControllerRevisionList{} }), func(r *Resource) { r.Columns, r.Row = controllerRevisionTable() }),

		with(def(batch, "jobs", "Job", true, func() *batchv1.Job { return &batchv1.Job{} }, func() *batchv1.JobList { return &batchv1.JobList{} }), jobStrategy),
		with(def(batch, "cronjobs", "CronJob", true, func() *batchv1.CronJob { return &batchv1.CronJob{} }, func() *batchv1.CronJobList { return &batchv1.CronJobList{} }), cronJobStrategy),

		with(def(coordinationv1.SchemeGroupVersion, "leases", "Lease", true, func() *coordinationv1.Lease { return &coordinationv1.Lease{} }, func() *coordinationv1.LeaseList { return &coordinationv1.LeaseList{} }), func(r *Resource) { r.Columns, r.Row = leaseTable() }),
		with(def(discoveryv1.SchemeGroupVersion, "endpointslices", "EndpointSlice", true, func() *discoveryv1.EndpointSlice { return &discoveryv1.EndpointSlice{} }, func() *discoveryv1.EndpointSliceList { return &discoveryv1.EndpointSliceList{} }), endpointSliceStrategy),
		with(def(eventsv1.SchemeGroupVersion, "events", "Event", true, func() *eventsv1.Event { return &eventsv1.Event{} }, func() *eventsv1.EventList { return &eventsv1.EventList{} }), eventsV1Strategy),

		with(def(networkingv1.SchemeGroupVersion, "ingresses", "Ingress", true, func() *networkingv1.Ingress { return &networkingv1.Ingress{} }, func() *networkingv1.IngressList { return &networkingv1.IngressList{} }), ingressStrategy),
		with(def(networkingv1.SchemeGroupVersion, "ingressclasses", "IngressClass", false, func() *networkingv1.IngressClass { return &networkingv1.IngressClass{} }, func() *networkingv1.IngressClassList { return &networkingv1.IngressClassList{} }), func(r *Resource) { r.Columns, r.Row = ingressClassTable() }),
		with(def(networkingv1.SchemeGroupVersion, "networkpolicies", "NetworkPolicy", true, func() *networkingv1.NetworkPolicy { return &networkingv1.NetworkPolicy{} }, func() *networkingv1.NetworkPolicyList { return &networkingv1.NetworkPolicyList{} }), networkPolicyStrategy),

		with(def(authorizationv1.SchemeGroupVersion, "selfsubjectaccessreviews", "SelfSubjectAccessReview", false, func() *authorizationv1.SelfSubjectAccessReview { return &authorizationv1.SelfSubjectAccessReview{} }, func() *authorizationv1.SelfSubjectAccessReview { return &authorizationv1.SelfSubjectAccessReview{} }), func(r *Resource) { reviewResource(r, selfSubjectAccessReview) }),
		with(def(authorizationv1.SchemeGroupVersion, "subjectaccessreviews", "SubjectAccessReview", false, func() *authorizationv1.SubjectAccessReview { return &authorizationv1.SubjectAccessReview{} }, func() *authorizationv1.SubjectAccessReview { return &authorizationv1.SubjectAccessReview{} }), func(r *Resource) { reviewResource(r, subjectAccessReview) }),
		with(def(authorizationv1.SchemeGroupVersion, "localsubjectaccessreviews", "LocalSubjectAccessReview", true, func() *authorizationv1.LocalSubjectAccessReview { return &authorizationv1.LocalSubjectAccessReview{} }, func() *authorizationv1.LocalSubjectAccessReview { return &authorizationv1.LocalSubjectAccessReview{} }), func(r *Resource) { reviewResource(r, localSubjectAccessReview) }),
		with(def(authorizationv1.SchemeGroupVersion, "selfsubjectrulesreviews", "SelfSubjectRulesReview", false, func() *authorizationv1.SelfSubjectRulesReview { return &authorizationv1.SelfSubjectRulesReview{} }, func() *authorizationv1.SelfSubjectRulesReview { return &authorizationv1.SelfSubjectRulesReview{} }), func(r *Resource) { reviewResource(r, selfSubjectRulesReview) }),
		with(def(authnv1.SchemeGroupVersion, "tokenreviews", "TokenReview", false, func() *authnv1.TokenReview { return &authnv1.TokenReview{} }, func() *authnv1.TokenReview { return &authnv1.TokenReview{} }), func(r *Resource) { reviewResource(r, tokenReview) }),
		with(def(authnv1.SchemeGroupVersion, "selfsubjectreviews", "SelfSubjectReview", false, func() *authnv1.SelfSubjectReview { return &authnv1.SelfSubjectReview{} }, func() *authnv1.SelfSubjectReview { return &authnv1.SelfSubjectReview{} }), func(r *Resource) { reviewResource(r, selfSubjectReview) }),
		with(def(rbacv1.SchemeGroupVersion, "roles", "Role", true, func() *rbacv1.Role { return &rbacv1.Role{} }, func() *rbacv1.RoleList { return &rbacv1.RoleList{} }), func(r *Resource) {
			r.NameFn = pathSegmentName
			r.Guard = guardRole
			r.Columns, r.Row = createdAtTable()
		}),
		with(def(rbacv1.SchemeGroupVersion, "rolebindings", "RoleBinding", true, func() *rbacv1.RoleBinding { return &rbacv1.RoleBinding{} }, func() *rbacv1.RoleBindingList { return &rbacv1.RoleBindingList{} }), func(r *Resource) {
			r.NameFn = pathSegmentName
			roleBindingStrategy(r)
			r.Columns, r.Row = roleBindingTable()
		}),
		with(def(rbacv1.SchemeGroupVersion, "clusterroles", "ClusterRole", false, func() *rbacv1.ClusterRole { return &rbacv1.ClusterRole{} }, func() *rbacv1.ClusterRoleList { return &rbacv1.ClusterRoleList{} }), func(r *Resource) {
			r.NameFn = pathSegmentName
			r.Guard = guardRole
			r.Columns, r.Row = createdAtTable()
		}),
		with(def(rbacv1.SchemeGroupVersion, "clusterrolebindings", "ClusterRoleBinding", false, func() *rbacv1.ClusterRoleBinding { return &rbacv1.ClusterRoleBinding{} }, func() *rbacv1.ClusterRoleBindingList { return &rbacv1.ClusterRoleBindingList{} }), func(r *Resource) {
			r.NameFn = pathSegmentName
			clusterRoleBindingStrategy(r)
			r.Columns, r.Row = roleBindingTable()
		}),

		with(def(storagev1.SchemeGroupVersion, "storageclasses", "StorageClass", false, func() *storagev1.StorageClass { return &storagev1.StorageClass{} }, func() *storagev1.StorageClassList { return &storagev1.StorageClassList{} }), storageClassStrategy),
		with(def(storagev1.SchemeGroupVersion, "volumeattachments", "VolumeAttachment", false, func() *storagev1.VolumeAttachment { return &storagev1.VolumeAttachment{} }, func() *storagev1.VolumeAttachmentList { return &storagev1.VolumeAttachmentList{} }), func(r *Resource) { r.Status = true }),
		with(def(storagev1.SchemeGroupVersion, "csidrivers", "CSIDriver", false, func() *storagev1.CSIDriver { return &storagev1.CSIDriver{} }, func() *storagev1.CSIDriverList { return &storagev1.CSIDriverList{} }), noStrategy),
		with(def(storagev1.SchemeGroupVersion, "csinodes", "CSINode", false, func() *storagev1.CSINode { return &storagev1.CSINode{} }, func() *storagev1.CSINodeList { return &storagev1.CSINodeList{} }), noStrategy),

		with(def(schedulingv1.SchemeGroupVersion, "priorityclasses", "PriorityClass", false, func() *schedulingv1.PriorityClass { return &schedulingv1.PriorityClass{} }, func() *schedulingv1.PriorityClassList { return &schedulingv1.PriorityClassList{} }), priorityClassStrategy),
		with(def(policyv1.SchemeGroupVersion, "poddisruptionbudgets", "PodDisruptionBudget", true, func() *policyv1.PodDisruptionBudget { return &policyv1.PodDisruptionBudget{} }, func() *policyv1.PodDisruptionBudgetList { return &policyv1.PodDisruptionBudgetList{} }), pdbStrategy),
		with(def(autoscalingv2.SchemeGroupVersion, "horizontalpodautoscalers", "HorizontalPodAutoscaler", true, func() *autoscalingv2.HorizontalPodAutoscaler { return &autoscalingv2.HorizontalPodAutoscaler{} }, func() *autoscalingv2.HorizontalPodAutoscalerList { return &autoscalingv2.HorizontalPodAutoscalerList{} }), hpaV2Strategy),
		with(def(autoscalingv1.SchemeGroupVersion, "horizontalpodautoscalers", "HorizontalPodAutoscaler", true, func() *autoscalingv1.HorizontalPodAutoscaler { return &autoscalingv1.HorizontalPodAutoscaler{} }, func() *autoscalingv1.HorizontalPodAutoscalerList { return &autoscalingv1.HorizontalPodAutoscalerList{} }), hpaV1Strategy),
		with(def(certificatesv1.SchemeGroupVersion, "certificatesigningrequests", "CertificateSigningRequest", false, func() *certificatesv1.CertificateSigningRequest { return &certificatesv1.CertificateSigningRequest{} }, func() *certificatesv1.CertificateSigningRequestList {
			return &certificatesv1.CertificateSigningRequestList{}
		}), csrStrategy),
		with(def(storagev1.SchemeGroupVersion, "csistoragecapacities", "CSIStorageCapacity", true, func() *storagev1.CSIStorageCapacity { return &storagev1.CSIStorageCapacity{} }, func() *storagev1.CSIStorageCapacityList { return &storagev1.CSIStorageCapacityList{} }), noStrategy),
		with(def(storagev1.SchemeGroupVersion, "volumeattributesclasses", "VolumeAttributesClass", false, func() *storagev1.VolumeAttributesClass { return &storagev1.VolumeAttributesClass{} }, func() *storagev1.VolumeAttributesClassList { return &storagev1.VolumeAttributesClassList{} }), func(r *Resource) { r.ShortNames = []string{"vac"} }),
		with(def(storagemigrationv1.SchemeGroupVersion, "storageversionmigrations", "StorageVersionMigration", false, func() *storagemigrationv1.StorageVersionMigration {
			return &storagemigrationv1.StorageVersionMigration{}
		}, func() *storagemigrationv1.StorageVersionMigrationList {
			return &storagemigrationv1.StorageVersionMigrationList{}
		}), func(r *Resource) { r.Status = true }),

		with(def(networkingv1.SchemeGroupVersion, "servicecidrs", "ServiceCIDR", false, func() *networkingv1.ServiceCIDR { return &networkingv1.ServiceCIDR{} }, func() *networkingv1.ServiceCIDRList { return &networkingv1.ServiceCIDRList{} }), func(r *Resource) { r.Status = true }),
		with(def(networkingv1.SchemeGroupVersion, "ipaddresses", "IPAddress", false, func() *networkingv1.IPAddress { return &networkingv1.IPAddress{} }, func() *networkingv1.IPAddressList { return &networkingv1.IPAddressList{} }), func(r *Resource) { r.ShortNames = []string{"ip"}; r.NameFn = ipAddressName }),

		// Dynamic resource allocation: stored, validated by type and
		// watched; the scheduler leaves pods with claims pending.
		with(def(resourcev1.SchemeGroupVersion, "deviceclasses", "DeviceClass", false, func() *resourcev1.DeviceClass { return &resourcev1.DeviceClass{} }, func() *resourcev1.DeviceClassList { return &resourcev1.DeviceClassList{} }), noStrategy),
		with(def(resourcev1.SchemeGroupVersion, "resourceclaims", "ResourceClaim", true, func() *resourcev1.ResourceClaim { return &resourcev1.ResourceClaim{} }, func() *resourcev1.ResourceClaimList { return &resourcev1.ResourceClaimList{} }), func(r *Resource) { r.Status = true }),
		with(def(resourcev1.SchemeGroupVersion, "resourceclaimtemplates", "ResourceClaimTemplate", true, func() *resourcev1.ResourceClaimTemplate { return &resourcev1.ResourceClaimTemplate{} }, func() *resourcev1.ResourceClaimTemplateList { return &resourcev1.ResourceClaimTemplateList{} }), noStrategy),
		with(def(resourcev1.SchemeGroupVersion, "resourceslices", "ResourceSlice", false, func() *resourcev1.ResourceSlice { return &resourcev1.ResourceSlice{} }, func() *resourcev1.ResourceSliceList { return &resourcev1.ResourceSliceList{} }), noStrategy),
		with(def(resourcev1.SchemeGroupVersion, "devicetaintrules", "DeviceTaintRule", false, func() *resourcev1.DeviceTaintRule { return &resourcev1.DeviceTaintRule{} }, func() *resourcev1.DeviceTaintRuleList { return &resourcev1.DeviceTaintRuleList{} }), func(r *Resource) { r.Status = true }),

		with(def(certificatesv1.SchemeGroupVersion, "clustertrustbundles", "ClusterTrustBundle", false, func() *certificatesv1.ClusterTrustBundle { return &certificatesv1.ClusterTrustBundle{} }, func() *certificatesv1.ClusterTrustBundleList {
			return &certificatesv1.ClusterTrustBundleList{}
		}), clusterTrustBundleStrategy),
		with(def(certificatesv1.SchemeGroupVersion, "podcertificaterequests", "PodCertificateRequest", true, func() *certificatesv1.PodCertificateRequest { return &certificatesv1.PodCertificateRequest{} }, func() *certificatesv1.PodCertificateRequestList {
			return &certificatesv1.PodCertificateRequestList{}
		}), podCertificateRequestStrategy),
		with(def(flowcontrolv1.SchemeGroupVersion, "flowschemas", "FlowSchema", false, func() *flowcontrolv1.FlowSchema { return &flowcontrolv1.FlowSchema{} }, func() *flowcontrolv1.FlowSchemaList { return &flowcontrolv1.FlowSchemaList{} }), flowSchemaStrategy),
		with(def(flowcontrolv1.SchemeGroupVersion, "prioritylevelconfigurations", "PriorityLevelConfiguration", false, func() *flowcontrolv1.PriorityLevelConfiguration { return &flowcontrolv1.PriorityLevelConfiguration{} }, func() *flowcontrolv1.PriorityLevelConfigurationList {
			return &flowcontrolv1.PriorityLevelConfigurationList{}
		}), priorityLevelStrategy),
		with(def(admissionregistrationv1.SchemeGroupVersion, "mutatingwebhookconfigurations", "MutatingWebhookConfiguration", false, func() *admissionregistrationv1.MutatingWebhookConfiguration {
			return &admissionregistrationv1.MutatingWebhookConfiguration{}
		}, func() *admissionregistrationv1.MutatingWebhookConfigurationList {
			return &admissionregistrationv1.MutatingWebhookConfigurationList{}
		}), webhookConfigStrategy),
		with(def(admissionregistrationv1.SchemeGroupVersion, "validatingwebhookconfigurations", "ValidatingWebhookConfiguration", false, func() *admissionregistrationv1.ValidatingWebhookConfiguration {
			return &admissionregistrationv1.ValidatingWebhookConfiguration{}
		}, func() *admissionregistrationv1.ValidatingWebhookConfigurationList {
			return &admissionregistrationv1.ValidatingWebhookConfigurationList{}
		}), webhookConfigStrategy),
		with(def(admissionregistrationv1.SchemeGroupVersion, "validatingadmissionpolicies", "ValidatingAdmissionPolicy", false, func() *admissionregistrationv1.ValidatingAdmissionPolicy {
			return &admissionregistrationv1.ValidatingAdmissionPolicy{}
		}, func() *admissionregistrationv1.ValidatingAdmissionPolicyList {
			return &admissionregistrationv1.ValidatingAdmissionPolicyList{}
		}), func(r *Resource) { admissionPolicyStrategy(r); r.Status = true }),
		with(def(admissionregistrationv1.SchemeGroupVersion, "validatingadmissionpolicybindings", "ValidatingAdmissionPolicyBinding", false, func() *admissionregistrationv1.ValidatingAdmissionPolicyBinding {
			return &admissionregistrationv1.ValidatingAdmissionPolicyBinding{}
		}, func() *admissionregistrationv1.ValidatingAdmissionPolicyBindingList {
			return &admissionregistrationv1.ValidatingAdmissionPolicyBindingList{}
		}), admissionPolicyStrategy),
		with(def(admissionregistrationv1.SchemeGroupVersion, "mutatingadmissionpolicies", "MutatingAdmissionPolicy", false, func() *admissionregistrationv1.MutatingAdmissionPolicy {
			return &admissionregistrationv1.MutatingAdmissionPolicy{}
		}, func() *admissionregistrationv1.MutatingAdmissionPolicyList {
			return &admissionregistrationv1.MutatingAdmissionPolicyList{}
		}), mutatingPolicyStrategy),
		with(def(admissionregistrationv1.SchemeGroupVersion, "mutatingadmissionpolicybindings", "MutatingAdmissionPolicyBinding", false, func() *admissionregistrationv1.MutatingAdmissionPolicyBinding {
			return &admissionregistrationv1.MutatingAdmissionPolicyBinding{}
		}, func() *admissionregistrationv1.MutatingAdmissionPolicyBindingList {
			return &admissionregistrationv1.MutatingAdmissionPolicyBindingList{}
		}), mutatingPolicyStrategy),
		with(def(apiextensionsv1.SchemeGroupVersion, "customresourcedefinitions", "CustomResourceDefinition", false, func() *apiextensionsv1.CustomResourceDefinition {
			return &apiextensionsv1.CustomResourceDefinition{}
		}, func() *apiextensionsv1.CustomResourceDefinitionList {
			return &apiextensionsv1.CustomResourceDefinitionList{}
		}), crdStrategy),
		with(def(nodev1.SchemeGroupVersion, "runtimeclasses", "RuntimeClass", false, func() *nodev1.RuntimeClass { return &nodev1.RuntimeClass{} }, func() *nodev1.RuntimeClassList { return &nodev1.RuntimeClassList{} }), func(r *Resource) { r.NameFn = apivalidation.NameIsDNSSubdomain; r.Columns, r.Row = runtimeClassTable() }),
	}
}

// noStrategy is for resources with nothing beyond the generic lifecycle.
func noStrategy(*Resource) {}

// pathSegmentName accepts what RBAC accepts: any name usable in a URL path
// (a generateName prefix is checked the same way, as upstream does).
func pathSegmentName(name string, _ bool) []string { return path.IsValidPathSegmentName(name) }

// APIServiceName: APIServices are named version.group, the core group's
// "v1." (any name usable in a URL path, as upstream checks).
func APIServiceName(name string, prefix bool) []string { return pathSegmentName(name, prefix) }

// ipAddressName: an IPAddress is named by its address, in canonical form.
func ipAddressName(name string, _ bool) []string {
	ip, err := netip.ParseAddr(name)
	if err != nil {
		return []string{"must be a valid IP address"}
	}
	if ip.String() != name {
		return []string{"must be in canonical form (\"" + ip.String() + "\")"}
	}
	return nil
}
