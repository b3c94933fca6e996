package registry

import (
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

func resourceFor(t *testing.T, plural string) *Resource {
	t.Helper()
	for _, r := range Catalog() {
		if r.Resource() == plural {
			return r
		}
	}
	t.Fatalf("no resource %s", plural)
	return nil
}

func pod(mutate func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
	if mutate != nil {
		mutate(p)
	}
	return p
}

func TestPodDefaults(t *testing.T) {
	r := resourceFor(t, "pods")
	p := pod(func(p *corev1.Pod) {
		p.Spec.Containers[0].Image = "busybox:1.36"
		p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80}}
		p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}
		p.Spec.Volumes = []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{}}}}
	})
	r.Default(p)
	c := p.Spec.Containers[0]
	checks := map[string]bool{
		"restartPolicy Always":        p.Spec.RestartPolicy == corev1.RestartPolicyAlways,
		"dnsPolicy ClusterFirst":      p.Spec.DNSPolicy == corev1.DNSClusterFirst,
		"grace 30":                    *p.Spec.TerminationGracePeriodSeconds == 30,
		"default-scheduler":           p.Spec.SchedulerName == "default-scheduler",
		"pull IfNotPresent for a tag": c.ImagePullPolicy == corev1.PullIfNotPresent,
		"port protocol TCP":           c.Ports[0].Protocol == corev1.ProtocolTCP,
		"requests default to limits":  c.Resources.Requests.Cpu().String() == "1",
		"termination message path":    c.TerminationMessagePath == "/dev/termination-log",
		"configMap volume mode 0644":  *p.Spec.Volumes[0].ConfigMap.DefaultMode == 0o644,
		"enableServiceLinks":          *p.Spec.EnableServiceLinks,
	}
	for name, ok := range checks {
		if !ok {
			t.Errorf("default not applied: %s", name)
		}
	}
	untagged := pod(nil)
	r.Default(untagged)
	if untagged.Spec.Containers[0].ImagePullPolicy != corev1.PullAlways {
		t.Errorf("untagged image: pull policy %s, want Always", untagged.Spec.Containers[0].ImagePullPolicy)
	}
}

func TestPodValidation(t *testing.T) {
	r := resourceFor(t, "pods")
	cases := []struct {
		name   string
		mutate func(*corev1.Pod)
		field  string // "" means valid
	}{
		{"valid", nil, ""},
		{"no containers", func(p *corev1.Pod) { p.Spec.Containers = nil }, "spec.containers"},
		{"missing image", func(p *corev1.Pod) { p.Spec.Containers[0].Image = "" }, "spec.containers[0].image"},
		{"bad container name", func(p *corev1.Pod) { p.Spec.Containers[0].Name = "Bad_Name" }, "spec.containers[0].name"},
		{"duplicate container", func(p *corev1.Pod) { p.Spec.Containers = append(p.Spec.Containers, p.Spec.Containers[0]) }, "spec.containers[1].name"},
		{"port out of range", func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 0, Protocol: "TCP"}}
		}, "spec.containers[0].ports[0].containerPort"},
		{"bad restart policy", func(p *corev1.Pod) { p.Spec.RestartPolicy = "Sometimes" }, "spec.restartPolicy"},
		{"mount of unknown volume", func(p *corev1.Pod) {
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "nope", MountPath: "/x"}}
		}, "spec.containers[0].volumeMounts[0].name"},
		{"request over limit", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: corev1.ResourceList{"cpu": resource.MustParse("2")}, Limits: corev1.ResourceList{"cpu": resource.MustParse("1")}}
		}, "spec.containers[0].resources.requests[cpu]"},
		{"probe without handler", func(p *corev1.Pod) { p.Spec.Containers[0].LivenessProbe = &corev1.Probe{} }, "spec.containers[0].livenessProbe"},
		{"valid sysctls", func(p *corev1.Pod) {
			p.Spec.SecurityContext = &corev1.PodSecurityContext{Sysctls: []corev1.Sysctl{{Name: "kernel.shm_rmid_forced", Value: "1"}, {Name: "net/ipv4/ip_local_port_range", Value: "1024 65535"}, {Name: "safe-and-unsafe"}}}
		}, ""},
		{"sysctl ending in a dash", func(p *corev1.Pod) {
			p.Spec.SecurityContext = &corev1.PodSecurityContext{Sysctls: []corev1.Sysctl{{Name: "foo-"}}}
		}, "spec.securityContext.sysctls[0].name"},
		{"sysctl with an empty segment", func(p *corev1.Pod) {
			p.Spec.SecurityContext = &corev1.PodSecurityContext{Sysctls: []corev1.Sysctl{{Name: "kernel.shmmax"}, {Name: "bar.."}}}
		}, "spec.securityContext.sysctls[1].name"},
		{"duplicate sysctl", func(p *corev1.Pod) {
			p.Spec.SecurityContext = &corev1.PodSecurityContext{Sysctls: []corev1.Sysctl{{Name: "net.ipv4.ip_forward"}, {Name: "net/ipv4/ip_forward"}}}
		}, "spec.securityContext.sysctls[1].name"},
		{"net sysctl on the host network", func(p *corev1.Pod) {
			p.Spec.HostNetwork = true
			p.Spec.SecurityContext = &corev1.PodSecurityContext{Sysctls: []corev1.Sysctl{{Name: "net.ipv4.ip_forward"}}}
		}, "spec.securityContext.sysctls[0].name"},
	}
	for _, c := range cases {
		p := pod(c.mutate)
		r.Default(p)
		errs := r.Validate(p)
		if c.field == "" {
			if len(errs) > 0 {
				t.Errorf("%s: unexpected errors %v", c.name, errs)
			}
			continue
		}
		found := false
		for _, e := range errs {
			if e.Field == c.field {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no error on %s; got %v", c.name, c.field, errs)
		}
	}
}

