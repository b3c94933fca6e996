package integration

import (
	"context"
	"fmt"
	"testing"

	"github.com/skiff-sh/skiff/test/poll"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestVolumeBinding binds claims to the smallest fitting static volume,
// leaves an unsatisfiable claim Pending, and releases or deletes volumes
// whose claim goes, per reclaim policy.
func TestVolumeBinding(t *testing.T) {
	s := startServer(t)
	cs := s.client()
	ctx := context.Background()
	pv := func(name, size string, policy corev1.PersistentVolumeReclaimPolicy) {
		t.Helper()
		v := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PersistentVolumeSpec{
			Capacity:    corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)},
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, PersistentVolumeReclaimPolicy: policy,
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/tmp/" + name}},
		}}
		if _, err := cs.CoreV1().PersistentVolumes().Create(ctx, v, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pvc := func(name, size string) {
		t.Helper()
		c := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: new(string), AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}},
		}}
		if _, err := cs.CoreV1().PersistentVolumeClaims("default").Create(ctx, c, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pv("small", "1Gi", corev1.PersistentVolumeReclaimRetain)
	pv("big", "5Gi", corev1.PersistentVolumeReclaimRetain)
	pv("scratch", "3Gi", corev1.PersistentVolumeReclaimDelete)
	pvc("tiny", "500Mi")
	pvc("large", "4Gi")
	pvc("mid", "2Gi")
	pvc("huge", "10Gi")
	boundTo := func(claim string) string {
		c, _ := cs.CoreV1().PersistentVolumeClaims("default").Get(ctx, claim, metav1.GetOptions{})
		return string(c.Status.Phase) + ":" + c.Spec.VolumeName
	}
	poll.Eventually(t, settle, poll.State("bindings", func() (bool, string) {
		got := fmt.Sprintf("%s %s %s %s", boundTo("tiny"), boundTo("large"), boundTo("mid"), boundTo("huge"))
		return got == "Bound:small Bound:big Bound:scratch Pending:", got
	}))
	if out := s.mustKubectl("get", "pv", "big", "-o", "jsonpath={.status.phase} {.spec.claimRef.name}"); out != "Bound large" {
		t.Errorf("pv big: %s", out)
	}
	for _, c := range []string{"large", "mid"} {
		if err := cs.CoreV1().PersistentVolumeClaims("default").Delete(ctx, c, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	poll.Eventually(t, settle, poll.State("Retain volume released, Delete volume deleted", func() (bool, string) {
		big, _ := cs.CoreV1().PersistentVolumes().Get(ctx, "big", metav1.GetOptions{})
		_, err := cs.CoreV1().PersistentVolumes().Get(ctx, "scratch", metav1.GetOptions{})
		return big.Status.Phase == corev1.VolumeReleased && err != nil, fmt.Sprintf("big %s, scratch err %v", big.Status.Phase, err)
	}))
}
