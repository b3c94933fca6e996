package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	nodev1 "k8s.io/api/node/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/skiff-sh/skiff/test/poll"
)

// Objects created without a class get the default one, as upstream's
// DefaultStorageClass and DefaultIngressClass admission give it; an
// explicit choice (or the legacy ingress annotation) is kept.
func TestDefaultClassAdmission(t *testing.T) {
	s := startServer(t)
	c := s.client()
	ctx := context.Background()

	pvc, err := c.CoreV1().PersistentVolumeClaims("default").Create(ctx, &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data"},
		Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}},
	}, metav1.CreateOptions{})
	if err != nil || pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != "local-path" {
		t.Errorf("claim without a class: %v %v", pvc.Spec.StorageClassName, err)
	}

	for _, name := range []string{"older", "newer"} {
		if _, err := c.NetworkingV1().IngressClasses().Create(ctx, &networkingv1.IngressClass{
			ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{"ingressclass.kubernetes.io/is-default-class": "true"}},
			Spec:       networkingv1.IngressClassSpec{Controller: "example.com/" + name},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	backend := &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80}}}
	create := func(name string, class *string, ann map[string]string) *networkingv1.Ingress {
		t.Helper()
		ing, err := c.NetworkingV1().Ingresses("default").Create(ctx, &networkingv1.Ingress{
			ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann},
			Spec:       networkingv1.IngressSpec{IngressClassName: class, DefaultBackend: backend},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create ingress %s: %v", name, err)
		}
		return ing
	}
	if got := create("plain", nil, nil).Spec.IngressClassName; got == nil || *got == "" {
		t.Errorf("ingress without a class: %v", got)
	} else if *got != "newer" && *got != "older" {
		t.Errorf("ingress without a class got %q", *got)
	}
	if got := create("explicit", ptr.To("other"), nil).Spec.IngressClassName; got == nil || *got != "other" {
		t.Errorf("explicit class replaced: %v", got)
	}
	if got := create("legacy", nil, map[string]string{"kubernetes.io/ingress.class": "nginx"}).Spec.IngressClassName; got != nil {
		t.Errorf("legacy annotation got class %q too", *got)
	}
}

// RuntimeClass admission: a pod naming a missing class is refused; the
// class's overhead, node selector and tolerations reach the pod; a pod
// whose selector or overhead contradicts the class is refused.
func TestRuntimeClassAdmission(t *testing.T) {
	s := startServer(t)
	c := s.client()
	ctx := context.Background()
	rc := &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: "sandboxed"}, Handler: "runc",
		Overhead: &nodev1.Overhead{PodFixed: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")}},
		Scheduling: &nodev1.Scheduling{NodeSelector: map[string]string{"sandbox": "yes"},
			Tolerations: []corev1.Toleration{{Key: "sandbox", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}}}
	if _, err := c.NodeV1().RuntimeClasses().Create(ctx, rc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := func(name, class string, mutate func(*corev1.Pod)) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{RuntimeClassName: ptr.To(class), Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
		if mutate != nil {
			mutate(p)
		}
		return p
	}
	pods := c.CoreV1().Pods("default")
	got, err := pods.Create(ctx, pod("ok", "sandboxed", nil), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cpu := got.Spec.Overhead[corev1.ResourceCPU]
	hasToleration := false
	for _, tol := range got.Spec.Tolerations {
		hasToleration = hasToleration || tol.Key == "sandbox"
	}
	if cpu.String() != "250m" || got.Spec.NodeSelector["sandbox"] != "yes" || !hasToleration {
		t.Errorf("pod of the class: overhead %v, nodeSelector %v, tolerations %v", got.Spec.Overhead, got.Spec.NodeSelector, got.Spec.Tolerations)
	}
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		msg  string
	}{
		{"missing class", pod("missing", "nope", nil), `RuntimeClass "nope" not found`},
		{"conflicting selector", pod("conflict", "sandboxed", func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"sandbox": "no"} }), "conflict"},
		{"other overhead", pod("overhead", "sandboxed", func(p *corev1.Pod) {
			p.Spec.Overhead = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}
		}), "Overhead"},
	} {
		_, err := pods.Create(ctx, tc.pod, metav1.CreateOptions{})
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: want 403 with %q, got %v", tc.name, tc.msg, err)
		}
	}
}

