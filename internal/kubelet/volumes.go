package kubelet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"syscall"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/internal/kubelet/volume"
)

// volumeRefresh is how often configMap, secret and downward API volumes are
// rewritten from the API, so updates reach running pods.
const volumeRefreshSeconds = 10

func (k *Kubelet) podDir(uid string) string { return filepath.Join(k.cfg.RootDir, "pods", uid) }

func (k *Kubelet) volumeDir(uid, plugin, name string) string {
	return filepath.Join(k.podDir(uid), "volumes", "kubernetes.io~"+plugin, name)
}

// setupVolumes prepares every volume of the pod and returns them by name.
// It is idempotent and cheap when nothing changed, so each sync calls it.
func (k *Kubelet) setupVolumes(ctx context.Context, pod *v1.Pod, podIP string) (map[string]volume.Mounted, error) {
	out := map[string]volume.Mounted{}
	uid := string(pod.UID)
	var fsGroup *int64
	if sc := pod.Spec.SecurityContext; sc != nil {
		fsGroup = sc.FSGroup
	}
	for _, vol := range pod.Spec.Volumes {
		src := vol.VolumeSource
		var mv volume.Mounted
		var err error
		switch {
		case src.EmptyDir != nil:
			mv.HostPath = k.volumeDir(uid, "empty-dir", vol.Name)
			err = volume.SetupEmptyDir(mv.HostPath, src.EmptyDir)
			if err == nil {
				err = volume.ChownGroup(mv.HostPath, fsGroup)
			}
		case src.HostPath != nil:
			mv.HostPath = src.HostPath.Path
			err = volume.CheckHostPath(src.HostPath)
		case src.ConfigMap != nil, src.Secret != nil, src.DownwardAPI != nil, src.Projected != nil:
			plugin := map[bool]string{true: "secret", false: "configmap"}[src.Secret != nil]
			switch {
			case src.DownwardAPI != nil:
				plugin = "downward-api"
			case src.Projected != nil:
				plugin = "projected"
			}
			mv.HostPath, mv.ReadOnly = k.volumeDir(uid, plugin, vol.Name), true
			var files map[string]volume.File
			files, err = k.volumeFiles(ctx, pod, vol.Name, src, podIP)
			if err == nil && (src.Secret != nil || src.Projected != nil) {
				// Secrets never touch disk: the volume is a tmpfs.
				err = volume.EnsureTmpfs(mv.HostPath, "")
			}
			if err == nil {
				_, err = volume.WriteAtomic(mv.HostPath, files)
			}
			if err == nil {
				err = volume.ChownGroup(mv.HostPath, fsGroup)
			}
		case src.Image != nil:
			mv.HostPath, mv.ReadOnly = k.volumeDir(uid, "image", vol.Name), true
			err = k.mountImage(ctx, pod, vol.Name, src.Image, mv.HostPath)
		case src.PersistentVolumeClaim != nil:
			mv.HostPath, err = k.claimPath(ctx, pod.Namespace, src.PersistentVolumeClaim.ClaimName)
			mv.ReadOnly = src.PersistentVolumeClaim.ReadOnly
		default:
			err = errors.New("volume type not supported by this node")
		}
		if err != nil {
			return nil, volume.MountError{Volume: vol.Name, Err: err}
		}
		out[vol.Name] = mv
	}
	return out, nil
}

