package integration

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"reflect"
	"strings"
	"testing"

	ktypes "k8s.io/apimachinery/pkg/types"

	apiextensionsapply "k8s.io/apiextensions-apiserver/pkg/client/applyconfiguration"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apiextensionsscheme "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset/scheme"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/structured-merge-diff/v6/typed"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/client-go/applyconfigurations"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
	"sigs.k8s.io/yaml"

	"github.com/skiff-sh/skiff/internal/pki"
)

// applyKind is one built-in kind under server-side apply: its typed
// client-go accessors (group method, resource method) and a minimal valid
// object whose metadata the test fills in.
type applyKind struct {
	group, resource string // clientset.<group>().<resource>(ns)
	gvr             schema.GroupVersionResource
	namespaced      bool
	body            string // YAML of everything but apiVersion, kind and metadata
	kind            string
	// status is a status to apply through the status subresource, for
	// kinds no controller of the test server writes status for.
	status string
}

const podSpecYAML = `containers: [{name: c, image: busybox, env: [{name: A, value: "1"}], ports: [{containerPort: 80}]}]`

// podTemplateYAML is a pod template in flow style, so that it reads the
// same at any indentation.
const podTemplateYAML = ` {metadata: {labels: {app: ssa}}, spec: {` + podSpecYAML + `}}`

