package kubelet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// volumeRefresh is how often configMap, secret and downward API volumes are
// rewritten from the API, so updates reach running pods.
const volumeRefreshSeconds = 10

// errMount is a volume that cannot be set up yet (FailedMount).
type errMount struct {
	volume string
	err    error
}

func (e errMount) Error() string {
	return fmt.Sprintf("MountVolume.SetUp failed for volume %q : %v", e.volume, e.err)
}

// mountedVolume is a volume ready on the host.
type mountedVolume struct {
	hostPath string
	readOnly bool
}

func (k *Kubelet) podDir(uid string) string { return filepath.Join(k.cfg.RootDir, "pods", uid) }

func (k *Kubelet) volumeDir(uid, plugin, name string) string {
	return filepath.Join(k.podDir(uid), "volumes", "kubernetes.io~"+plugin, name)
}

// setupVolumes prepares every volume of the pod and returns them by name.
// It is idempotent and cheap when nothing changed, so each sync calls it.
func (k *Kubelet) setupVolumes(ctx context.Context, pod *v1.Pod, podIP string) (map[string]mountedVolume, error) {
	out := map[string]mountedVolume{}
	uid := string(pod.UID)
	var fsGroup *int64
	if sc := pod.Spec.SecurityContext; sc != nil {
		fsGroup = sc.FSGroup
	}
	for _, vol := range pod.Spec.Volumes {
		src := vol.VolumeSource
		var mv mountedVolume
		var err error
		switch {
		case src.EmptyDir != nil:
			mv.hostPath = k.volumeDir(uid, "empty-dir", vol.Name)
			err = setupEmptyDir(mv.hostPath, src.EmptyDir)
			if err == nil {
				err = chownGroup(mv.hostPath, fsGroup)
			}
		case src.HostPath != nil:
			mv.hostPath = src.HostPath.Path
			err = checkHostPath(src.HostPath)
		case src.ConfigMap != nil, src.Secret != nil, src.DownwardAPI != nil, src.Projected != nil:
			plugin := map[bool]string{true: "secret", false: "configmap"}[src.Secret != nil]
			switch {
			case src.DownwardAPI != nil:
				plugin = "downward-api"
			case src.Projected != nil:
				plugin = "projected"
			}
			mv.hostPath, mv.readOnly = k.volumeDir(uid, plugin, vol.Name), true
			var files map[string]volumeFile
			files, err = k.volumeFiles(ctx, pod, vol.Name, src, podIP)
			if err == nil && (src.Secret != nil || src.Projected != nil) {
				// Secrets never touch disk: the volume is a tmpfs.
				err = ensureTmpfs(mv.hostPath, "")
			}
			if err == nil {
				_, err = writeAtomic(mv.hostPath, files)
			}
			if err == nil {
				err = chownGroup(mv.hostPath, fsGroup)
			}
		case src.Image != nil:
			mv.hostPath, mv.readOnly = k.volumeDir(uid, "image", vol.Name), true
			err = k.mountImage(ctx, pod, vol.Name, src.Image, mv.hostPath)
		case src.PersistentVolumeClaim != nil:
			mv.hostPath, err = k.claimPath(ctx, pod.Namespace, src.PersistentVolumeClaim.ClaimName)
			mv.readOnly = src.PersistentVolumeClaim.ReadOnly
		default:
			err = errors.New("volume type not supported by this node")
		}
		if err != nil {
			return nil, errMount{volume: vol.Name, err: err}
		}
		out[vol.Name] = mv
	}
	return out, nil
}

func setupEmptyDir(dir string, ed *v1.EmptyDirVolumeSource) error {
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return err
	}
	if ed.Medium == v1.StorageMediumMemory {
		size := ""
		if ed.SizeLimit != nil && !ed.SizeLimit.IsZero() {
			size = strconv.FormatInt(ed.SizeLimit.Value(), 10)
		}
		if err := ensureTmpfs(dir, size); err != nil {
			return err
		}
	}
	return os.Chmod(dir, 0o777)
}

// ensureTmpfs mounts a tmpfs on dir unless one is there already.
func ensureTmpfs(dir, size string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if isMountPoint(dir) {
		return nil
	}
	opts := "mode=0755"
	if size != "" {
		opts += ",size=" + size
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", dir, err)
	}
	return nil
}

// isMountPoint compares the device of dir with its parent's.
func isMountPoint(dir string) bool {
	var a, b syscall.Stat_t
	if syscall.Lstat(dir, &a) != nil || syscall.Lstat(filepath.Dir(dir), &b) != nil {
		return false
	}
	return a.Dev != b.Dev
}