// volumeFiles computes the files of a configMap, secret, downwardAPI or
// projected volume.
func (k *Kubelet) volumeFiles(ctx context.Context, pod *v1.Pod, volName string, src v1.VolumeSource, podIP string) (map[string]volume.File, error) {
	files := map[string]volume.File{}
	switch {
	case src.ConfigMap != nil:
		return files, k.configMapFiles(ctx, pod.Namespace, src.ConfigMap.Name, src.ConfigMap.Items, src.ConfigMap.Optional, volume.Mode(src.ConfigMap.DefaultMode), files)
	case src.Secret != nil:
		return files, k.secretFiles(ctx, pod.Namespace, src.Secret.SecretName, src.Secret.Items, src.Secret.Optional, volume.Mode(src.Secret.DefaultMode), files)
	case src.DownwardAPI != nil:
		return files, downwardFiles(pod, src.DownwardAPI.Items, volume.Mode(src.DownwardAPI.DefaultMode), k.downwardSources(podIP), files)
	case src.Projected != nil:
		def := volume.Mode(src.Projected.DefaultMode)
		for i, p := range src.Projected.Sources {
			var err error
			switch {
			case p.ConfigMap != nil:
				err = k.configMapFiles(ctx, pod.Namespace, p.ConfigMap.Name, p.ConfigMap.Items, p.ConfigMap.Optional, def, files)
			case p.Secret != nil:
				err = k.secretFiles(ctx, pod.Namespace, p.Secret.Name, p.Secret.Items, p.Secret.Optional, def, files)
			case p.DownwardAPI != nil:
				err = downwardFiles(pod, p.DownwardAPI.Items, def, k.downwardSources(podIP), files)
			case p.ServiceAccountToken != nil:
				err = k.tokenFile(ctx, pod, p.ServiceAccountToken, def, files)
			case p.ClusterTrustBundle != nil:
				err = k.trustBundleFile(ctx, p.ClusterTrustBundle, def, files)
			case p.PodCertificate != nil:
				err = k.podCertificateFiles(ctx, pod, volName, i, p.PodCertificate, def, files)
			}
			if err != nil {
				return nil, err
			}
		}
	}
	return files, nil
}

func (k *Kubelet) configMapFiles(ctx context.Context, ns, name string, items []v1.KeyToPath, optional *bool, def os.FileMode, files map[string]volume.File) error {
	cm, err := k.client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		if isOptional(optional) {
			return nil
		}
		return fmt.Errorf("configmap %q not found", name)
	}
	if err != nil {
		return err
	}
	data := map[string][]byte{}
	for key, v := range cm.Data {
		data[key] = []byte(v)
	}
	for key, v := range cm.BinaryData {
		data[key] = v
	}
	return volume.KeyFiles("configmap", name, data, items, optional, def, files)
}

func (k *Kubelet) secretFiles(ctx context.Context, ns, name string, items []v1.KeyToPath, optional *bool, def os.FileMode, files map[string]volume.File) error {
	s, err := k.client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		if isOptional(optional) {
			return nil
		}
		return fmt.Errorf("secret %q not found", name)
	}
	if err != nil {
		return err
	}
	return volume.KeyFiles("secret", name, s.Data, items, optional, def, files)
}

// downwardSources are what a downwardAPI volume can read besides the pod.
func (k *Kubelet) downwardSources(podIP string) envSources {
	_, alloc := k.capacity()
	return envSources{podIP: podIP, podIPs: []string{podIP}, hostIP: k.cfg.NodeIP.String(), allocatable: alloc}
}

func downwardFiles(pod *v1.Pod, items []v1.DownwardAPIVolumeFile, def os.FileMode, src envSources, files map[string]volume.File) error {
	for _, it := range items {
		var v string
		var err error
		switch {
		case it.FieldRef != nil:
			v, err = podField(pod, it.FieldRef.FieldPath, src)
		case it.ResourceFieldRef != nil:
			v, err = resourceField(pod, nil, it.ResourceFieldRef, src.allocatable)
		}
		if err != nil {
			return err
		}
		files[path.Clean(it.Path)] = volume.File{Data: []byte(v), Mode: volume.ItemMode(it.Mode, def)}
	}
	return nil
}