func applyKinds(csr, ca string) []applyKind {
	return []applyKind{
		{"CoreV1", "Pods", gv("", "v1", "pods"), true, "spec:\n  " + podSpecYAML, "Pod", "status: {conditions: [{type: example.com/Probe, status: \"True\"}]}"},
		{"CoreV1", "Nodes", gv("", "v1", "nodes"), false, "spec: {podCIDR: 10.99.0.0/24}", "Node", ""},
		{"CoreV1", "Namespaces", gv("", "v1", "namespaces"), false, "", "Namespace", ""},
		{"CoreV1", "Services", gv("", "v1", "services"), true, "spec: {selector: {app: ssa}, ports: [{name: http, port: 80}]}", "Service", "status: {conditions: [{type: example.com/Ok, status: \"True\", reason: Fine, message: m, lastTransitionTime: \"2026-01-01T00:00:00Z\"}]}"},
		{"CoreV1", "Endpoints", gv("", "v1", "endpoints"), true, "subsets: [{addresses: [{ip: 10.1.2.3}], ports: [{port: 80}]}]", "Endpoints", ""},
		{"CoreV1", "ConfigMaps", gv("", "v1", "configmaps"), true, "data: {k: v}", "ConfigMap", ""},
		{"CoreV1", "Secrets", gv("", "v1", "secrets"), true, "data: {k: dg==}", "Secret", ""},
		{"CoreV1", "ServiceAccounts", gv("", "v1", "serviceaccounts"), true, "automountServiceAccountToken: false", "ServiceAccount", ""},
		{"CoreV1", "Events", gv("", "v1", "events"), true, "involvedObject: {kind: Pod, name: p, namespace: ssa}\nreason: Test\nmessage: m\ntype: Normal", "Event", ""},
		{"CoreV1", "PersistentVolumes", gv("", "v1", "persistentvolumes"), false, "spec: {capacity: {storage: 1Gi}, accessModes: [ReadWriteOnce], hostPath: {path: /tmp/ssa}, persistentVolumeReclaimPolicy: Retain, storageClassName: manual}", "PersistentVolume", ""},
		{"CoreV1", "PersistentVolumeClaims", gv("", "v1", "persistentvolumeclaims"), true, "spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}, storageClassName: manual}", "PersistentVolumeClaim", ""},
		{"CoreV1", "ReplicationControllers", gv("", "v1", "replicationcontrollers"), true, "spec:\n  replicas: 0\n  selector: {app: ssa}\n  template:" + podTemplateYAML, "ReplicationController", ""},
		{"CoreV1", "ResourceQuotas", gv("", "v1", "resourcequotas"), true, "spec: {hard: {pods: \"10\"}}", "ResourceQuota", ""},
		{"CoreV1", "LimitRanges", gv("", "v1", "limitranges"), true, "spec: {limits: [{type: Container, default: {cpu: 100m}, defaultRequest: {cpu: 100m}}]}", "LimitRange", ""},
		{"CoreV1", "PodTemplates", gv("", "v1", "podtemplates"), true, "template:" + podTemplateYAML, "PodTemplate", ""},
		{"AppsV1", "Deployments", gv("apps", "v1", "deployments"), true, "spec:\n  replicas: 0\n  selector: {matchLabels: {app: ssa}}\n  template:" + podTemplateYAML, "Deployment", ""},
		{"AppsV1", "ReplicaSets", gv("apps", "v1", "replicasets"), true, "spec:\n  replicas: 0\n  selector: {matchLabels: {app: ssa}}\n  template:" + podTemplateYAML, "ReplicaSet", ""},
		{"AppsV1", "StatefulSets", gv("apps", "v1", "statefulsets"), true, "spec:\n  replicas: 0\n  serviceName: ssa\n  selector: {matchLabels: {app: ssa}}\n  template:" + podTemplateYAML, "StatefulSet", ""},
		{"AppsV1", "DaemonSets", gv("apps", "v1", "daemonsets"), true, "spec:\n  selector: {matchLabels: {app: ssa}}\n  template:" + podTemplateYAML, "DaemonSet", ""},
		{"AppsV1", "ControllerRevisions", gv("apps", "v1", "controllerrevisions"), true, "revision: 1\ndata: {k: v}", "ControllerRevision", ""},
		{"BatchV1", "Jobs", gv("batch", "v1", "jobs"), true, "spec:\n  suspend: true\n  template:\n    spec:\n      restartPolicy: Never\n      " + podSpecYAML, "Job", ""},
		{"BatchV1", "CronJobs", gv("batch", "v1", "cronjobs"), true, "spec:\n  schedule: '0 0 1 1 *'\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          " + podSpecYAML, "CronJob", ""},
		{"CoordinationV1", "Leases", gv("coordination.k8s.io", "v1", "leases"), true, "spec: {holderIdentity: me, leaseDurationSeconds: 10}", "Lease", ""},
		{"DiscoveryV1", "EndpointSlices", gv("discovery.k8s.io", "v1", "endpointslices"), true, "addressType: IPv4\nendpoints: [{addresses: [10.1.2.3], conditions: {ready: true}}]\nports: [{name: http, port: 80}]", "EndpointSlice", ""},
		{"EventsV1", "Events", gv("events.k8s.io", "v1", "events"), true, "eventTime: \"2026-01-01T00:00:00.000000Z\"\nreportingController: example.com/c\nreportingInstance: i\naction: Test\nreason: Test\ntype: Normal\nregarding: {kind: Pod, name: p, namespace: ssa}", "Event", ""},
		{"NetworkingV1", "Ingresses", gv("networking.k8s.io", "v1", "ingresses"), true, "spec: {defaultBackend: {service: {name: ssa, port: {number: 80}}}}", "Ingress", ""},
		{"NetworkingV1", "IngressClasses", gv("networking.k8s.io", "v1", "ingressclasses"), false, "spec: {controller: example.com/ingress}", "IngressClass", ""},
		{"NetworkingV1", "NetworkPolicies", gv("networking.k8s.io", "v1", "networkpolicies"), true, "spec: {podSelector: {matchLabels: {app: ssa}}, policyTypes: [Ingress]}", "NetworkPolicy", ""},
		{"RbacV1", "Roles", gv("rbac.authorization.k8s.io", "v1", "roles"), true, "rules: [{apiGroups: [\"\"], resources: [pods], verbs: [get]}]", "Role", ""},
		{"RbacV1", "RoleBindings", gv("rbac.authorization.k8s.io", "v1", "rolebindings"), true, "roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: ssa}\nsubjects: [{kind: User, name: alice, apiGroup: rbac.authorization.k8s.io}]", "RoleBinding", ""},
		{"RbacV1", "ClusterRoles", gv("rbac.authorization.k8s.io", "v1", "clusterroles"), false, "rules: [{apiGroups: [\"\"], resources: [pods], verbs: [get]}]", "ClusterRole", ""},
		{"RbacV1", "ClusterRoleBindings", gv("rbac.authorization.k8s.io", "v1", "clusterrolebindings"), false, "roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: ssa}\nsubjects: [{kind: User, name: alice, apiGroup: rbac.authorization.k8s.io}]", "ClusterRoleBinding", ""},
		{"StorageV1", "StorageClasses", gv("storage.k8s.io", "v1", "storageclasses"), false, "provisioner: example.com/none\nreclaimPolicy: Retain", "StorageClass", ""},
		{"StorageV1", "VolumeAttachments", gv("storage.k8s.io", "v1", "volumeattachments"), false, "spec: {attacher: example.com/csi, nodeName: n1, source: {persistentVolumeName: pv1}}", "VolumeAttachment", "status: {attached: true, attachmentMetadata: {k: v}}"},
		{"StorageV1", "CSIDrivers", gv("storage.k8s.io", "v1", "csidrivers"), false, "spec: {attachRequired: false}", "CSIDriver", ""},
		{"StorageV1", "CSINodes", gv("storage.k8s.io", "v1", "csinodes"), false, "spec: {drivers: [{name: example.com, nodeID: n1}]}", "CSINode", ""},
		{"SchedulingV1", "PriorityClasses", gv("scheduling.k8s.io", "v1", "priorityclasses"), false, "value: 100\ndescription: d", "PriorityClass", ""},
		{"PolicyV1", "PodDisruptionBudgets", gv("policy", "v1", "poddisruptionbudgets"), true, "spec: {minAvailable: 1, selector: {matchLabels: {app: ssa}}}", "PodDisruptionBudget", ""},
		{"AutoscalingV2", "HorizontalPodAutoscalers", gv("autoscaling", "v2", "horizontalpodautoscalers"), true, "spec: {scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: ssa}, minReplicas: 1, maxReplicas: 3}", "HorizontalPodAutoscaler", ""},
		{"AutoscalingV1", "HorizontalPodAutoscalers", gv("autoscaling", "v1", "horizontalpodautoscalers"), true, "spec: {scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: ssa}, minReplicas: 1, maxReplicas: 3}", "HorizontalPodAutoscaler", ""},
		{"CertificatesV1", "CertificateSigningRequests", gv("certificates.k8s.io", "v1", "certificatesigningrequests"), false, "spec: {signerName: example.com/signer, usages: [digital signature], request: " + csr + "}", "CertificateSigningRequest", ""},
		{"StorageV1", "CSIStorageCapacities", gv("storage.k8s.io", "v1", "csistoragecapacities"), true, "storageClassName: manual\ncapacity: 10Gi", "CSIStorageCapacity", ""},
		{"StorageV1", "VolumeAttributesClasses", gv("storage.k8s.io", "v1", "volumeattributesclasses"), false, "driverName: example.com/csi\nparameters: {iops: \"100\"}", "VolumeAttributesClass", ""},
		{"StoragemigrationV1", "StorageVersionMigrations", gv("storagemigration.k8s.io", "v1", "storageversionmigrations"), false, "spec: {resource: {group: apps, resource: deployments}}", "StorageVersionMigration", ""},
		{"NetworkingV1", "ServiceCIDRs", gv("networking.k8s.io", "v1", "servicecidrs"), false, "spec: {cidrs: [10.99.0.0/24]}", "ServiceCIDR", "status: {conditions: [{type: example.com/Checked, status: \"True\", reason: Fine, message: m, lastTransitionTime: \"2026-01-01T00:00:00Z\"}]}"},
		{"NetworkingV1", "IPAddresses", gv("networking.k8s.io", "v1", "ipaddresses"), false, "spec: {parentRef: {resource: services, namespace: ssa, name: ssa}}", "IPAddress", ""},
		{"ResourceV1", "DeviceClasses", gv("resource.k8s.io", "v1", "deviceclasses"), false, "spec: {selectors: [{cel: {expression: \"device.driver == 'example.com'\"}}]}", "DeviceClass", ""},
		{"ResourceV1", "ResourceClaims", gv("resource.k8s.io", "v1", "resourceclaims"), true, "spec: {devices: {requests: [{name: gpu, exactly: {deviceClassName: ssa}}]}}", "ResourceClaim", ""},
		{"ResourceV1", "ResourceClaimTemplates", gv("resource.k8s.io", "v1", "resourceclaimtemplates"), true, "spec: {spec: {devices: {requests: [{name: gpu, exactly: {deviceClassName: ssa}}]}}}", "ResourceClaimTemplate", ""},
		{"ResourceV1", "ResourceSlices", gv("resource.k8s.io", "v1", "resourceslices"), false, "spec: {driver: example.com, nodeName: n1, pool: {name: p, generation: 1, resourceSliceCount: 1}, devices: [{name: d1}]}", "ResourceSlice", ""},
		{"ResourceV1", "DeviceTaintRules", gv("resource.k8s.io", "v1", "devicetaintrules"), false, "spec: {deviceSelector: {driver: example.com}, taint: {key: example.com/broken, value: \"yes\", effect: NoSchedule}}", "DeviceTaintRule", ""},
		{"CertificatesV1", "ClusterTrustBundles", gv("certificates.k8s.io", "v1", "clustertrustbundles"), false, "spec: {trustBundle: " + ca + "}", "ClusterTrustBundle", ""},
		// The stub request is a real ECDSA P-256 PKCS#10 request: the API checks its signature.
		{"CertificatesV1", "PodCertificateRequests", gv("certificates.k8s.io", "v1", "podcertificaterequests"), true, "spec: {signerName: example.com/signer, podName: p, podUID: u1, serviceAccountName: default, serviceAccountUID: u2, nodeName: n1, nodeUID: u3, stubPKCS10Request: MIG6MGICAQAwADBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABF0wsYbntokOlTah+vYUSCUNNzl6Qr/bJQyVvBNJ8a4BcFHu7UN/lIqUGCtPisbsUxjYgP+obM6KoES+zz4701agADAKBggqhkjOPQQDAgNIADBFAiAyWMP+a3n3+eWCVysDRfbPgyU+85GBOWNBLIy298/WoAIhAObQCDlEJAcKuSVpWFXI/H0Kj9jI+/Jy7+aTlfWXvgjH}", "PodCertificateRequest", ""},
		{"NodeV1", "RuntimeClasses", gv("node.k8s.io", "v1", "runtimeclasses"), false, "handler: runc", "RuntimeClass", ""},
		{"AdmissionregistrationV1", "MutatingWebhookConfigurations", gv("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations"), false, "webhooks: [{name: ssa.test.example.com, clientConfig: {url: \"https://127.0.0.1:1/m\"}, sideEffects: None, admissionReviewVersions: [v1]}]", "MutatingWebhookConfiguration", ""},
		{"AdmissionregistrationV1", "ValidatingWebhookConfigurations", gv("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations"), false, "webhooks: [{name: ssa.test.example.com, clientConfig: {url: \"https://127.0.0.1:1/v\"}, sideEffects: None, admissionReviewVersions: [v1]}]", "ValidatingWebhookConfiguration", ""},
		{"AdmissionregistrationV1", "ValidatingAdmissionPolicies", gv("admissionregistration.k8s.io", "v1", "validatingadmissionpolicies"), false, "spec: {matchConstraints: {resourceRules: [{operations: [CREATE], apiGroups: [ssa.example.com], apiVersions: [v1], resources: [ssas], scope: \"*\"}], namespaceSelector: {}, objectSelector: {}, matchPolicy: Equivalent}, validations: [{expression: \"true\"}]}", "ValidatingAdmissionPolicy", ""},
		{"AdmissionregistrationV1", "ValidatingAdmissionPolicyBindings", gv("admissionregistration.k8s.io", "v1", "validatingadmissionpolicybindings"), false, "spec: {policyName: ssa-v1-validatingadmissionpolicies, validationActions: [Audit]}", "ValidatingAdmissionPolicyBinding", ""},
		{"AdmissionregistrationV1", "MutatingAdmissionPolicies", gv("admissionregistration.k8s.io", "v1", "mutatingadmissionpolicies"), false, "spec: {matchConstraints: {resourceRules: [{operations: [CREATE], apiGroups: [ssa.example.com], apiVersions: [v1], resources: [ssas], scope: \"*\"}], namespaceSelector: {}, objectSelector: {}, matchPolicy: Equivalent}, mutations: [{patchType: JSONPatch, jsonPatch: {expression: \"[]\"}}]}", "MutatingAdmissionPolicy", ""},
		{"AdmissionregistrationV1", "MutatingAdmissionPolicyBindings", gv("admissionregistration.k8s.io", "v1", "mutatingadmissionpolicybindings"), false, "spec: {policyName: ssa-v1-mutatingadmissionpolicies}", "MutatingAdmissionPolicyBinding", ""},
		{"", "APIServices", gv("apiregistration.k8s.io", "v1", "apiservices"), false, "spec: {group: ssa.example.com, version: v1, groupPriorityMinimum: 1000, versionPriority: 15, service: {namespace: default, name: ssa}}", "APIService", ""},
		{"ApiextensionsV1", "CustomResourceDefinitions", gv("apiextensions.k8s.io", "v1", "customresourcedefinitions"), false, "spec: {group: ssa.example.com, scope: Namespaced, names: {plural: ssas, kind: Ssa}, versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}]}", "CustomResourceDefinition", ""},
		{"FlowcontrolV1", "FlowSchemas", gv("flowcontrol.apiserver.k8s.io", "v1", "flowschemas"), false, "spec: {priorityLevelConfiguration: {name: global-default}, matchingPrecedence: 5000, distinguisherMethod: {type: ByUser}, rules: [{subjects: [{kind: User, user: {name: ssa}}], resourceRules: [{verbs: [get], apiGroups: [\"\"], resources: [pods], namespaces: [\"*\"]}]}]}", "FlowSchema", ""},
		{"FlowcontrolV1", "PriorityLevelConfigurations", gv("flowcontrol.apiserver.k8s.io", "v1", "prioritylevelconfigurations"), false, "spec: {type: Limited, limited: {nominalConcurrencyShares: 5, limitResponse: {type: Reject}}}", "PriorityLevelConfiguration", ""},
	}
}

