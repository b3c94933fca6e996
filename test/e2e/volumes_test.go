package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/test/poll"

	certificatesv1 "k8s.io/api/certificates/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/skiff-sh/skiff/internal/pki"
)

// configMap, secret, emptyDir (memory), projected and downwardAPI volumes
// hold what they should; a secret update reaches the running pod; a pod
// whose ConfigMap is missing waits with FailedMount and starts once it
// appears.
func TestVolumes(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	if _, err := cl.client.CoreV1().Secrets(ns).Create(ctx, &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds"}, StringData: map[string]string{"password": "s3cret"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := busyboxPod(ns, "vols", `while true; do sleep 1; done`)
	p.Labels = map[string]string{"tier": "backend"}
	p.Spec.Volumes = []v1.Volume{
		{Name: "cfg", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "settings"},
			Items: []v1.KeyToPath{{Key: "mode", Path: "conf/mode", Mode: ptr.To[int32](0o600)}}}}},
		{Name: "sec", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "creds"}}},
		{Name: "scratch", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{Medium: v1.StorageMediumMemory}}},
		{Name: "info", VolumeSource: v1.VolumeSource{DownwardAPI: &v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{
			{Path: "labels", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
			{Path: "name", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}},
		}}}},
		{Name: "all", VolumeSource: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{
			{ConfigMap: &v1.ConfigMapProjection{LocalObjectReference: v1.LocalObjectReference{Name: "settings"}}},
			{Secret: &v1.SecretProjection{LocalObjectReference: v1.LocalObjectReference{Name: "creds"}}},
			{DownwardAPI: &v1.DownwardAPIProjection{Items: []v1.DownwardAPIVolumeFile{{Path: "ns", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}}}},
		}}}},
	}
	p.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{
		{Name: "cfg", MountPath: "/etc/cfg"}, {Name: "sec", MountPath: "/etc/sec"}, {Name: "scratch", MountPath: "/scratch"},
		{Name: "info", MountPath: "/etc/info"}, {Name: "all", MountPath: "/etc/all"},
	}
	p.Spec.Containers[0].Env = []v1.EnvVar{
		{Name: "PASSWORD", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "creds"}, Key: "password"}}},
		{Name: "POD_IP", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
		{Name: "GREETING", Value: "pw=$(PASSWORD)"},
	}
	createPod(t, p)

	// The ConfigMap does not exist yet: the pod waits with FailedMount.
	poll.Eventually(t, 30*time.Second, func() error {
		if !hasEvent(podEvents(t, ns, "vols"), "FailedMount", `configmap "settings" not found`) {
			return fmt.Errorf("no FailedMount event: %v", reasons(podEvents(t, ns, "vols")))
		}
		return nil
	})
	if got := getPod(t, ns, "vols"); got.Status.Phase != v1.PodPending {
		t.Fatalf("phase %s while a volume is missing", got.Status.Phase)
	}
	if _, err := cl.client.CoreV1().ConfigMaps(ns).Create(ctx, &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings"}, Data: map[string]string{"mode": "fast"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := waitRunningReady(t, ns, "vols")

	for _, check := range []struct{ script, want string }{
		{"cat /etc/cfg/conf/mode", "fast"},
		{"stat -L -c %a /etc/cfg/conf/mode", "600"},
		{"cat /etc/sec/password", "s3cret"},
		{"grep -c ' /etc/sec tmpfs' /proc/mounts || grep /etc/sec /proc/mounts | grep -c tmpfs", "1"},
		{"grep ' /scratch ' /proc/mounts | cut -d' ' -f3", "tmpfs"},
		{"cat /etc/info/labels", `tier="backend"`},
		{"cat /etc/info/name", "vols"},
		{"cat /etc/all/mode /etc/all/password /etc/all/ns", "fasts3cret" + ns},
		{"echo $PASSWORD $GREETING", "s3cret pw=s3cret"},
		{"echo $POD_IP", pod.Status.PodIP},
	} {
		out, err := cl.skiff("kubectl", "-n", ns, "exec", "vols", "--", "sh", "-c", check.script)
		if err != nil || strings.TrimSpace(out) != check.want {
			t.Errorf("%s: got %q (%v), want %q", check.script, strings.TrimSpace(out), err, check.want)
		}
	}

	sec, err := cl.client.CoreV1().Secrets(ns).Get(ctx, "creds", getOpts)
	if err != nil {
		t.Fatal(err)
	}
	sec.Data["password"] = []byte("rotated")
	if _, err := cl.client.CoreV1().Secrets(ns).Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 60*time.Second, func() error {
		out, err := cl.skiff("kubectl", "-n", ns, "exec", "vols", "--", "cat", "/etc/sec/password", "/etc/all/password")
		if err != nil || out != "rotatedrotated" {
			return fmt.Errorf("secret not updated in the pod: %v %q", err, out)
		}
		return nil
	})
}

