package admission

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
)

// ServiceAccountMountPath is where in-cluster clients find their token.
const ServiceAccountMountPath = "/var/run/secrets/kubernetes.io/serviceaccount"

// APIAccessTokenSeconds is the token life of kube-api-access volumes
// (upstream's 3607: an hour, recognisable as this plugin's default).
const APIAccessTokenSeconds = 3607

// MirrorAnnotation marks a static pod's mirror in the API.
const MirrorAnnotation = "kubernetes.io/config.mirror"

var (
	podsGVR            = corev1.SchemeGroupVersion.WithResource("pods")
	serviceAccountsGVR = corev1.SchemeGroupVersion.WithResource("serviceaccounts")
)

// serviceAccount is upstream's ServiceAccount admission of new pods: the
// default ServiceAccount if none is named, which must exist; and unless
// the pod or its ServiceAccount opts out, the kube-api-access-<suffix>
// projected volume (a bound token the node refreshes, the cluster CA, the
// namespace) mounted at ServiceAccountMountPath in every container.
type serviceAccount struct{ objects Objects }

func (*serviceAccount) Handles(op Operation) bool { return op == Create }

func (p *serviceAccount) Admit(ctx context.Context, a *Attributes) error {
	pod, ok := a.Object.(*corev1.Pod)
	if !ok || !a.Is(podsGVR) {
		return nil
	}
	if _, mirror := pod.Annotations[MirrorAnnotation]; mirror {
		// The node's own pods run without the API's identities.
		return nil
	}
	if pod.Spec.ServiceAccountName == "" {
		pod.Spec.ServiceAccountName = "default"
	}
	o, err := p.objects.Get(ctx, serviceAccountsGVR, pod.Namespace, pod.Spec.ServiceAccountName)
	if apierrors.IsNotFound(err) {
		return a.forbidden(fmt.Errorf("error looking up service account %s/%s: serviceaccount %q not found", pod.Namespace, pod.Spec.ServiceAccountName, pod.Spec.ServiceAccountName))
	}
	if err != nil {
		return err
	}
	sa := o.(*corev1.ServiceAccount)
	mount := ptr.Deref(sa.AutomountServiceAccountToken, true)
	if pod.Spec.AutomountServiceAccountToken != nil {
		mount = *pod.Spec.AutomountServiceAccountToken
	}
	if !mount {
		return nil
	}
	// A pod that already mounts something there keeps it.
	for _, c := range slices.Concat(pod.Spec.InitContainers, pod.Spec.Containers) {
		for _, m := range c.VolumeMounts {
			if m.MountPath == ServiceAccountMountPath {
				return nil
			}
		}
	}
	name := "kube-api-access-" + utilrand.String(5)
	pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		DefaultMode: ptr.To[int32](0o644),
		Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{ExpirationSeconds: ptr.To[int64](APIAccessTokenSeconds), Path: "token"}},
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"}, Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
			{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}}},
		},
	}}})
	m := corev1.VolumeMount{Name: name, ReadOnly: true, MountPath: ServiceAccountMountPath}
	for i := range pod.Spec.InitContainers {
		pod.Spec.InitContainers[i].VolumeMounts = append(pod.Spec.InitContainers[i].VolumeMounts, m)
	}
	for i := range pod.Spec.Containers {
		pod.Spec.Containers[i].VolumeMounts = append(pod.Spec.Containers[i].VolumeMounts, m)
	}
	return nil
}