func gv(group, version, resource string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: group, Version: version, Resource: resource}
}

// notAppliable are the resources that accept no patch at all upstream.
var notAppliable = map[string]bool{"v1/bindings": true, "v1/componentstatuses": true}

// TestServerSideApplyEveryKind runs server-side apply over every built-in
// kind, through kubectl and client-go's typed Apply: create, update, a
// second manager's conflict and its forced takeover, a manager dropping a
// field it owned, and managedFields equal to the field set of what each
// manager applied (structured-merge-diff's own rules, as upstream's server
// computes them).
func TestServerSideApplyEveryKind(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	cs := s.client()
	dyn := dynamic.NewForConfigOrDie(s.restConfig())
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ssa"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kinds := applyKinds(testCSR(t), testCABundleJSON(t))

	// Every resource discovery offers with a patch verb has a row.
	covered := map[schema.GroupVersionResource]bool{}
	for _, k := range kinds {
		covered[k.gvr] = true
	}
	_, lists, err := cs.Discovery().ServerGroupsAndResources()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lists {
		gvOf, _ := schema.ParseGroupVersion(l.GroupVersion)
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") || !contains(r.Verbs, "patch") || notAppliable[l.GroupVersion+"/"+r.Name] {
				continue
			}
			if !covered[gvOf.WithResource(r.Name)] {
				t.Errorf("no server-side apply row for %s %s", l.GroupVersion, r.Name)
			}
		}
	}

	types := groupTypes{core: applyconfigurations.NewTypeConverter(scheme.Scheme), apiextensions: apiextensionsapply.NewTypeConverter(apiextensionsscheme.Scheme)}
	ext := apiextensionsclient.NewForConfigOrDie(s.restConfig())
	for _, k := range kinds {
		t.Run(k.gvr.Group+"/"+k.gvr.Version+"/"+k.gvr.Resource, func(t *testing.T) {
			name := "ssa-" + k.gvr.Version + "-" + k.gvr.Resource
			switch k.kind {
			case "IPAddress":
				name = "10.99.0.5" // an IPAddress is named by its address
			case "CustomResourceDefinition":
				name = "ssas.ssa.example.com" // a definition is named plural.group
			case "APIService":
				name = "v1.ssa.example.com" // an APIService is named version.group
			}
			doc := func(labels string) string {
				meta := "metadata:\n  name: " + name + "\n"
				if k.namespaced {
					meta += "  namespace: ssa\n"
				}
				if labels != "" {
					meta += "  labels: {" + labels + "}\n"
				}
				return "apiVersion: " + apiVersion(k.gvr) + "\nkind: " + k.kind + "\n" + meta + k.body + "\n"
			}
			apply := func(manager, manifest string, extra ...string) (string, error) {
				args := append([]string{"apply", "--server-side", "--field-manager=" + manager, "-f", "-"}, extra...)
				out, errOut, err := s.kubectlStdin(manifest, args...)
				return out + errOut, err
			}
			get := func() *unstructured.Unstructured {
				t.Helper()
				ri := dyn.Resource(k.gvr)
				var c dynamic.ResourceInterface = ri
				if k.namespaced {
					c = ri.Namespace("ssa")
				}
				u, err := c.Get(ctx, name, metav1.GetOptions{})
				if err != nil {
					t.Fatalf("get: %v", err)
				}
				return u
			}

			alice := doc("owner: alice, keep: x")
			if out, err := apply("alice", alice); err != nil || !strings.Contains(out, "serverside-applied") {
				t.Fatalf("create: %v %s", err, out)
			}
			checkManaged(t, types, get(), "alice", "", alice)

			alice = doc("owner: alice2, keep: x")
			if out, err := apply("alice", alice); err != nil {
				t.Fatalf("update: %v %s", err, out)
			}
			if got := get().GetLabels()["owner"]; got != "alice2" {
				t.Errorf("owner label after update = %q", got)
			}

			bob := doc("owner: bob")
			out, err := apply("bob", bob)
			if err == nil || !strings.Contains(out, `conflict with "alice"`) || !strings.Contains(out, ".metadata.labels.owner") {
				t.Errorf("conflicting apply: err %v, output %s", err, out)
			}
			if out, err := apply("bob", bob, "--force-conflicts"); err != nil {
				t.Fatalf("forced apply: %v %s", err, out)
			}
			u := get()
			if got := u.GetLabels()["owner"]; got != "bob" {
				t.Errorf("owner label after forced apply = %q", got)
			}
			checkManaged(t, types, u, "bob", "", bob)
			// alice keeps what bob did not take: her set minus the owner label.
			checkManaged(t, types, u, "alice", "", doc("keep: x"))

			// alice drops the label she alone owned: it is removed.
			if out, err := apply("alice", doc("")); err != nil {
				t.Fatalf("apply without keep: %v %s", err, out)
			}
			if labels := get().GetLabels(); labels["keep"] != "" || labels["owner"] != "bob" {
				t.Errorf("labels after alice dropped keep: %v", labels)
			}

			// client-go's typed Apply, through the kind's own client (every
			// kind but APIService, whose typed client is the aggregator's
			// module, which skiff does not depend on: it is applied through
			// the dynamic client instead).
			carol := doc("carol: \"yes\"")
			if k.group == "" {
				js, err := yaml.YAMLToJSON([]byte(carol))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := dyn.Resource(k.gvr).Patch(ctx, name, ktypes.ApplyPatchType, js, metav1.PatchOptions{FieldManager: "carol"}); err != nil {
					t.Fatalf("dynamic Apply: %v", err)
				}
			} else if err := typedApply(ctx, []any{cs, ext}, k, carol, "carol"); err != nil {
				t.Fatalf("typed Apply: %v", err)
			}
			u = get()
			if u.GetLabels()["carol"] != "yes" {
				t.Errorf("typed Apply did not set the label: %v", u.GetLabels())
			}
			checkManaged(t, types, u, "carol", "", carol)

			if k.status != "" {
				st := strings.Replace(doc(""), k.body, k.status, 1)
				if out, err := apply("dave", st, "--subresource=status"); err != nil {
					t.Fatalf("status apply: %v %s", err, out)
				}
				u = get()
				want := map[string]any{}
				if err := yaml.Unmarshal([]byte(k.status), &want); err != nil {
					t.Fatal(err)
				}
				for f := range want["status"].(map[string]any) {
					if _, ok := u.Object["status"].(map[string]any)[f]; !ok {
						t.Errorf("status.%s not applied: %v", f, u.Object["status"])
					}
				}
				checkManaged(t, types, u, "dave", "status", st)
			}
		})
	}
}