// mountPoints lists the mount table's mount points: a read-only bind
// mount (what an image view of one layer is) keeps its device, so only
// the table knows it.
func mountPoints() map[string]bool {
	out := map[string]bool{}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 {
			out[unescapeMountPath(f[4])] = true
		}
	}
	return out
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountPath(p string) string {
	if !strings.Contains(p, "\\") {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] == '\\' && i+3 < len(p) {
			if n, err := strconv.ParseUint(p[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

func chownGroup(dir string, gid *int64) error {
	if gid == nil {
		return nil
	}
	return filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, -1, int(*gid)); err != nil {
			return err
		}
		if info.IsDir() && info.Mode()&os.ModeSymlink == 0 {
			return os.Chmod(p, info.Mode().Perm()|os.ModeSetgid)
		}
		return nil
	})
}

// checkHostPath enforces the hostPath type, creating what *OrCreate asks.
func checkHostPath(hp *v1.HostPathVolumeSource) error {
	t := v1.HostPathUnset
	if hp.Type != nil {
		t = *hp.Type
	}
	info, err := os.Stat(hp.Path)
	switch t {
	case v1.HostPathUnset:
		return nil
	case v1.HostPathDirectoryOrCreate:
		if os.IsNotExist(err) {
			return os.MkdirAll(hp.Path, 0o755)
		}
		if err == nil && !info.IsDir() {
			return fmt.Errorf("hostPath type check failed: %s is not a directory", hp.Path)
		}
		return err
	case v1.HostPathFileOrCreate:
		if os.IsNotExist(err) {
			if err := os.MkdirAll(filepath.Dir(hp.Path), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(hp.Path, os.O_CREATE|os.O_RDONLY, 0o644)
			if err != nil {
				return err
			}
			return f.Close()
		}
		if err == nil && !info.Mode().IsRegular() {
			return fmt.Errorf("hostPath type check failed: %s is not a file", hp.Path)
		}
		return err
	}
	if err != nil {
		return fmt.Errorf("hostPath type check failed: %s does not exist", hp.Path)
	}
	ok := map[v1.HostPathType]bool{
		v1.HostPathDirectory: info.IsDir(),
		v1.HostPathFile:      info.Mode().IsRegular(),
		v1.HostPathSocket:    info.Mode()&os.ModeSocket != 0,
		v1.HostPathCharDev:   info.Mode()&os.ModeCharDevice != 0,
		v1.HostPathBlockDev:  info.Mode()&os.ModeDevice != 0 && info.Mode()&os.ModeCharDevice == 0,
	}[t]
	if !ok {
		return fmt.Errorf("hostPath type check failed: %s is not a %s", hp.Path, t)
	}
	return nil
}

// volumeFiles computes the files of a configMap, secret, downwardAPI or
// projected volume.
func (k *Kubelet) volumeFiles(ctx context.Context, pod *v1.Pod, volume string, src v1.VolumeSource, podIP string) (map[string]volumeFile, error) {
	files := map[string]volumeFile{}
	switch {
	case src.ConfigMap != nil:
		return files, k.configMapFiles(ctx, pod.Namespace, src.ConfigMap.Name, src.ConfigMap.Items, src.ConfigMap.Optional, mode(src.ConfigMap.DefaultMode), files)
	case src.Secret != nil:
		return files, k.secretFiles(ctx, pod.Namespace, src.Secret.SecretName, src.Secret.Items, src.Secret.Optional, mode(src.Secret.DefaultMode), files)
	case src.DownwardAPI != nil:
		return files, downwardFiles(pod, src.DownwardAPI.Items, mode(src.DownwardAPI.DefaultMode), k.downwardSources(podIP), files)
	case src.Projected != nil:
		def := mode(src.Projected.DefaultMode)
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
				err = k.podCertificateFiles(ctx, pod, volume, i, p.PodCertificate, def, files)
			}
			if err != nil {
				return nil, err
			}
		}
	}
	return files, nil
}

func mode(m *int32) os.FileMode {
	if m == nil {
		return 0o644
	}
	return os.FileMode(*m)
}

func itemMode(m *int32, def os.FileMode) os.FileMode {
	if m == nil {
		return def
	}
	return os.FileMode(*m)
}

func (k *Kubelet) configMapFiles(ctx context.Context, ns, name string, items []v1.KeyToPath, optional *bool, def os.FileMode, files map[string]volumeFile) error {
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
	return keyFiles("configmap", name, data, items, optional, def, files)
}

