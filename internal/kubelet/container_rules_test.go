package kubelet

import (
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "x", "EMPTY": ""}
	cases := map[string]string{
		"plain":         "plain",
		"$(A)":          "x",
		"pre-$(A)-$(A)": "pre-x-x",
		"$$(A)":         "$(A)",
		"$(MISSING)":    "$(MISSING)",
		"$(EMPTY)!":     "!",
		"$(A":           "$(A",
		"cost $5":       "cost $5",
		"trailing $":    "trailing $",
	}
	for in, want := range cases {
		if got := expand(in, vars); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestContainerEnv(t *testing.T) {
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Labels: map[string]string{"app": "web"}}}
	c := &v1.Container{
		Name: "main",
		EnvFrom: []v1.EnvFromSource{
			{ConfigMapRef: &v1.ConfigMapEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}}, Prefix: "CFG_"},
			{SecretRef: &v1.SecretEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "absent"}, Optional: ptr.To(true)}},
		},
		Env: []v1.EnvVar{
			{Name: "GREETING", Value: "hello $(CFG_NAME) in $(NS)"},
			{Name: "NS", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
			{Name: "LATE", Value: "$(NS)"},
			{Name: "IP", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
			{Name: "APP", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}}},
			{Name: "PASSWORD", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "s"}, Key: "pw"}}},
		},
	}
	src := envSources{
		configMaps: map[string]*v1.ConfigMap{"cfg": {Data: map[string]string{"NAME": "skiff"}}},
		secrets:    map[string]*v1.Secret{"s": {Data: map[string][]byte{"pw": []byte("s3cret")}}},
		podIP:      "10.42.0.7",
		services:   map[string]string{"KUBERNETES_SERVICE_HOST": "10.43.0.1"},
	}
	env, err := containerEnv(pod, c, src)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range env {
		got[e.Name] = e.Value
	}
	want := map[string]string{
		"KUBERNETES_SERVICE_HOST": "10.43.0.1", "CFG_NAME": "skiff",
		// NS is defined after GREETING, so GREETING keeps the reference.
		"GREETING": "hello skiff in $(NS)", "NS": "ns", "LATE": "ns",
		"IP": "10.42.0.7", "APP": "web", "PASSWORD": "s3cret",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("env %v", got)
	}

	c.EnvFrom[1].SecretRef.Optional = nil
	if _, err := containerEnv(pod, c, src); err == nil || !strings.Contains(err.Error(), `secret "absent" not found`) {
		t.Errorf("a required missing secret: %v", err)
	}
}