// TestServerSideApplyListMerge checks that lists with keys merge per key
// between managers (containers and env by name, ports by port and
// protocol), and that a second manager's element stays when the first
// reapplies without it.
func TestServerSideApplyListMerge(t *testing.T) {
	s := startServer(t)
	dep := func(containers string) string {
		return `apiVersion: apps/v1
kind: Deployment
metadata: {name: merge, namespace: default}
spec:
  replicas: 0
  selector: {matchLabels: {app: merge}}
  template:
    metadata: {labels: {app: merge}}
    spec:
      containers: ` + containers + "\n"
	}
	svc := func(ports string) string {
		return "apiVersion: v1\nkind: Service\nmetadata: {name: merge, namespace: default}\nspec: {ports: " + ports + "}\n"
	}
	steps := []struct {
		manager, manifest string
	}{
		{"a", dep(`[{name: web, image: busybox, env: [{name: A, value: "1"}], ports: [{containerPort: 80}]}]`)},
		{"b", dep(`[{name: web, env: [{name: B, value: "2"}], ports: [{containerPort: 80, protocol: UDP}]}, {name: side, image: busybox}]`)},
		{"a", dep(`[{name: web, image: busybox, env: [{name: A, value: "3"}]}]`)},
		{"a", svc(`[{name: http, port: 80}]`)},
		{"b", svc(`[{name: dns, port: 53, protocol: UDP}]`)},
	}
	for _, st := range steps {
		if out, errOut, err := s.kubectlStdin(st.manifest, "apply", "--server-side", "--field-manager="+st.manager, "-f", "-"); err != nil {
			t.Fatalf("apply as %s: %v %s %s", st.manager, err, out, errOut)
		}
	}
	out := s.mustKubectl("get", "deployment", "merge", "-o", `jsonpath={range .spec.template.spec.containers[*]}{.name}:{range .env[*]}{.name}={.value},{end}:{range .ports[*]}{.containerPort}/{.protocol},{end};{end}`)
	if want := "web:A=3,B=2,:80/UDP,;side::;"; out != want {
		t.Errorf("merged containers = %q, want %q (a's port 80/TCP dropped, b's env and container kept)", out, want)
	}
	out = s.mustKubectl("get", "service", "merge", "-o", `jsonpath={range .spec.ports[*]}{.name}:{.port}/{.protocol},{end}`)
	if want := "http:80/TCP,dns:53/UDP,"; out != want {
		t.Errorf("merged ports = %q, want %q", out, want)
	}
}

