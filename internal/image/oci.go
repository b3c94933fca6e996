// Package image builds OCI image layout archives from files in memory or a
// directory, so that the pause image and test images need no registry and no
// Docker: the archive is imported into the runtime or pushed to a registry.
package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

// Media types of the OCI image specification.
const (
	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaIndex    = "application/vnd.oci.image.index.v1+json"
	mediaConfig   = "application/vnd.oci.image.config.v1+json"
	mediaLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
)

// refNameAnnotation is read by containerd's importer for the image's name.
const refNameAnnotation = "io.containerd.image.name"

// epoch is the fixed timestamp on every entry, so equal inputs give equal
// digests and a re-import of the same image is a no-op.
var epoch = time.Unix(0, 0).UTC()

// Config is the runtime part of an image configuration.
type Config struct {
	Entrypoint []string `json:"Entrypoint,omitempty"`
	Cmd        []string `json:"Cmd,omitempty"`
	Env        []string `json:"Env,omitempty"`
	WorkingDir string   `json:"WorkingDir,omitempty"`
	User       string   `json:"User,omitempty"`
}

type entry struct {
	mode   int64
	kind   byte // tar.TypeReg, tar.TypeDir or tar.TypeSymlink
	data   []byte
	target string
}

// Builder collects one layer's files and the image configuration.
type Builder struct {
	Ref    string // full reference, e.g. docker.io/library/busybox:latest
	Arch   string // GOARCH name; the running architecture when empty
	Config Config
	files  map[string]entry
}

// New returns a builder for an image named ref.
func New(ref string) *Builder {
	return &Builder{Ref: ref, files: map[string]entry{}}
}

// AddFile puts data at p (absolute path inside the image) with mode.
func (b *Builder) AddFile(p string, mode int64, data []byte) {
	b.parents(p)
	b.files[clean(p)] = entry{mode: mode, kind: tar.TypeReg, data: data}
}

// AddSymlink makes p a symbolic link to target.
func (b *Builder) AddSymlink(p, target string) {
	b.parents(p)
	b.files[clean(p)] = entry{mode: 0o777, kind: tar.TypeSymlink, target: target}
}

// AddDir creates the directory p.
func (b *Builder) AddDir(p string, mode int64) {
	b.parents(p)
	b.files[clean(p)] = entry{mode: mode, kind: tar.TypeDir}
}

// AddTree copies the directory dir of the host into the image at p.
func (b *Builder) AddTree(dir, p string) error {
	return filepath.WalkDir(dir, func(host string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, host)
		dst := path.Join(p, filepath.ToSlash(rel))
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			b.AddDir(dst, tarMode(info.Mode()))
		case info.Mode()&fs.ModeSymlink != 0:
			t, err := os.Readlink(host)
			if err != nil {
				return err
			}
			b.AddSymlink(dst, t)
		case info.Mode().IsRegular():
			data, err := os.ReadFile(host)
			if err != nil {
				return err
			}
			b.AddFile(dst, tarMode(info.Mode()), data)
		}
		return nil
	})
}

// tarMode is the Unix mode of a host file as a tar header carries it:
// the permission bits and setuid, setgid and sticky, which Go keeps as
// flags of its own (a setuid binary in a test image must stay setuid).
func tarMode(m fs.FileMode) int64 {
	mode := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}

func clean(p string) string { return strings.TrimPrefix(path.Clean("/"+p), "/") }

func (b *Builder) parents(p string) {
	for d := path.Dir(clean(p)); d != "." && d != "/" && d != ""; d = path.Dir(d) {
		if _, ok := b.files[d]; !ok {
			b.files[d] = entry{mode: 0o755, kind: tar.TypeDir}
		}
	}
}

// layer returns the gzip-compressed layer and the digest of its
// uncompressed tar (the diff ID).
func (b *Builder) layer() (gz []byte, diffID string, err error) {
	names := make([]string, 0, len(b.files))
	for n := range b.files {
		names = append(names, n)
	}
	sort.Strings(names)
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, n := range names {
		e := b.files[n]
		h := &tar.Header{Name: n, Mode: e.mode, Typeflag: e.kind, ModTime: epoch, Linkname: e.target, Format: tar.FormatPAX}
		if e.kind == tar.TypeDir {
			h.Name += "/"
		}
		h.Size = int64(len(e.data))
		if err := tw.WriteHeader(h); err != nil {
			return nil, "", fmt.Errorf("layer entry %s: %w", n, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, "", err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, "", err
	}
	var out bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&out, gzip.BestSpeed)
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, "", err
	}
	if err := zw.Close(); err != nil {
		return nil, "", err
	}
	return out.Bytes(), digest(raw.Bytes()), nil
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *platform         `json:"platform,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

// WriteLayout writes the image as an OCI image layout tar archive, the
// format `ctr images import`, `skiff images import` and skopeo's oci-archive
// transport read.
func (b *Builder) WriteLayout(w io.Writer) error {
	arch := b.Arch
	if arch == "" {
		arch = runtime.GOARCH
	}
	layer, diffID, err := b.layer()
	if err != nil {
		return err
	}
	cfg, _ := json.Marshal(map[string]any{
		"architecture": arch,
		"os":           "linux",
		"created":      epoch.Format(time.RFC3339),
		"config":       b.Config,
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{diffID}},
	})
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaManifest,
		"config":        descriptor{MediaType: mediaConfig, Digest: digest(cfg), Size: int64(len(cfg))},
		"layers":        []descriptor{{MediaType: mediaLayer, Digest: digest(layer), Size: int64(len(layer))}},
	})
	tag := b.Ref
	if i := strings.LastIndex(tag, ":"); i > strings.LastIndex(tag, "/") {
		tag = tag[i+1:]
	} else {
		tag = "latest"
	}
	index, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaIndex,
		"manifests": []descriptor{{
			MediaType: mediaManifest, Digest: digest(manifest), Size: int64(len(manifest)),
			Annotations: map[string]string{refNameAnnotation: b.Ref, "org.opencontainers.image.ref.name": tag},
			Platform:    &platform{Architecture: arch, OS: "linux"},
		}},
	})
	tw := tar.NewWriter(w)
	put := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	blob := func(data []byte) string { return "blobs/sha256/" + strings.TrimPrefix(digest(data), "sha256:") }
	for _, f := range []struct {
		name string
		data []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", index},
		{blob(cfg), cfg},
		{blob(manifest), manifest},
		{blob(layer), layer},
	} {
		if err := put(f.name, f.data); err != nil {
			return fmt.Errorf("write image %s: %w", b.Ref, err)
		}
	}
	return tw.Close()
}

// WriteLayoutFile writes the archive to file p.
func (b *Builder) WriteLayoutFile(p string) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	if err := b.WriteLayout(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