func TestPodPhase(t *testing.T) {
	running := v1.ContainerStatus{State: v1.ContainerState{Running: &v1.ContainerStateRunning{}}}
	ok := v1.ContainerStatus{State: v1.ContainerState{Terminated: &v1.ContainerStateTerminated{ExitCode: 0}}}
	failed := v1.ContainerStatus{State: v1.ContainerState{Terminated: &v1.ContainerStateTerminated{ExitCode: 1}}}
	waiting := v1.ContainerStatus{State: v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: "ContainerCreating"}}}
	backoff := v1.ContainerStatus{State: v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
		LastTerminationState: v1.ContainerState{Terminated: &v1.ContainerStateTerminated{ExitCode: 1}}}
	pod := func(policy v1.RestartPolicy) *v1.Pod {
		return &v1.Pod{Spec: v1.PodSpec{RestartPolicy: policy, InitContainers: []v1.Container{{Name: "init"}}}}
	}
	cases := []struct {
		name     string
		pod      *v1.Pod
		inits    []v1.ContainerStatus
		apps     []v1.ContainerStatus
		initDone bool
		want     v1.PodPhase
	}{
		{"init running", pod(v1.RestartPolicyAlways), []v1.ContainerStatus{running}, []v1.ContainerStatus{waiting}, false, v1.PodPending},
		{"init failed, Never", pod(v1.RestartPolicyNever), []v1.ContainerStatus{failed}, []v1.ContainerStatus{waiting}, false, v1.PodFailed},
		{"init failed, OnFailure retries", pod(v1.RestartPolicyOnFailure), []v1.ContainerStatus{failed}, []v1.ContainerStatus{waiting}, false, v1.PodPending},
		{"one creating", pod(v1.RestartPolicyAlways), nil, []v1.ContainerStatus{running, waiting}, true, v1.PodPending},
		{"running", pod(v1.RestartPolicyAlways), nil, []v1.ContainerStatus{running, ok}, true, v1.PodRunning},
		{"crash looping is Running", pod(v1.RestartPolicyAlways), nil, []v1.ContainerStatus{backoff}, true, v1.PodRunning},
		{"all succeeded, Never", pod(v1.RestartPolicyNever), nil, []v1.ContainerStatus{ok, ok}, true, v1.PodSucceeded},
		{"all succeeded, Always restarts", pod(v1.RestartPolicyAlways), nil, []v1.ContainerStatus{ok}, true, v1.PodRunning},
		{"one failed, Never", pod(v1.RestartPolicyNever), nil, []v1.ContainerStatus{ok, failed}, true, v1.PodFailed},
		{"one failed, OnFailure", pod(v1.RestartPolicyOnFailure), nil, []v1.ContainerStatus{ok, failed}, true, v1.PodRunning},
	}
	for _, c := range cases {
		if got := podPhase(c.pod, c.inits, c.apps, c.initDone); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

func TestLinuxResources(t *testing.T) {
	c := func(req, lim v1.ResourceList) *v1.Container {
		return &v1.Container{Resources: v1.ResourceRequirements{Requests: req, Limits: lim}}
	}
	cpu := func(q string) v1.ResourceList { return v1.ResourceList{v1.ResourceCPU: resource.MustParse(q)} }
	cases := []struct {
		name                  string
		c                     *v1.Container
		shares, quota, memory int64
	}{
		{"best effort", c(nil, nil), 2, 0, 0},
		{"request 250m", c(cpu("250m"), nil), 256, 0, 0},
		{"limit 500m sets quota and shares", c(nil, cpu("500m")), 512, 50000, 0},
		{"tiny limit keeps the minimum quota", c(nil, cpu("1m")), 2, 1000, 0},
		{"memory limit", c(nil, v1.ResourceList{v1.ResourceMemory: resource.MustParse("64Mi")}), 2, 0, 64 << 20},
	}
	for _, tc := range cases {
		r := linuxResources(tc.c)
		if r.CpuShares != tc.shares || r.CpuQuota != tc.quota || r.MemoryLimitInBytes != tc.memory || r.CpuPeriod != 100000 {
			t.Errorf("%s: shares %d quota %d memory %d period %d", tc.name, r.CpuShares, r.CpuQuota, r.MemoryLimitInBytes, r.CpuPeriod)
		}
	}
}

// TestResourceFieldDefaults checks the downward API's resource fields: a
// set limit or request with its divisor, and node allocatable for a limit
// the container does not set (upstream's rule); a missing request is 0.
func TestResourceFieldDefaults(t *testing.T) {
	c := v1.Container{Name: "c", Resources: v1.ResourceRequirements{
		Limits:   v1.ResourceList{v1.ResourceMemory: resource.MustParse("64Mi")},
		Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("250m")},
	}}
	pod := &v1.Pod{Spec: v1.PodSpec{Containers: []v1.Container{c}}}
	alloc := v1.ResourceList{v1.ResourceCPU: resource.MustParse("2"), v1.ResourceMemory: resource.MustParse("8Gi"), v1.ResourceEphemeralStorage: resource.MustParse("10Gi")}
	cases := []struct {
		resource, divisor, want string
	}{
		{"limits.memory", "1Mi", "64"},
		{"limits.cpu", "1m", "2000"},
		{"limits.cpu", "", "2"},
		{"limits.ephemeral-storage", "1Gi", "10"},
		{"requests.cpu", "1m", "250"},
		{"requests.memory", "", "0"},
	}
	for _, tc := range cases {
		ref := &v1.ResourceFieldSelector{Resource: tc.resource}
		if tc.divisor != "" {
			ref.Divisor = resource.MustParse(tc.divisor)
		}
		got, err := resourceField(pod, &pod.Spec.Containers[0], ref, alloc)
		if err != nil || got != tc.want {
			t.Errorf("%s / %s: %q %v, want %q", tc.resource, tc.divisor, got, err, tc.want)
		}
	}
}