// checkManaged compares manager's managedFields entry on u with the field
// set of the configuration it applied, as structured-merge-diff computes
// it, without the identity fields upstream strips from every set.
func checkManaged(t *testing.T, types managedfields.TypeConverter, u *unstructured.Unstructured, manager, subresource, applied string) {
	t.Helper()
	cfg := &unstructured.Unstructured{}
	js, err := yaml.YAMLToJSON([]byte(applied))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.UnmarshalJSON(js); err != nil {
		t.Fatal(err)
	}
	tv, err := types.ObjectToTyped(cfg)
	if err != nil {
		t.Fatalf("type %s: %v", cfg.GetKind(), err)
	}
	want, err := tv.ToFieldSet()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range [][]any{{"apiVersion"}, {"kind"}, {"metadata", "name"}, {"metadata", "namespace"}} {
		want = want.Difference(fieldpath.NewSet(fieldpath.MakePathOrDie(p...)))
	}
	if meta := fieldpath.MakePathOrDie("metadata"); !want.Has(meta) {
		// metadata with nothing left under it is not a field of its own.
		want = want.Difference(fieldpath.NewSet(meta))
	}
	for _, e := range u.GetManagedFields() {
		if e.Manager != manager || e.Operation != metav1.ManagedFieldsOperationApply || e.Subresource != subresource {
			continue
		}
		got := &fieldpath.Set{}
		if err := got.FromJSON(bytes.NewReader(e.FieldsV1.Raw)); err != nil {
			t.Fatalf("decode managedFields of %s: %v", manager, err)
		}
		if cfg.GroupVersionKind().Group == "apiregistration.k8s.io" {
			// The expected set comes from deduced types, which also name
			// each map itself ("."); the schema's structs do not.
			got, want = got.Leaves(), want.Leaves()
		}
		if !got.Equals(want) {
			gj, _ := got.ToJSON()
			wj, _ := want.ToJSON()
			t.Errorf("%s's managed fields:\n got %s\nwant %s", manager, gj, wj)
		}
		return
	}
	t.Errorf("no Apply entry for %s (subresource %q) in %v", manager, subresource, u.GetManagedFields())
}