func TestPodUpdateOnlyMutableFields(t *testing.T) {
	r := resourceFor(t, "pods")
	old := pod(nil)
	r.Default(old)
	image := old.DeepCopy()
	image.Spec.Containers[0].Image = "busybox:2"
	if errs := r.ValidateUpdate(image, old); len(errs) > 0 {
		t.Errorf("image change refused: %v", errs)
	}
	policy := old.DeepCopy()
	policy.Spec.RestartPolicy = corev1.RestartPolicyNever
	if errs := r.ValidateUpdate(policy, old); len(errs) == 0 || !strings.Contains(errs.ToAggregate().Error(), "pod updates may not change fields") {
		t.Errorf("restartPolicy change accepted: %v", errs)
	}
}

func TestWorkloadValidation(t *testing.T) {
	r := resourceFor(t, "deployments")
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "d", Namespace: "ns"}, Spec: appsv1.DeploymentSpec{
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "a"}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "b"}}, Spec: pod(nil).Spec},
	}}
	r.Default(d)
	errs := r.Validate(d)
	if len(errs) != 1 || errs[0].Field != "spec.template.metadata.labels" {
		t.Errorf("selector mismatch: %v", errs)
	}
	d.Spec.Template.Labels["app"] = "a"
	d.Spec.Strategy.RollingUpdate.MaxSurge = ptr.To(intstrZero())
	d.Spec.Strategy.RollingUpdate.MaxUnavailable = ptr.To(intstrZero())
	if errs := r.Validate(d); len(errs) != 1 || !strings.Contains(errs[0].Field, "maxUnavailable") {
		t.Errorf("maxSurge=maxUnavailable=0: %v", errs)
	}
}