// A claim without a class gets the default local-path class; its volume is
// provisioned on the node of its first pod, keeps data across pods, and its
// directory goes with the claim.
func TestLocalPathVolume(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	pvc, err := cl.client.CoreV1().PersistentVolumeClaims(ns).Create(ctx, &v1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data"},
		Spec: v1.PersistentVolumeClaimSpec{
			AccessModes: []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce},
			Resources:   v1.VolumeResourceRequirements{Requests: v1.ResourceList{v1.ResourceStorage: resource.MustParse("16Mi")}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != "local-path" {
		t.Fatalf("class %v, want the default local-path", pvc.Spec.StorageClassName)
	}
	withClaim := func(name, script string) *v1.Pod {
		p := busyboxPod(ns, name, script)
		p.Spec.Volumes = []v1.Volume{{Name: "data", VolumeSource: v1.VolumeSource{PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}}
		p.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "data", MountPath: "/data"}}
		return p
	}
	createPod(t, withClaim("writer", `echo kept > /data/file; while true; do sleep 1; done`))
	writer := waitRunningReady(t, ns, "writer")
	bound, err := cl.client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data", getOpts)
	if err != nil {
		t.Fatal(err)
	}
	pvName := "pvc-" + string(bound.UID)
	if bound.Status.Phase != v1.ClaimBound || bound.Spec.VolumeName != pvName {
		t.Fatalf("claim %s bound to %q, want %s", bound.Status.Phase, bound.Spec.VolumeName, pvName)
	}
	pv, err := cl.client.CoreV1().PersistentVolumes().Get(ctx, pvName, getOpts)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(cl.dataDir, "storage", pvName)
	if pv.Spec.HostPath == nil || pv.Spec.HostPath.Path != dir || pv.Spec.NodeAffinity == nil ||
		pv.Spec.NodeAffinity.Required.NodeSelectorTerms[0].MatchExpressions[0].Values[0] != writer.Spec.NodeName {
		t.Errorf("volume %+v", pv.Spec)
	}
	poll.Eventually(t, 20*time.Second, func() error {
		b, err := os.ReadFile(filepath.Join(dir, "file"))
		if string(b) != "kept\n" {
			return fmt.Errorf("file on the node: %q %v", b, err)
		}
		return nil
	})

	if err := cl.client.CoreV1().Pods(ns).Delete(ctx, "writer", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	createPod(t, withClaim("reader", `cat /data/file; while true; do sleep 1; done`))
	waitRunningReady(t, ns, "reader")
	poll.Eventually(t, 20*time.Second, func() error {
		out, err := cl.skiff("kubectl", "-n", ns, "logs", "reader")
		if err != nil || strings.TrimSpace(out) != "kept" {
			return fmt.Errorf("reader logs: %v %q", err, out)
		}
		return nil
	})

	if err := cl.client.CoreV1().Pods(ns).Delete(ctx, "reader", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 60*time.Second, func() error {
		if _, err := cl.client.CoreV1().Pods(ns).Get(ctx, "reader", getOpts); err == nil {
			return fmt.Errorf("reader still there")
		}
		return nil
	})
	if err := cl.client.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, "data", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 60*time.Second, func() error {
		if _, err := cl.client.CoreV1().PersistentVolumes().Get(ctx, pvName, getOpts); err == nil {
			return fmt.Errorf("volume %s still there", pvName)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			return fmt.Errorf("directory %s still there: %v", dir, err)
		}
		return nil
	})
}

// TestClusterTrustBundleVolume projects ClusterTrustBundles into a pod: one
// by name, the union of a signer's bundles chosen by labels, and an
// optional one that does not exist (an empty file).
func TestClusterTrustBundleVolume(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	ctbs := cl.client.CertificatesV1().ClusterTrustBundles()
	pems := map[string]string{}
	for _, b := range []struct {
		name, signer, alive string
	}{{"e2e-plain", "", ""}, {"example.com:e2e:live", "example.com/e2e", "true"}, {"example.com:e2e:dead", "example.com/e2e", "false"}} {
		pems[b.name] = selfSignedCAPEM(t, b.name)
		ctb := &certificatesv1.ClusterTrustBundle{ObjectMeta: metav1.ObjectMeta{Name: b.name}, Spec: certificatesv1.ClusterTrustBundleSpec{SignerName: b.signer, TrustBundle: pems[b.name]}}
		if b.alive != "" {
			ctb.Labels = map[string]string{"alive": b.alive}
		}
		if _, err := ctbs.Create(ctx, ctb, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ctbs.Delete(context.Background(), b.name, metav1.DeleteOptions{}) })
	}
	// A name without the signer's prefix is refused.
	bad := &certificatesv1.ClusterTrustBundle{ObjectMeta: metav1.ObjectMeta{Name: "wrong"}, Spec: certificatesv1.ClusterTrustBundleSpec{SignerName: "example.com/e2e", TrustBundle: pems["e2e-plain"]}}
	if _, err := ctbs.Create(ctx, bad, metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("bundle named without its signer's prefix: want 422, got %v", err)
	}
	p := busyboxPod(ns, "ctb", `while true; do sleep 1; done`)
	p.Spec.Volumes = []v1.Volume{{Name: "ctb", VolumeSource: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{
		{ClusterTrustBundle: &v1.ClusterTrustBundleProjection{Name: ptr.To("e2e-plain"), Path: "plain.pem"}},
		{ClusterTrustBundle: &v1.ClusterTrustBundleProjection{SignerName: ptr.To("example.com/e2e"), LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"alive": "true"}}, Path: "live.pem"}},
		{ClusterTrustBundle: &v1.ClusterTrustBundleProjection{Name: ptr.To("nonexistent"), Optional: ptr.To(true), Path: "none.pem"}},
	}}}}}
	p.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "ctb", MountPath: "/ctb"}}
	createPod(t, p)
	waitRunningReady(t, ns, "ctb")
	for file, want := range map[string]string{"plain.pem": pems["e2e-plain"], "live.pem": pems["example.com:e2e:live"], "none.pem": ""} {
		out, err := cl.skiff("kubectl", "-n", ns, "exec", "ctb", "--", "cat", "/ctb/"+file)
		if err != nil || out != want {
			t.Errorf("/ctb/%s: %v\n%s", file, err, out)
		}
	}
}

func selfSignedCAPEM(t *testing.T, cn string) string {
	t.Helper()
	ca, err := pki.LoadOrCreateCA(t.TempDir(), cn)
	if err != nil {
		t.Fatal(err)
	}
	return string(ca.CertPEM)
}