const limitRangeYAML = `apiVersion: v1
kind: LimitRange
metadata:
  name: limits
  namespace: lr
spec:
  limits:
  - type: Container
    max: {cpu: "1", memory: 1Gi}
    defaultRequest: {cpu: 100m}
  - type: PersistentVolumeClaim
    max: {storage: 2Gi}
`

// TestLimitRangerAdmission: with real kubectl, a LimitRange is defaulted as
// upstream's (max is the default limit, which is the default request), a
// bare pod gets the defaults and the kubernetes.io/limit-ranger note, a
// container or claim over a max is refused with upstream's 403, and
// --disable-admission-plugins=LimitRanger turns it all off.
func TestLimitRangerAdmission(t *testing.T) {
	s := startServer(t)
	s.mustKubectl("create", "namespace", "lr")
	s.mustKubectlStdin(limitRangeYAML, "apply", "-f", "-")
	if got := s.mustKubectl("-n", "lr", "get", "limitrange", "limits", "-o", "jsonpath={.spec.limits[0].default.cpu} {.spec.limits[0].default.memory} {.spec.limits[0].defaultRequest.cpu} {.spec.limits[0].defaultRequest.memory}"); got != "1 1Gi 100m 1Gi" {
		t.Errorf("defaulted LimitRange: %q", got)
	}
	s.mustKubectl("-n", "lr", "run", "bare", "--image=busybox", "--restart=Never")
	got := s.mustKubectl("-n", "lr", "get", "pod", "bare", "-o", `jsonpath={.spec.containers[0].resources.requests.cpu} {.spec.containers[0].resources.requests.memory} {.spec.containers[0].resources.limits.cpu} {.spec.containers[0].resources.limits.memory} {.status.qosClass}|{.metadata.annotations.kubernetes\.io/limit-ranger}`)
	if want := "100m 1Gi 1 1Gi Burstable|LimitRanger plugin set: cpu, memory request for container bare; cpu, memory limit for container bare"; got != want {
		t.Errorf("bare pod:\n got %q\nwant %q", got, want)
	}
	big := `apiVersion: v1
kind: Pod
metadata: {name: big, namespace: lr}
spec:
  containers:
  - name: c
    image: busybox
    resources: {limits: {cpu: "2"}}
`
	_, stderr, err := s.kubectlStdin(big, "apply", "-f", "-")
	if want := `pods "big" is forbidden: maximum cpu usage per Container is 1, but limit is 2`; err == nil || !strings.Contains(stderr, want) {
		t.Errorf("a container over max: %v %q, want %q", err, stderr, want)
	}
	claim := `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: huge, namespace: lr}
spec:
  storageClassName: ""
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 5Gi}}
`
	_, stderr, err = s.kubectlStdin(claim, "apply", "-f", "-")
	if want := `persistentvolumeclaims "huge" is forbidden: maximum storage usage per PersistentVolumeClaim is 2Gi, but request is 5Gi`; err == nil || !strings.Contains(stderr, want) {
		t.Errorf("a claim over max: %v %q, want %q", err, stderr, want)
	}

	s.stop()
	s.extraArgs = append(s.extraArgs, "--disable-admission-plugins=LimitRanger")
	s.start()
	s.mustKubectlStdin(big, "apply", "-f", "-")
	if got := s.mustKubectl("-n", "lr", "get", "pod", "big", "-o", "jsonpath={.spec.containers[0].resources.requests.cpu}"); got != "2" {
		t.Errorf("without LimitRanger the pod keeps its own resources: request %q", got)
	}
}

