package admission

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"

	"github.com/skiff-sh/skiff/internal/auth"
)

// memObjects is an in-memory Objects for plugin tests.
type memObjects map[string]runtime.Object

func key(gvr schema.GroupVersionResource, ns, name string) string {
	return gvr.Resource + "/" + ns + "/" + name
}

func (m memObjects) add(gvr schema.GroupVersionResource, o runtime.Object) {
	a := o.(metav1.Object)
	m[key(gvr, a.GetNamespace(), a.GetName())] = o
}

func (m memObjects) Get(_ context.Context, gvr schema.GroupVersionResource, ns, name string) (runtime.Object, error) {
	if o, ok := m[key(gvr, ns, name)]; ok {
		return o, nil
	}
	return nil, apierrors.NewNotFound(gvr.GroupResource(), name)
}

// ResourceFor knows the core kinds the tests use as params.
func (m memObjects) ResourceFor(gvk schema.GroupVersionKind) (schema.GroupVersionResource, bool, bool) {
	if gvk.Group == "" && gvk.Kind == "ConfigMap" {
		return corev1.SchemeGroupVersion.WithResource("configmaps"), true, true
	}
	return schema.GroupVersionResource{}, false, false
}

func (m memObjects) Read(ctx context.Context, gvr schema.GroupVersionResource, ns, name string) (runtime.Object, error) {
	return m.Get(ctx, gvr, ns, name)
}

func (m memObjects) List(gvr schema.GroupVersionResource, ns string) []runtime.Object {
	var out []runtime.Object
	for k, o := range m {
		if strings.HasPrefix(k, gvr.Resource+"/"+ns+"/") || ns == "" && strings.HasPrefix(k, gvr.Resource+"/") {
			out = append(out, o)
		}
	}
	return out
}

func (m memObjects) Update(ctx context.Context, gvr schema.GroupVersionResource, ns, name, _ string, fn func(runtime.Object) (runtime.Object, error)) error {
	cur, err := m.Get(ctx, gvr, ns, name)
	if err != nil {
		return err
	}
	next, err := fn(cur.DeepCopyObject())
	if err != nil {
		return err
	}
	m[key(gvr, ns, name)] = next
	return nil
}

func TestNew(t *testing.T) {
	for _, c := range []struct {
		enable, disable []string
		want            []string
		err             string
	}{
		{want: Defaults()},
		{disable: []string{"LimitRanger", "ResourceQuota"}, want: slices.DeleteFunc(Defaults(), func(n string) bool { return n == "LimitRanger" || n == "ResourceQuota" })},
		// The order is the catalog's, not the flag's.
		{enable: []string{"ResourceQuota", "NamespaceLifecycle"}, want: Defaults()},
		{enable: []string{"AlwaysPullImages"}, err: `unknown admission plugin "AlwaysPullImages"`},
		{enable: []string{"Priority"}, disable: []string{"Priority"}, err: "both enabled and disabled"},
	} {
		chain, err := New(memObjects{}, c.enable, c.disable, Options{})
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("New(%v, %v) = %v, want error %q", c.enable, c.disable, err, c.err)
			}
			continue
		}
		if err != nil || !slices.Equal(chain.Names(), c.want) {
			t.Errorf("New(%v, %v) = %v, %v; want %v", c.enable, c.disable, chain.Names(), err, c.want)
		}
	}
	if Defaults()[0] != "NamespaceLifecycle" || Defaults()[len(Defaults())-1] != "ResourceQuota" {
		t.Errorf("the namespace must be checked first and quota charged last: %v", Defaults())
	}
}

func q(s string) resource.Quantity { return resource.MustParse(s) }

func rl(kv ...string) corev1.ResourceList {
	out := corev1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		out[corev1.ResourceName(kv[i])] = q(kv[i+1])
	}
	return out
}

func limitRange(items ...corev1.LimitRangeItem) *corev1.LimitRange {
	return &corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Name: "limits", Namespace: "ns"}, Spec: corev1.LimitRangeSpec{Limits: items}}
}

func container(name string, req, lim corev1.ResourceList) corev1.Container {
	return corev1.Container{Name: name, Resources: corev1.ResourceRequirements{Requests: req, Limits: lim}}
}