func TestDeleteStep(t *testing.T) {
	g := &Registry{Now: func() time.Time { return time.Unix(1700000000, 0) }}
	pods, cms := resourceFor(t, "pods"), resourceFor(t, "configmaps")
	scheduled := pod(func(p *corev1.Pod) { p.Spec.NodeName = "n1"; p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](30) })
	fg := metav1.DeletePropagationForeground
	cases := []struct {
		name      string
		r         *Resource
		obj       runtime.Object
		opts      metav1.DeleteOptions
		gone      bool
		grace     int64
		finalizer string
	}{
		{"configmap goes at once", cms, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c"}}, metav1.DeleteOptions{}, true, 0, ""},
		{"unscheduled pod goes at once", pods, pod(nil), metav1.DeleteOptions{}, true, 0, ""},
		{"scheduled pod waits its grace period", pods, scheduled, metav1.DeleteOptions{}, false, 30, ""},
		{"grace 0 forces", pods, scheduled, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}, true, 0, ""},
		{"finalizer keeps the object", cms, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c", Finalizers: []string{"x/y"}}}, metav1.DeleteOptions{}, false, 0, "x/y"},
		{"foreground adds its finalizer", cms, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c"}}, metav1.DeleteOptions{PropagationPolicy: &fg}, false, 0, FinalizerForeground},
		{"orphanDependents adds orphan", cms, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c"}}, metav1.DeleteOptions{OrphanDependents: ptr.To(true)}, false, 0, FinalizerOrphan},
		{"namespace waits for its finalizer", resourceFor(t, "namespaces"), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "n"}, Spec: corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{"kubernetes"}}}, metav1.DeleteOptions{}, false, 0, ""},
	}
	for _, c := range cases {
		next, err := g.deleteStep(c.r, "x", c.obj, c.opts)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if (next == nil) != c.gone {
			t.Errorf("%s: gone=%v, want %v", c.name, next == nil, c.gone)
			continue
		}
		if next == nil {
			continue
		}
		acc := next.(metav1.Object)
		if acc.GetDeletionTimestamp() == nil || *acc.GetDeletionGracePeriodSeconds() != c.grace {
			t.Errorf("%s: deletionTimestamp %v grace %v", c.name, acc.GetDeletionTimestamp(), acc.GetDeletionGracePeriodSeconds())
		}
		if c.finalizer != "" && !contains(acc.GetFinalizers(), c.finalizer) {
			t.Errorf("%s: finalizers %v lack %s", c.name, acc.GetFinalizers(), c.finalizer)
		}
	}
	if _, err := g.deleteStep(cms, "c", &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c", UID: "a"}}, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: ptr.To[typesUID]("b")}}); err == nil {
		t.Error("UID precondition not enforced")
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestPodTableRow(t *testing.T) {
	p := pod(func(p *corev1.Pod) {
		p.Spec.NodeName = "n1"
		p.Status.PodIP = "10.42.0.5"
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c", Ready: true, RestartCount: 2, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
		p.Status.Phase = corev1.PodRunning
	})
	row := podRow(p, true)
	want := []any{"p", "1/1", "Running", "2"}
	for i, w := range want {
		if row[i] != w {
			t.Errorf("cell %d = %v, want %v (row %v)", i, row[i], w, row)
		}
	}
	if row[5] != "10.42.0.5" || row[6] != "n1" || row[7] != "<none>" || row[8] != "<none>" {
		t.Errorf("wide cells: %v", row[5:])
	}
	p.Status.ContainerStatuses[0] = corev1.ContainerStatus{Name: "c", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}}
	if r := podRow(p, false); r[2] != "CrashLoopBackOff" || r[1] != "0/1" {
		t.Errorf("crashing pod row: %v", r)
	}
}

func TestCronSchedule(t *testing.T) {
	for _, ok := range []string{"*/5 * * * *", "0 0 * * 0", "@hourly", "15 10 1-7 JAN,feb mon-fri", "@every 1h"} {
		if err := validateSchedule(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"* * * *", "60 * * * *", "* 24 * * *", "TZ=UTC * * * * *", "*/0 * * * *", "a b c d e"} {
		if err := validateSchedule(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

type typesUID = types.UID

func intstrZero() intstr.IntOrString { return intstr.FromInt32(0) }

func TestNodePodCIDRs(t *testing.T) {
	r := resourceFor(t, "nodes")
	node := func(podCIDR string, cidrs ...string) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}, Spec: corev1.NodeSpec{PodCIDR: podCIDR, PodCIDRs: cidrs}}
	}
	// Defaulting fills each field from the other.
	n := node("10.42.3.0/24")
	r.Default(n)
	if len(n.Spec.PodCIDRs) != 1 || n.Spec.PodCIDRs[0] != "10.42.3.0/24" {
		t.Errorf("podCIDRs defaulted to %v", n.Spec.PodCIDRs)
	}
	n = node("", "10.42.4.0/24", "fd00:42::/64")
	r.Default(n)
	if n.Spec.PodCIDR != "10.42.4.0/24" {
		t.Errorf("podCIDR defaulted to %q", n.Spec.PodCIDR)
	}
	cases := []struct {
		name string
		node *corev1.Node
		want string // a substring of the error, "" for valid
	}{
		{"one range", node("10.42.0.0/24", "10.42.0.0/24"), ""},
		{"dual stack", node("10.42.0.0/24", "10.42.0.0/24", "fd00:42::/64"), ""},
		{"not a CIDR", node("10.42.0.0/33", "10.42.0.0/33"), "spec.podCIDRs[0]"},
		{"two of one family", node("10.42.0.0/24", "10.42.0.0/24", "10.42.1.0/24"), "no more than one CIDR for each IP family"},
		{"podCIDR not the first", node("10.42.1.0/24", "10.42.0.0/24"), "spec.podCIDR"},
	}
	for _, c := range cases {
		errs := validatePodCIDRs(c.node)
		switch {
		case c.want == "" && len(errs) > 0:
			t.Errorf("%s: unexpected %v", c.name, errs)
		case c.want != "" && !strings.Contains(fmt.Sprint(errs), c.want):
			t.Errorf("%s: errors %v, want one about %s", c.name, errs, c.want)
		}
	}
}