// TestQuotaChargesUpdates: an update that grows what an object uses is
// charged to its namespace's quota (a Service turned NodePort takes a
// services.nodeports), and refused when the quota is full.
func TestQuotaChargesUpdates(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	c := s.client()
	s.mustKubectl("create", "namespace", "qu")
	s.mustKubectl("-n", "qu", "create", "quota", "ports", "--hard=services.nodeports=1")
	waitQuotaStatus(t, s, "ports", "-n", "qu")
	for _, name := range []string{"a", "b"} {
		s.mustKubectl("-n", "qu", "create", "service", "clusterip", name, "--tcp=80:80")
	}
	toNodePort := func(name string) error {
		svc, err := c.CoreV1().Services("qu").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		svc.Spec.Type = corev1.ServiceTypeNodePort
		_, err = c.CoreV1().Services("qu").Update(ctx, svc, metav1.UpdateOptions{})
		return err
	}
	if err := toNodePort("a"); err != nil {
		t.Fatalf("the first NodePort: %v", err)
	}
	if got := s.mustKubectl("-n", "qu", "get", "quota", "ports", "-o", "jsonpath={.status.used.services\\.nodeports}"); got != "1" {
		t.Errorf("used after the update: %q, want 1", got)
	}
	err := toNodePort("b")
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "exceeded quota: ports, requested: services.nodeports=1, used: services.nodeports=1, limited: services.nodeports=1") {
		t.Errorf("the second NodePort: %v, want a 403 for the quota", err)
	}
}

// TestStorageObjectInUseProtection: new claims and volumes carry upstream's
// protection finalizers; a claim a pod uses survives its deletion
// (Terminating) until the pod goes, and a volume bound to a claim until
// the claim goes.
func TestStorageObjectInUseProtection(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	c := s.client()
	s.mustKubectlStdin(`apiVersion: v1
kind: PersistentVolume
metadata: {name: disk}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  hostPath: {path: /tmp/disk}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: default}
spec:
  storageClassName: ""
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: Pod
metadata: {name: user, namespace: default}
spec:
  containers: [{name: c, image: busybox}]
  volumes: [{name: v, persistentVolumeClaim: {claimName: data}}]
`, "apply", "-f", "-")
	if got := s.mustKubectl("get", "pvc", "data", "-o", "jsonpath={.metadata.finalizers}"); got != `["kubernetes.io/pvc-protection"]` {
		t.Errorf("claim finalizers: %s", got)
	}
	if got := s.mustKubectl("get", "pv", "disk", "-o", "jsonpath={.metadata.finalizers}"); got != `["kubernetes.io/pv-protection"]` {
		t.Errorf("volume finalizers: %s", got)
	}
	poll.Eventually(t, settle, poll.State("claim bound", func() (bool, string) {
		got := s.mustKubectl("get", "pvc", "data", "-o", "jsonpath={.status.phase}")
		return got == "Bound", got
	}))

	s.mustKubectl("delete", "pv", "disk", "--wait=false")
	s.mustKubectl("delete", "pvc", "data", "--wait=false")
	// The controllers run at once on these changes: give them the time
	// they would need to (wrongly) let go, then look.
	poll.Eventually(t, settle, poll.State("kubectl shows the claim Terminating", func() (bool, string) {
		got := s.mustKubectl("get", "pvc", "data", "--no-headers")
		return strings.Contains(got, "Terminating"), got
	}))
	for _, what := range []string{"pvc/data", "pv/disk"} {
		if _, stderr, err := s.kubectl("get", what); err != nil {
			t.Errorf("%s went while in use: %s", what, stderr)
		}
	}
	if err := c.CoreV1().Pods("default").Delete(ctx, "user", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, settle, poll.State("claim and volume gone once unused", func() (bool, string) {
		_, claimErr := c.CoreV1().PersistentVolumeClaims("default").Get(ctx, "data", metav1.GetOptions{})
		_, volErr := c.CoreV1().PersistentVolumes().Get(ctx, "disk", metav1.GetOptions{})
		return apierrors.IsNotFound(claimErr) && apierrors.IsNotFound(volErr), fmt.Sprint(claimErr, volErr)
	}))
}

