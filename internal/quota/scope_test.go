package quota

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestScopes(t *testing.T) {
	bestEffort := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}}}
	burstable := &corev1.Pod{Spec: corev1.PodSpec{PriorityClassName: "high", ActiveDeadlineSeconds: ptr.To[int64](60),
		Containers: []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}}}}}}
	cross := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}, Affinity: &corev1.Affinity{PodAffinity: &corev1.PodAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{TopologyKey: "k", NamespaceSelector: &metav1.LabelSelector{}}}}}}}
	sel := func(scope corev1.ResourceQuotaScope, op corev1.ScopeSelectorOperator, values ...string) corev1.ResourceQuotaSpec {
		return corev1.ResourceQuotaSpec{ScopeSelector: &corev1.ScopeSelector{MatchExpressions: []corev1.ScopedResourceSelectorRequirement{{ScopeName: scope, Operator: op, Values: values}}}}
	}
	cases := []struct {
		name string
		spec corev1.ResourceQuotaSpec
		pod  *corev1.Pod
		want bool
	}{
		{"no scope matches all", corev1.ResourceQuotaSpec{}, bestEffort, true},
		{"Terminating: active deadline", corev1.ResourceQuotaSpec{Scopes: []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeTerminating}}, burstable, true},
		{"Terminating: none", corev1.ResourceQuotaSpec{Scopes: []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeTerminating}}, bestEffort, false},
		{"NotTerminating", corev1.ResourceQuotaSpec{Scopes: []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeNotTerminating}}, bestEffort, true},
		{"BestEffort", corev1.ResourceQuotaSpec{Scopes: []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeBestEffort}}, bestEffort, true},
		{"BestEffort: a request", corev1.ResourceQuotaSpec{Scopes: []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeBestEffort}}, burstable, false},
		{"NotBestEffort and Terminating", corev1.ResourceQuotaSpec{Scopes: []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeNotBestEffort, corev1.ResourceQuotaScopeTerminating}}, burstable, true},
		{"PriorityClass In", sel(corev1.ResourceQuotaScopePriorityClass, corev1.ScopeSelectorOpIn, "high", "mid"), burstable, true},
		{"PriorityClass NotIn", sel(corev1.ResourceQuotaScopePriorityClass, corev1.ScopeSelectorOpNotIn, "high"), burstable, false},
		{"PriorityClass Exists", sel(corev1.ResourceQuotaScopePriorityClass, corev1.ScopeSelectorOpExists), bestEffort, false},
		{"PriorityClass DoesNotExist", sel(corev1.ResourceQuotaScopePriorityClass, corev1.ScopeSelectorOpDoesNotExist), bestEffort, true},
		{"CrossNamespacePodAffinity", sel(corev1.ResourceQuotaScopeCrossNamespacePodAffinity, corev1.ScopeSelectorOpExists), cross, true},
		{"CrossNamespacePodAffinity: none", sel(corev1.ResourceQuotaScopeCrossNamespacePodAffinity, corev1.ScopeSelectorOpExists), bestEffort, false},
	}
	for _, tc := range cases {
		if got := PodInScope(tc.spec, tc.pod); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestUsageExtendedAndStorageClass(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{
		Requests: corev1.ResourceList{"example.com/dongle": resource.MustParse("2"), corev1.ResourceEphemeralStorage: resource.MustParse("1Gi")},
		Limits:   corev1.ResourceList{corev1.ResourceEphemeralStorage: resource.MustParse("2Gi")},
	}}}}}
	gold := &corev1.PersistentVolumeClaim{Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: ptr.To("gold"),
		Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("5Gi")}}}}
	plain := &corev1.PersistentVolumeClaim{Spec: corev1.PersistentVolumeClaimSpec{
		Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}}}
	hard := corev1.ResourceList{"requests.example.com/dongle": resource.MustParse("4"), "requests.ephemeral-storage": resource.MustParse("10Gi"),
		"limits.ephemeral-storage": resource.MustParse("10Gi"), "ephemeral-storage": resource.MustParse("10Gi"),
		"gold.storageclass.storage.k8s.io/requests.storage": resource.MustParse("10Gi"), "gold.storageclass.storage.k8s.io/persistentvolumeclaims": resource.MustParse("3")}
	used := Usage(hard, []*corev1.Pod{pod}, nil, []*corev1.PersistentVolumeClaim{gold, plain}, nil)
	want := map[corev1.ResourceName]string{"requests.example.com/dongle": "2", "requests.ephemeral-storage": "1Gi", "limits.ephemeral-storage": "2Gi", "ephemeral-storage": "1Gi",
		"gold.storageclass.storage.k8s.io/requests.storage": "5Gi", "gold.storageclass.storage.k8s.io/persistentvolumeclaims": "1"}
	for name, w := range want {
		if q := used[name]; q.Cmp(resource.MustParse(w)) != 0 {
			t.Errorf("%s = %s, want %s", name, q.String(), w)
		}
	}
}