func (k *Kubelet) secretFiles(ctx context.Context, ns, name string, items []v1.KeyToPath, optional *bool, def os.FileMode, files map[string]volumeFile) error {
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
	return keyFiles("secret", name, s.Data, items, optional, def, files)
}

func keyFiles(kind, name string, data map[string][]byte, items []v1.KeyToPath, optional *bool, def os.FileMode, files map[string]volumeFile) error {
	if len(items) == 0 {
		for key, v := range data {
			files[key] = volumeFile{data: v, mode: def}
		}
		return nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if isOptional(optional) {
				continue
			}
			return fmt.Errorf("configuration error: key %q not found in %s %q", it.Key, kind, name)
		}
		files[path.Clean(it.Path)] = volumeFile{data: v, mode: itemMode(it.Mode, def)}
	}
	return nil
}

// downwardSources are what a downwardAPI volume can read besides the pod.
func (k *Kubelet) downwardSources(podIP string) envSources {
	_, alloc := k.capacity()
	return envSources{podIP: podIP, podIPs: []string{podIP}, hostIP: k.cfg.NodeIP.String(), allocatable: alloc}
}

func downwardFiles(pod *v1.Pod, items []v1.DownwardAPIVolumeFile, def os.FileMode, src envSources, files map[string]volumeFile) error {
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
		files[path.Clean(it.Path)] = volumeFile{data: []byte(v), mode: itemMode(it.Mode, def)}
	}
	return nil
}

// tokenFile asks the API for a bound service account token.
func (k *Kubelet) tokenFile(ctx context.Context, pod *v1.Pod, p *v1.ServiceAccountTokenProjection, def os.FileMode, files map[string]volumeFile) error {
	token, err := k.requestToken(ctx, pod, p)
	if err != nil {
		return fmt.Errorf("get service account token: %w", err)
	}
	files[path.Clean(p.Path)] = volumeFile{data: []byte(token), mode: def}
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
		return pv.Spec.HostPath.Path, checkHostPath(pv.Spec.HostPath)
	case pv.Spec.Local != nil:
		if _, err := os.Stat(pv.Spec.Local.Path); err != nil {
			return "", fmt.Errorf("local volume %q: %w", pv.Name, err)
		}
		return pv.Spec.Local.Path, nil
	}
	return "", fmt.Errorf("persistentvolume %q: only hostPath and local volumes are supported on this node", pv.Name)
}

// subPathOf joins a volume path and a subPath, refusing escapes, and
// creates the subdirectory like upstream when it is missing.
func subPathOf(volume string, mv mountedVolume, sub string) (string, error) {
	if sub == "" {
		return mv.hostPath, nil
	}
	if path.IsAbs(sub) || strings.HasPrefix(path.Clean(sub), "..") {
		return "", fmt.Errorf("subPath %q of volume %q must be a relative path without '..'", sub, volume)
	}
	p := filepath.Join(mv.hostPath, sub)
	if resolved, err := filepath.EvalSymlinks(p); err == nil {
		return resolved, nil
	}
	if mv.readOnly {
		return "", fmt.Errorf("subPath %q does not exist in volume %q", sub, volume)
	}
	if err := os.MkdirAll(p, 0o755); err != nil {
		return "", err
	}
	return p, nil
}

// teardownVolumes unmounts the pod's tmpfs volumes and removes its
// directory.
func (k *Kubelet) teardownVolumes(uid string) error {
	dir := k.podDir(uid)
	var mounts []string
	table := mountPoints()
	_ = filepath.Walk(filepath.Join(dir, "volumes"), func(p string, info os.FileInfo, err error) error {
		if err == nil && info.IsDir() && (table[p] || isMountPoint(p)) {
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
func (k *Kubelet) mountImage(ctx context.Context, pod *v1.Pod, volume string, src *v1.ImageVolumeSource, target string) error {
	if k.cfg.ImageMounts == nil {
		return errors.New("image volumes need the containerd this node supervises")
	}
	if mountPoints()[target] {
		return nil
	}
	policy := src.PullPolicy
	if policy == "" {
		policy = v1.PullIfNotPresent
	}
	// The pull reports as upstream's does, under the volume's name.
	if _, _, _, err := k.ensureImage(ctx, pod, &v1.Container{Name: volume, Image: src.Reference, ImagePullPolicy: policy}); err != nil {
		return err
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		return err
	}
	return k.cfg.ImageMounts.Mount(ctx, src.Reference, target)
}