// TestPodSecurityAdmission: with real kubectl, a namespace's Pod Security
// labels refuse a pod above its enforced level with upstream's 403, warn
// (kubectl prints "Warning: ...") about one above its warn level, warn
// about existing pods when the enforced level is raised, and bad label
// values are refused.
func TestPodSecurityAdmission(t *testing.T) {
	s := startServer(t)
	s.mustKubectl("create", "namespace", "psa")
	s.mustKubectl("label", "namespace", "psa", "pod-security.kubernetes.io/enforce=baseline", "pod-security.kubernetes.io/warn=restricted")
	_, stderr, err := s.kubectl("-n", "psa", "run", "plain", "--image=busybox", "--restart=Never")
	if want := `Warning: would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "plain" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "plain" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "plain" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "plain" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")`; err != nil || !strings.Contains(stderr, want) {
		t.Errorf("a pod above the warn level: %v\n got %s\nwant %s", err, stderr, want)
	}
	host := "apiVersion: v1\nkind: Pod\nmetadata: {name: host, namespace: psa}\nspec:\n  hostNetwork: true\n  containers: [{name: c, image: busybox}]\n"
	_, stderr, err = s.kubectlStdin(host, "apply", "-f", "-")
	if want := `pods "host" is forbidden: violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)`; err == nil || !strings.Contains(stderr, want) {
		t.Errorf("a pod above the enforced level: %v %s", err, stderr)
	}
	// kubectl debug adds an ephemeral container: a privileged one breaks
	// the enforced level, a plain one does not.
	_, stderr, err = s.kubectl("-n", "psa", "debug", "plain", "--image=busybox", "--profile=sysadmin", "--attach=false", "--container=dbg")
	if want := `violates PodSecurity "baseline:latest": privileged (container "dbg" must not set securityContext.privileged=true)`; err == nil || !strings.Contains(stderr, want) {
		t.Errorf("a privileged ephemeral container: %v\n got %s\nwant %s", err, stderr, want)
	}
	s.mustKubectl("-n", "psa", "debug", "plain", "--image=busybox", "--profile=baseline", "--attach=false", "--container=dbg2")
	// Labelling a pod is not judged again.
	s.mustKubectl("-n", "psa", "label", "pod", "plain", "tier=web")
	_, stderr, err = s.kubectl("label", "namespace", "psa", "pod-security.kubernetes.io/enforce=restricted", "--overwrite")
	if err != nil || !strings.Contains(stderr, `Warning: existing pods in namespace "psa" violate the new PodSecurity enforce level "restricted:latest"`) ||
		!strings.Contains(stderr, "Warning: plain: allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile") {
		t.Errorf("raising the enforced level: %v %s", err, stderr)
	}
	_, stderr, err = s.kubectl("label", "namespace", "psa", "pod-security.kubernetes.io/enforce=strict", "--overwrite")
	if err == nil || !strings.Contains(stderr, `metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "strict": must be one of privileged, baseline, restricted`) {
		t.Errorf("a bad level: %v %s", err, stderr)
	}
}

// TestImmortalNamespaces: deletes are admitted too; NamespaceLifecycle
// refuses to delete default, kube-system and kube-public with upstream's
// words (kubectl and a dry run alike), while another namespace goes.
func TestImmortalNamespaces(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	for _, ns := range []string{"default", "kube-system", "kube-public"} {
		_, stderr, err := s.kubectl("delete", "namespace", ns)
		if want := fmt.Sprintf(`namespaces %q is forbidden: this namespace may not be deleted`, ns); err == nil || !strings.Contains(stderr, want) {
			t.Errorf("kubectl delete namespace %s: %v %s, want %q", ns, err, stderr, want)
		}
		err = s.client().CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}})
		if !apierrors.IsForbidden(err) {
			t.Errorf("dry-run delete of %s: %v, want 403", ns, err)
		}
		got, err := s.client().CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if err != nil || got.DeletionTimestamp != nil {
			t.Errorf("namespace %s after the refused deletes: %v %v", ns, err, got.GetDeletionTimestamp())
		}
	}
	s.mustKubectl("create", "namespace", "mortal")
	s.mustKubectl("delete", "namespace", "mortal", "--wait=false")
}
