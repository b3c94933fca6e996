package volume

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// volumeFile is one file of a configMap, secret, downwardAPI or projected
// volume.
type File struct {
	Data []byte
	Mode os.FileMode
}

// writeAtomic publishes files in dir the way upstream's atomic writer does,
// so that a reader never sees half an update: the files go into a fresh
// timestamped directory, the "..data" symlink is swapped to it in one
// rename, and each visible name is a symlink through "..data". It reports
// whether anything changed.
func WriteAtomic(dir string, files map[string]File) (bool, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	dataLink := filepath.Join(dir, "..data")
	if current, err := os.Readlink(dataLink); err == nil && SameFiles(filepath.Join(dir, current), files) {
		return false, nil
	}
	ts, err := os.MkdirTemp(dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		return false, err
	}
	for name, f := range files {
		p := filepath.Join(ts, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return false, err
		}
		if err := os.WriteFile(p, f.Data, f.Mode); err != nil {
			return false, err
		}
		if err := os.Chmod(p, f.Mode); err != nil { // umask must not narrow the mode
			return false, err
		}
	}
	if err := os.Chmod(ts, 0o755); err != nil {
		return false, err
	}
	old, _ := os.Readlink(dataLink)
	tmpLink := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmpLink)
	if err := os.Symlink(filepath.Base(ts), tmpLink); err != nil {
		return false, err
	}
	if err := os.Rename(tmpLink, dataLink); err != nil {
		return false, err
	}
	// Visible names: top-level entries point through ..data.
	want := map[string]bool{}
	for name := range files {
		top := strings.SplitN(name, "/", 2)[0]
		want[top] = true
		link := filepath.Join(dir, top)
		if target, err := os.Readlink(link); err == nil && target == filepath.Join("..data", top) {
			continue
		}
		_ = os.RemoveAll(link)
		if err := os.Symlink(filepath.Join("..data", top), link); err != nil {
			return false, fmt.Errorf("link %s: %w", top, err)
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "..") && !want[e.Name()] {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	if old != "" && old != filepath.Base(ts) {
		_ = os.RemoveAll(filepath.Join(dir, old))
	}
	return true, nil
}

func SameFiles(dir string, files map[string]File) bool {
	count := 0
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		count++
		rel, _ := filepath.Rel(dir, p)
		f, ok := files[rel]
		if !ok || info.Mode().Perm() != f.Mode.Perm() {
			return errDiffers
		}
		data, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(data, f.Data) {
			return errDiffers
		}
		return nil
	})
	return err == nil && count == len(files)
}

var errDiffers = fmt.Errorf("differs")