// typedApply calls <group>().<resource>(ns).Apply(ctx, cfg, opts) on the
// clientset, with cfg decoded from manifest into the kind's generated
// apply configuration.
func typedApply(ctx context.Context, clientsets []any, k applyKind, manifest, manager string) error {
	var group reflect.Value
	for _, cs := range clientsets {
		if group = reflect.ValueOf(cs).MethodByName(k.group); group.IsValid() {
			break
		}
	}
	if !group.IsValid() {
		return fmt.Errorf("no clientset has %s", k.group)
	}
	res := group.Call(nil)[0].MethodByName(k.resource)
	if !res.IsValid() {
		return fmt.Errorf("%s has no %s", k.group, k.resource)
	}
	var args []reflect.Value
	if k.namespaced {
		args = append(args, reflect.ValueOf("ssa"))
	}
	applyFn := res.Call(args)[0].MethodByName("Apply")
	cfg := reflect.New(applyFn.Type().In(1).Elem())
	js, err := yaml.YAMLToJSON([]byte(manifest))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(js, cfg.Interface()); err != nil {
		return fmt.Errorf("decode into %s: %w", cfg.Type(), err)
	}
	out := applyFn.Call([]reflect.Value{reflect.ValueOf(ctx), cfg, reflect.ValueOf(metav1.ApplyOptions{FieldManager: manager})})
	if errV := out[1]; !errV.IsNil() {
		err := errV.Interface().(error)
		if apierrors.IsConflict(err) {
			return fmt.Errorf("conflict: %w", err)
		}
		return err
	}
	return nil
}