// tokenFile asks the API for a bound service account token.
func (k *Kubelet) tokenFile(ctx context.Context, pod *v1.Pod, p *v1.ServiceAccountTokenProjection, def os.FileMode, files map[string]volume.File) error {
	token, err := k.requestToken(ctx, pod, p)
	if err != nil {
		return fmt.Errorf("get service account token: %w", err)
	}
	files[path.Clean(p.Path)] = volume.File{Data: []byte(token), Mode: def}
	return nil
}

// claimPath resolves a bound PersistentVolumeClaim to the directory of its
// hostPath or local PersistentVolume.
func (k *Kubelet) claimPath(ctx context.Context, ns, claim string) (string, error) {
	pvc, err := k.client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, claim, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", fmt.Errorf("persistentvolumeclaim %q not found", claim)
	}
	if err != nil {
		return "", err
	}
	if pvc.Spec.VolumeName == "" || pvc.Status.Phase != v1.ClaimBound {
		return "", fmt.Errorf("persistentvolumeclaim %q is not bound", claim)
	}
	pv, err := k.client.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("persistentvolume %q: %w", pvc.Spec.VolumeName, err)
	}
	switch {
	case pv.Spec.HostPath != nil && localPathDir(pv, k.cfg.NodeName) != "":
		// Any pod user may write to a provisioned directory, as upstream's
		// local-path provisioner makes them.
		if err := os.MkdirAll(pv.Spec.HostPath.Path, 0o755); err != nil {
			return "", fmt.Errorf("local-path volume %q: %w", pv.Name, err)
		}
		return pv.Spec.HostPath.Path, os.Chmod(pv.Spec.HostPath.Path, 0o777)
	case pv.Spec.HostPath != nil:
		return pv.Spec.HostPath.Path, volume.CheckHostPath(pv.Spec.HostPath)
	case pv.Spec.Local != nil:
		if _, err := os.Stat(pv.Spec.Local.Path); err != nil {
			return "", fmt.Errorf("local volume %q: %w", pv.Name, err)
		}
		return pv.Spec.Local.Path, nil
	}
	return "", fmt.Errorf("persistentvolume %q: only hostPath and local volumes are supported on this node", pv.Name)
}

// teardownVolumes unmounts the pod's tmpfs volumes and removes its
// directory.
func (k *Kubelet) teardownVolumes(uid string) error {
	dir := k.podDir(uid)
	var mounts []string
	table := volume.MountPoints()
	_ = filepath.Walk(filepath.Join(dir, "volumes"), func(p string, info os.FileInfo, err error) error {
		if err == nil && info.IsDir() && (table[p] || volume.IsMountPoint(p)) {
			mounts = append(mounts, p)
			return filepath.SkipDir
		}
		return nil
	})
	for _, m := range mounts {
		if filepath.Base(filepath.Dir(m)) == "kubernetes.io~image" && k.cfg.ImageMounts != nil {
			// The image's snapshot goes with the mount.
			if err := k.cfg.ImageMounts.Unmount(context.Background(), m); err == nil {
				continue
			}
		}
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			return fmt.Errorf("unmount %s: %w", m, err)
		}
	}
	return os.RemoveAll(dir)
}

// mountImage serves an image volume: the image is pulled by its pull
// policy once, when the volume is first set up, and its filesystem mounted
// read-only; later syncs find the mount and leave it.
func (k *Kubelet) mountImage(ctx context.Context, pod *v1.Pod, volName string, src *v1.ImageVolumeSource, target string) error {
	if k.cfg.ImageMounts == nil {
		return errors.New("image volumes need the containerd this node supervises")
	}
	if volume.MountPoints()[target] {
		return nil
	}
	policy := src.PullPolicy
	if policy == "" {
		policy = v1.PullIfNotPresent
	}
	// The pull reports as upstream's does, under the volume's name.
	if _, _, _, err := k.ensureImage(ctx, pod, &v1.Container{Name: volName, Image: src.Reference, ImagePullPolicy: policy}); err != nil {
		return err
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		return err
	}
	return k.cfg.ImageMounts.Mount(ctx, src.Reference, target)
}