func podOf(cs ...corev1.Container) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}, Spec: corev1.PodSpec{Containers: cs}}
}

func TestLimitRangerDefaults(t *testing.T) {
	lr := limitRange(corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, Default: rl("cpu", "500m", "memory", "256Mi"), DefaultRequest: rl("cpu", "100m", "memory", "128Mi")})
	pod := podOf(container("named", rl("cpu", "200m"), nil), container("bare", nil, nil))
	pod.Spec.InitContainers = []corev1.Container{container("init", nil, rl("memory", "64Mi"))}
	DefaultContainerResources(pod, lr)
	for _, c := range []struct {
		got      corev1.ResourceList
		name     corev1.ResourceName
		want     string
		resource string
	}{
		{pod.Spec.Containers[0].Resources.Requests, "cpu", "200m", "named's own cpu request"},
		{pod.Spec.Containers[0].Resources.Requests, "memory", "128Mi", "named's default memory request"},
		{pod.Spec.Containers[1].Resources.Limits, "cpu", "500m", "bare's default cpu limit"},
		{pod.Spec.InitContainers[0].Resources.Limits, "memory", "64Mi", "init's own memory limit"},
		{pod.Spec.InitContainers[0].Resources.Requests, "cpu", "100m", "init's default cpu request"},
	} {
		if v, ok := c.got[c.name]; !ok || v.String() != c.want {
			t.Errorf("%s = %v, want %s", c.resource, c.got[c.name], c.want)
		}
	}
	want := "LimitRanger plugin set: memory request for container named; cpu, memory limit for container named; cpu, memory request for container bare; cpu, memory limit for container bare; cpu, memory request for init container init; cpu limit for init container init"
	if got := pod.Annotations[LimitRangerAnnotation]; got != want {
		t.Errorf("annotation\n got %q\nwant %q", got, want)
	}
}

func TestLimitRangerChecks(t *testing.T) {
	for _, c := range []struct {
		name string
		item corev1.LimitRangeItem
		pod  *corev1.Pod
		want []string
	}{
		{"within", corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, Min: rl("cpu", "100m"), Max: rl("cpu", "1")},
			podOf(container("c", rl("cpu", "200m"), rl("cpu", "500m"))), nil},
		{"over max limit", corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, Max: rl("memory", "1Gi")},
			podOf(container("c", nil, rl("memory", "2Gi"))), []string{"maximum memory usage per Container is 1Gi, but limit is 2Gi"}},
		{"no limit under a max", corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, Max: rl("cpu", "1")},
			podOf(container("c", rl("cpu", "1"), nil)), []string{"maximum cpu usage per Container is 1.  No limit is specified"}},
		{"under min", corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, Min: rl("cpu", "100m")},
			podOf(container("c", rl("cpu", "50m"), nil)), []string{"minimum cpu usage per Container is 100m, but request is 50m"}},
		{"no request over a min", corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, Min: rl("cpu", "100m")},
			podOf(container("c", nil, nil)), []string{"minimum cpu usage per Container is 100m.  No request is specified"}},
		{"ratio", corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, MaxLimitRequestRatio: rl("cpu", "2")},
			podOf(container("c", rl("cpu", "100m"), rl("cpu", "500m"))), []string{"cpu max limit to request ratio per Container is 2, but provided ratio is 5.000000"}},
		{"pod total over max", corev1.LimitRangeItem{Type: corev1.LimitTypePod, Max: rl("cpu", "1")},
			podOf(container("a", rl("cpu", "600m"), rl("cpu", "600m")), container("b", rl("cpu", "600m"), rl("cpu", "600m"))),
			[]string{"maximum cpu usage per Pod is 1, but limit is 1200m"}},
	} {
		var got []string
		for _, err := range PodLimitErrors(c.pod, limitRange(c.item)) {
			got = append(got, err.Error())
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	claim := &corev1.PersistentVolumeClaim{Spec: corev1.PersistentVolumeClaimSpec{Resources: corev1.VolumeResourceRequirements{Requests: rl("storage", "5Gi")}}}
	errs := ClaimLimitErrors(claim, limitRange(corev1.LimitRangeItem{Type: corev1.LimitTypePersistentVolumeClaim, Min: rl("storage", "1Gi"), Max: rl("storage", "2Gi")}))
	if len(errs) != 1 || errs[0].Error() != "maximum storage usage per PersistentVolumeClaim is 2Gi, but request is 5Gi" {
		t.Errorf("claim over max: %v", errs)
	}
}

// The plugin refuses with one 403 listing every violation, and leaves pod
// updates alone (their resources cannot change).
func TestLimitRangerPlugin(t *testing.T) {
	objs := memObjects{}
	objs.add(limitRangesGVR, limitRange(corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, Max: rl("cpu", "1", "memory", "1Gi")}))
	chain, _ := New(objs, nil, []string{"NamespaceLifecycle", "ServiceAccount", "Priority", "ResourceQuota", "PodSecurity"}, Options{})
	pod := podOf(container("c", nil, rl("cpu", "2", "memory", "2Gi")))
	a := &Attributes{Operation: Create, Resource: podsGVR, Namespace: "ns", Name: "p", Object: pod}
	err := chain.Validate(context.Background(), a)
	want := `pods "p" is forbidden: [maximum cpu usage per Container is 1, but limit is 2, maximum memory usage per Container is 1Gi, but limit is 2Gi]`
	if !apierrors.IsForbidden(err) || err.Error() != want {
		t.Errorf("create: %v\nwant %s", err, want)
	}
	a.Operation, a.OldObject = Update, pod
	if err := chain.Validate(context.Background(), a); err != nil {
		t.Errorf("update of a pod: %v", err)
	}
}