// groupTypes reads applied configurations by the schemas of their group:
// client-go's, or apiextensions' for CustomResourceDefinitions.
type groupTypes struct{ core, apiextensions managedfields.TypeConverter }

func (g groupTypes) ObjectToTyped(obj runtime.Object, opts ...typed.ValidationOptions) (*typed.TypedValue, error) {
	switch obj.GetObjectKind().GroupVersionKind().Group {
	case "apiextensions.k8s.io":
		return g.apiextensions.ObjectToTyped(obj, opts...)
	case "apiregistration.k8s.io":
		// APIService's spec is maps and scalars only: deduced types give
		// the same field set as its schema.
		return managedfields.NewDeducedTypeConverter().ObjectToTyped(obj, opts...)
	}
	return g.core.ObjectToTyped(obj, opts...)
}

func (g groupTypes) TypedToObject(v *typed.TypedValue) (runtime.Object, error) {
	return g.core.TypedToObject(v)
}

func apiVersion(r schema.GroupVersionResource) string {
	return r.GroupVersion().String()
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// testCSR is a base64 PEM certificate request for the CSR row.
func testCSR(t *testing.T) string {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "ssa"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

// testCABundleJSON is a self-signed CA certificate in PEM, quoted for a
// YAML flow value.
func testCABundleJSON(t *testing.T) string {
	ca, err := pki.LoadOrCreateCA(t.TempDir(), "ssa-ca")
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(string(ca.CertPEM))
	return string(js)
}
