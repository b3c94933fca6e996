package volumeprotection

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPlan(t *testing.T) {
	for _, c := range []struct {
		name           string
		fins           []string
		deleted, inUse bool
		want           Step
	}{
		{"new object without the finalizer", nil, false, false, AddFinalizer},
		{"protected and live", []string{ClaimFinalizer}, false, true, Keep},
		{"deleted while in use", []string{ClaimFinalizer}, true, true, Keep},
		{"deleted and unused", []string{"other", ClaimFinalizer}, true, false, RemoveFinalizer},
		{"deleted, already released", []string{"other"}, true, false, Keep},
	} {
		if got := Plan(c.fins, ClaimFinalizer, c.deleted, c.inUse); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	if got := withFinalizers([]string{"other", ClaimFinalizer}, ClaimFinalizer, RemoveFinalizer); len(got) != 1 || got[0] != "other" {
		t.Errorf("removed: %v", got)
	}
}

func TestPodUsesClaim(t *testing.T) {
	pod := func(phase corev1.PodPhase, vols ...corev1.Volume) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.PodSpec{Volumes: vols}, Status: corev1.PodStatus{Phase: phase}}
	}
	claim := corev1.Volume{Name: "v", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}
	ephemeral := corev1.Volume{Name: "scratch", VolumeSource: corev1.VolumeSource{Ephemeral: &corev1.EphemeralVolumeSource{}}}
	for _, c := range []struct {
		name  string
		pod   *corev1.Pod
		claim string
		want  bool
	}{
		{"running pod mounts it", pod(corev1.PodRunning, claim), "data", true},
		{"pending pod mounts it", pod(corev1.PodPending, claim), "data", true},
		{"finished pod", pod(corev1.PodSucceeded, claim), "data", false},
		{"another claim", pod(corev1.PodRunning, claim), "logs", false},
		{"ephemeral volume's claim", pod(corev1.PodRunning, ephemeral), "web-scratch", true},
	} {
		if got := PodUsesClaim(c.pod, c.claim); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	if VolumeInUse(&corev1.PersistentVolume{Status: corev1.PersistentVolumeStatus{Phase: corev1.VolumeReleased}}) {
		t.Error("a released volume is in use")
	}
}