func TestDefaultTolerationSecondsAndNodeTaint(t *testing.T) {
	pod := podOf()
	pod.Spec.Tolerations = []corev1.Toleration{{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute}}
	if err := (defaultTolerationSeconds{}).Admit(context.Background(), &Attributes{Operation: Create, Resource: podsGVR, Object: pod}); err != nil {
		t.Fatal(err)
	}
	if len(pod.Spec.Tolerations) != 2 || pod.Spec.Tolerations[1].Key != corev1.TaintNodeNotReady || *pod.Spec.Tolerations[1].TolerationSeconds != 300 {
		t.Errorf("tolerations: %+v", pod.Spec.Tolerations)
	}
	node := &corev1.Node{}
	if err := (taintNodesByCondition{}).Admit(context.Background(), &Attributes{Operation: Create, Resource: nodesGVR, Object: node}); err != nil {
		t.Fatal(err)
	}
	if len(node.Spec.Taints) != 1 || node.Spec.Taints[0].Key != corev1.TaintNodeNotReady || node.Spec.Taints[0].Effect != corev1.TaintEffectNoSchedule {
		t.Errorf("new node's taints: %+v", node.Spec.Taints)
	}
}

// An update is charged what it grows by; one that does not grow is free.
func TestQuotaChargesUpdates(t *testing.T) {
	objs := memObjects{}
	quota := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "q", Namespace: "ns", ResourceVersion: "1"},
		Spec:   corev1.ResourceQuotaSpec{Hard: rl("requests.storage", "10Gi")},
		Status: corev1.ResourceQuotaStatus{Hard: rl("requests.storage", "10Gi"), Used: rl("requests.storage", "4Gi")}}
	objs.add(resourceQuotasGVR, quota)
	claim := func(size string) *corev1.PersistentVolumeClaim {
		return &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ns"},
			Spec: corev1.PersistentVolumeClaimSpec{Resources: corev1.VolumeResourceRequirements{Requests: rl("storage", size)}}}
	}
	p := &resourceQuota{objects: objs}
	used := func() string {
		o, _ := objs.Get(context.Background(), resourceQuotasGVR, "ns", "q")
		u := o.(*corev1.ResourceQuota).Status.Used["requests.storage"]
		return u.String()
	}
	for _, c := range []struct {
		from, to string
		err      string
		used     string
	}{
		{"4Gi", "4Gi", "", "4Gi"},
		{"4Gi", "6Gi", "", "6Gi"},
		{"6Gi", "20Gi", "exceeded quota", "6Gi"},
		{"6Gi", "2Gi", "", "6Gi"}, // shrinking is not refunded here: the controller recounts
	} {
		a := &Attributes{Operation: Update, Resource: claimsGVR, Namespace: "ns", Name: "c", Object: claim(c.to), OldObject: claim(c.from)}
		err := p.Validate(context.Background(), a)
		if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%s→%s: %v, want %q", c.from, c.to, err, c.err)
		}
		if got := used(); got != c.used {
			t.Errorf("%s→%s: used %s, want %s", c.from, c.to, got, c.used)
		}
	}
}

