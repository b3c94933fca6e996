package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The archive is a valid OCI layout: every blob is stored under its own
// digest, the index names the image, and the layer holds the files.
func TestWriteLayout(t *testing.T) {
	b := New("example.test/tools:v1")
	b.AddFile("/bin/tool", 0o755, []byte("#!/bin/sh\necho hi\n"))
	b.AddSymlink("/bin/alias", "tool")
	b.Config = Config{Cmd: []string{"/bin/tool"}}
	var out bytes.Buffer
	if err := b.WriteLayout(&out); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	tr := tar.NewReader(&out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		files[h.Name] = data
	}
	for name, data := range files {
		if hexd, ok := strings.CutPrefix(name, "blobs/sha256/"); ok {
			sum := sha256.Sum256(data)
			if hex.EncodeToString(sum[:]) != hexd {
				t.Errorf("blob %s does not match its digest", name)
			}
		}
	}
	var index struct {
		Manifests []descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(files["index.json"], &index); err != nil || len(index.Manifests) != 1 {
		t.Fatalf("index.json: %v %s", err, files["index.json"])
	}
	if got := index.Manifests[0].Annotations[refNameAnnotation]; got != "example.test/tools:v1" {
		t.Errorf("image name annotation = %q", got)
	}
	var manifest struct {
		Layers []descriptor `json:"layers"`
	}
	_ = json.Unmarshal(files["blobs/sha256/"+strings.TrimPrefix(index.Manifests[0].Digest, "sha256:")], &manifest)
	if len(manifest.Layers) != 1 {
		t.Fatalf("manifest layers: %+v", manifest)
	}
	zr, err := gzip.NewReader(bytes.NewReader(files["blobs/sha256/"+strings.TrimPrefix(manifest.Layers[0].Digest, "sha256:")]))
	if err != nil {
		t.Fatal(err)
	}
	lr := tar.NewReader(zr)
	got := map[string]string{}
	for {
		h, err := lr.Next()
		if err != nil {
			break
		}
		got[h.Name] = h.Linkname
	}
	if _, ok := got["bin/"]; !ok {
		t.Errorf("parent directory bin/ missing: %v", got)
	}
	if _, ok := got["bin/tool"]; !ok || got["bin/alias"] != "tool" {
		t.Errorf("layer entries = %v", got)
	}
	var one, two bytes.Buffer
	_ = b.WriteLayout(&one)
	_ = b.WriteLayout(&two)
	if !bytes.Equal(one.Bytes(), two.Bytes()) {
		t.Error("the same image written twice differs: digests would not be reproducible")
	}
}

// TestAddTreeKeepsSpecialModes checks that a tree copied from the host keeps
// setuid, setgid and sticky bits in the layer (the nonewprivs test image
// needs a setuid binary).
func TestAddTreeKeepsSpecialModes(t *testing.T) {
	dir := t.TempDir()
	for name, mode := range map[string]os.FileMode{"suid": 0o755 | os.ModeSetuid, "sgid": 0o750 | os.ModeSetgid, "plain": 0o640} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(name), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "tmp"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	b := New("example.test/modes:v1")
	if err := b.AddTree(dir, "/"); err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"suid": 0o4755, "sgid": 0o2750, "plain": 0o640, "tmp": 0o1777}
	for name, mode := range want {
		if got := b.files[name].mode; got != mode {
			t.Errorf("%s: mode %o, want %o", name, got, mode)
		}
	}
}
