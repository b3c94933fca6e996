// Package volume makes pod volumes on the node: files published atomically
// (configMap, secret, downwardAPI and projected volumes), emptyDir and tmpfs
// mounts, hostPath checks and subPaths. What the files hold comes from the
// API, which the kubelet reads; nothing here talks to it.
package volume

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	v1 "k8s.io/api/core/v1"
)

// errMount is a volume that cannot be set up yet (FailedMount).
type MountError struct {
	Volume string
	Err    error
}

func (e MountError) Error() string {
	return fmt.Sprintf("MountVolume.SetUp failed for volume %q : %v", e.Volume, e.Err)
}

// mountedVolume is a volume ready on the host.
type Mounted struct {
	HostPath string
	ReadOnly bool
}

func SetupEmptyDir(dir string, ed *v1.EmptyDirVolumeSource) error {
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return err
	}
	if ed.Medium == v1.StorageMediumMemory {
		size := ""
		if ed.SizeLimit != nil && !ed.SizeLimit.IsZero() {
			size = strconv.FormatInt(ed.SizeLimit.Value(), 10)
		}
		if err := EnsureTmpfs(dir, size); err != nil {
			return err
		}
	}
	return os.Chmod(dir, 0o777)
}

// ensureTmpfs mounts a tmpfs on dir unless one is there already.
func EnsureTmpfs(dir, size string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if IsMountPoint(dir) {
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
func IsMountPoint(dir string) bool {
	var a, b syscall.Stat_t
	if syscall.Lstat(dir, &a) != nil || syscall.Lstat(filepath.Dir(dir), &b) != nil {
		return false
	}
	return a.Dev != b.Dev
}

// mountPoints lists the mount table's mount points: a read-only bind
// mount (what an image view of one layer is) keeps its device, so only
// the table knows it.
func MountPoints() map[string]bool {
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

func ChownGroup(dir string, gid *int64) error {
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
func CheckHostPath(hp *v1.HostPathVolumeSource) error {
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

func Mode(m *int32) os.FileMode {
	if m == nil {
		return 0o644
	}
	return os.FileMode(*m)
}

func ItemMode(m *int32, def os.FileMode) os.FileMode {
	if m == nil {
		return def
	}
	return os.FileMode(*m)
}

func KeyFiles(kind, name string, data map[string][]byte, items []v1.KeyToPath, optional *bool, def os.FileMode, files map[string]File) error {
	if len(items) == 0 {
		for key, v := range data {
			files[key] = File{Data: v, Mode: def}
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
		files[path.Clean(it.Path)] = File{Data: v, Mode: ItemMode(it.Mode, def)}
	}
	return nil
}

// subPathOf joins a volume path and a subPath, refusing escapes, and
// creates the subdirectory like upstream when it is missing.
func SubPath(volume string, mv Mounted, sub string) (string, error) {
	if sub == "" {
		return mv.HostPath, nil
	}
	if path.IsAbs(sub) || strings.HasPrefix(path.Clean(sub), "..") {
		return "", fmt.Errorf("subPath %q of volume %q must be a relative path without '..'", sub, volume)
	}
	p := filepath.Join(mv.HostPath, sub)
	if resolved, err := filepath.EvalSymlinks(p); err == nil {
		return resolved, nil
	}
	if mv.ReadOnly {
		return "", fmt.Errorf("subPath %q does not exist in volume %q", sub, volume)
	}
	if err := os.MkdirAll(p, 0o755); err != nil {
		return "", err
	}
	return p, nil
}

func isOptional(p *bool) bool { return p != nil && *p }