func TestPodSecurity(t *testing.T) {
	ctx := context.Background()
	objs := memObjects{}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns", Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": "baseline", "pod-security.kubernetes.io/warn": "restricted", "pod-security.kubernetes.io/warn-version": "v1.37"}}}
	objs.add(namespacesGVR, ns)
	p := &podSecurity{objects: objs, config: PodSecurityConfig{Exemptions: PodSecurityExemptions{Usernames: []string{"ci-bot"}}}}
	var warnings []string
	wctx := WithWarnings(ctx, func(m string) { warnings = append(warnings, m) })

	host := podOf(container("c", nil, nil))
	host.Spec.HostNetwork = true
	err := p.Validate(wctx, &Attributes{Operation: Create, Resource: podsGVR, Namespace: "ns", Name: "p", Object: host})
	if want := `pods "p" is forbidden: violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)`; err == nil || err.Error() != want {
		t.Errorf("enforced: %v\nwant %s", err, want)
	}
	if err := p.Validate(wctx, &Attributes{Operation: Create, Resource: podsGVR, Namespace: "ns", Name: "p", Object: host, User: auth.User{Name: "ci-bot"}}); err != nil {
		t.Errorf("exempt user: %v", err)
	}
	warnings = nil
	if err := p.Validate(wctx, &Attributes{Operation: Create, Resource: podsGVR, Namespace: "ns", Name: "p", Object: podOf(container("c", nil, nil))}); err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.HasPrefix(warnings[0], `would violate PodSecurity "restricted:v1.37": allowPrivilegeEscalation != false (container "c" must set`) {
		t.Errorf("warnings: %q", warnings)
	}
	// Updates: a label change to a pod admitted before the level was
	// raised passes; an ephemeral container that breaks the level, or a
	// changed image of a pod that breaks it, is refused.
	relabeled := host.DeepCopy()
	relabeled.Labels = map[string]string{"tier": "x"}
	if err := p.Validate(wctx, &Attributes{Operation: Update, Resource: podsGVR, Namespace: "ns", Name: "p", Object: relabeled, OldObject: host}); err != nil {
		t.Errorf("a label update of an existing pod: %v", err)
	}
	if err := p.Validate(wctx, &Attributes{Operation: Update, Resource: podsGVR, Subresource: "status", Namespace: "ns", Name: "p", Object: host, OldObject: host}); err != nil {
		t.Errorf("a status update: %v", err)
	}
	reimaged := host.DeepCopy()
	reimaged.Spec.Containers[0].Image = "other"
	if err := p.Validate(wctx, &Attributes{Operation: Update, Resource: podsGVR, Namespace: "ns", Name: "p", Object: reimaged, OldObject: host}); !apierrors.IsForbidden(err) {
		t.Errorf("a new image in a pod on the host network: %v, want 403", err)
	}
	plain := podOf(container("c", nil, nil))
	debugged := plain.DeepCopy()
	debugged.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: "busybox",
		SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)}}}}
	err = p.Validate(wctx, &Attributes{Operation: Update, Resource: podsGVR, Subresource: "ephemeralcontainers", Namespace: "ns", Name: "p", Object: debugged, OldObject: plain})
	if want := `pods "p" is forbidden: violates PodSecurity "baseline:latest": privileged (container "debug" must not set securityContext.privileged=true)`; err == nil || err.Error() != want {
		t.Errorf("a privileged ephemeral container: %v\nwant %s", err, want)
	}

	// A workload is warned about, never refused.
	warnings = nil
	d := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: host.Spec}}}
	if err := p.Validate(wctx, &Attributes{Operation: Create, Resource: appsv1.SchemeGroupVersion.WithResource("deployments"), Namespace: "ns", Name: "d", Object: d}); err != nil || len(warnings) != 1 {
		t.Errorf("deployment: %v %q", err, warnings)
	}

	bad := ns.DeepCopy()
	bad.Labels["pod-security.kubernetes.io/enforce"] = "strict"
	err = p.Validate(wctx, &Attributes{Operation: Update, Resource: namespacesGVR, Name: "ns", Object: bad, OldObject: ns})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), `metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "strict"`) {
		t.Errorf("bad label: %v", err)
	}
	objs.add(podsGVR, host)
	stricter := ns.DeepCopy()
	stricter.Labels["pod-security.kubernetes.io/enforce"] = "restricted"
	warnings = nil
	if err := p.Validate(wctx, &Attributes{Operation: Update, Resource: namespacesGVR, Name: "ns", Object: stricter, OldObject: ns}); err != nil {
		t.Fatal(err)
	}
	if want := []string{`existing pods in namespace "ns" violate the new PodSecurity enforce level "restricted:latest"`,
		"p: host namespaces, allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile"}; !slices.Equal(warnings, want) {
		t.Errorf("warnings of a stricter namespace:\n got %q\nwant %q", warnings, want)
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("pss.yaml", "apiVersion: pod-security.admission.config.k8s.io/v1\nkind: PodSecurityConfiguration\ndefaults: {enforce: baseline, warn: restricted}\nexemptions: {namespaces: [kube-system]}\n")
	good := write("admission.yaml", "apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins:\n- name: PodSecurity\n  path: pss.yaml\n")
	opts, err := LoadConfig(good)
	if err != nil || opts.PodSecurity.Defaults.Enforce != "baseline" || opts.PodSecurity.Exemptions.Namespaces[0] != "kube-system" {
		t.Fatalf("config: %+v %v", opts, err)
	}
	bad := write("bad.yaml", "apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins:\n- name: PodSecurity\n  configuration:\n    apiVersion: pod-security.admission.config.k8s.io/v1\n    kind: PodSecurityConfiguration\n    defaults: {enforce: strict}\n")
	if _, err := LoadConfig(bad); err == nil || !strings.Contains(err.Error(), bad+`: line 8: plugins[0].configuration.defaults.enforce: Invalid value: "strict"`) {
		t.Errorf("bad config: %v", err)
	}
	// A plugin's own file: its errors name that file and its lines.
	write("pss-bad.yaml", "apiVersion: pod-security.admission.config.k8s.io/v1\nkind: PodSecurityConfiguration\ndefaults:\n  enforce: baseline\n  enforce-versoin: latest\n")
	badPath := write("bad-path.yaml", "apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins:\n- name: PodSecurity\n  path: pss-bad.yaml\n")
	if _, err := LoadConfig(badPath); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "pss-bad.yaml")+`: line 5: defaults.enforce-versoin: unknown field`) {
		t.Errorf("bad plugin file: %v", err)
	}
	unknown := write("unknown.yaml", "apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins:\n- name: PodSecurity\n- name: NoSuchPlugin\n")
	if _, err := LoadConfig(unknown); err == nil || !strings.Contains(err.Error(), unknown+`: line 5: plugins[1].name: Unsupported value: "NoSuchPlugin"`) {
		t.Errorf("unknown plugin: %v", err)
	}
}

func TestNamespaceLifecycleDeletes(t *testing.T) {
	c, err := New(memObjects{}, nil, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c2 := range []struct {
		gvr     schema.GroupVersionResource
		name    string
		refused bool
	}{
		{namespacesGVR, "default", true},
		{namespacesGVR, "kube-system", true},
		{namespacesGVR, "kube-public", true},
		{namespacesGVR, "kube-node-lease", false},
		{namespacesGVR, "team-a", false},
		{corev1.SchemeGroupVersion.WithResource("configmaps"), "default", false},
	} {
		err := c.Validate(context.Background(), &Attributes{Operation: Delete, Resource: c2.gvr, Name: c2.name,
			OldObject: &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: c2.name}}})
		if got := apierrors.IsForbidden(err); got != c2.refused {
			t.Errorf("delete %s %s: %v, refused %v", c2.gvr.Resource, c2.name, err, c2.refused)
		}
		if c2.refused && err.Error() != `namespaces "`+c2.name+`" is forbidden: this namespace may not be deleted` {
			t.Errorf("refusal: %v", err)
		}
	}
}
