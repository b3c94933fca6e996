package apiserver

import (
	"bytes"
	"encoding/binary"
	"net/http/httptest"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
)

// TestWatchFrames checks the frames written around shared object bytes
// against what metav1.WatchEvent's own encodings give.
func TestWatchFrames(t *testing.T) {
	sizes := []int{-1, 0, 1, 127, 128, 300, 16383, 16384, 70000} // -1: nil
	for _, typ := range []watch.EventType{watch.Added, watch.Modified, watch.Deleted, watch.Bookmark, watch.Error} {
		for _, n := range sizes {
			var obj []byte
			if n >= 0 {
				obj = bytes.Repeat([]byte{'x'}, n)
			}
			rec := httptest.NewRecorder()
			ws := &watchStream{out: Output{Media: mediaProtobuf}, w: rec}
			if err := ws.writeFrame(typ, obj); err != nil {
				t.Fatal(err)
			}
			ev := metav1.WatchEvent{Type: string(typ), Object: runtime.RawExtension{Raw: obj}}
			raw, err := ev.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			want := binary.BigEndian.AppendUint32(nil, uint32(len(raw)))
			want = append(want, raw...)
			if !bytes.Equal(rec.Body.Bytes(), want) {
				t.Errorf("protobuf %s of %d bytes: frame differs from WatchEvent.Marshal", typ, n)
			}
			var back metav1.WatchEvent
			if err := back.Unmarshal(rec.Body.Bytes()[4:]); err != nil || back.Type != string(typ) || len(back.Object.Raw) != max(n, 0) {
				t.Errorf("protobuf %s of %d bytes does not decode: %v", typ, n, err)
			}
		}
		rec := httptest.NewRecorder()
		ws := &watchStream{out: Output{Media: "application/json"}, w: rec}
		if err := ws.writeFrame(typ, []byte(`{"kind":"Pod"}`)); err != nil {
			t.Fatal(err)
		}
		want := `{"type":"` + string(typ) + `","object":{"kind":"Pod"}}` + "\n"
		if got := rec.Body.String(); got != want {
			t.Errorf("JSON frame %q, want %q", got, want)
		}
		if !strings.HasSuffix(rec.Body.String(), "\n") {
			t.Errorf("JSON frame does not end a line")
		}
	}
}
