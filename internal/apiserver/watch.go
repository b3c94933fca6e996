package apiserver

import (
	"encoding/binary"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-sh/skiff/internal/registry"
	"github.com/skiff-sh/skiff/internal/storage"
)

// bookmarkInterval is how often a watch that allows bookmarks gets one.
const bookmarkInterval = time.Minute

// watchStream writes watch events in one encoding.
type watchStream struct {
	s     *Server
	res   *registry.Resource
	out   Output
	w     http.ResponseWriter
	flush func()
	first bool
	hdr   []byte // scratch for frame headers
}

// writeFrame writes one event framed for the stream's media: in protobuf
// a 4-byte big-endian length and a metav1.WatchEvent, in JSON a line. The
// object's bytes are shared by every watcher of the event, so only the
// few bytes around them are built here, in the stream's scratch buffer,
// instead of a copy of the object per watcher.
func (ws *watchStream) writeFrame(typ watch.EventType, objBytes []byte) error {
	h := ws.hdr[:0]
	var tail []byte
	if ws.out.Media == mediaProtobuf {
		h = protoFrameHeader(h, string(typ), len(objBytes), objBytes != nil)
	} else {
		h = append(h, `{"type":"`...)
		h = append(h, typ...)
		h = append(h, `","object":`...)
		tail = jsonFrameTail
	}
	ws.hdr = h
	if _, err := ws.w.Write(h); err != nil {
		return err
	}
	if _, err := ws.w.Write(objBytes); err != nil {
		return err
	}
	if tail != nil {
		_, err := ws.w.Write(tail)
		return err
	}
	return nil
}

var jsonFrameTail = []byte("}\n")

// protoFrameHeader appends what precedes an object of n bytes (raw: not nil) in a
// protobuf watch frame: the frame's length, then the WatchEvent's type
// (field 1) and the start of its object (field 2, a RawExtension whose
// raw bytes are its field 1), as metav1.WatchEvent.Marshal lays them out.
func protoFrameHeader(b []byte, typ string, n int, raw bool) []byte {
	inner := 0
	if raw {
		inner = protoFieldLen(n)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(protoFieldLen(len(typ))+protoFieldLen(inner)))
	b = appendProtoField(b, 1, []byte(typ))
	b = append(b, 0x12)
	b = binary.AppendUvarint(b, uint64(inner))
	if !raw {
		return b // a nil Raw is left out, as gogo's Marshal does
	}
	b = append(b, 0x0a)
	return binary.AppendUvarint(b, uint64(n))
}

func (ws *watchStream) send(typ watch.EventType, it *storage.Object) error {
	var b []byte
	var err error
	switch {
	case ws.out.Table:
		obj, err := ws.s.reg.FromStorage(ws.res, it.Obj)
		if err != nil {
			return err
		}
		tbl, err := ws.s.tableFor(ws.res, []runtime.Object{obj}, "", "", !ws.first)
		if err != nil {
			return err
		}
		acc, _ := meta.Accessor(obj)
		tbl.ResourceVersion = acc.GetResourceVersion()
		ws.first = false
		b, err = ws.s.codecs.EncodeAs(Output{Media: ws.out.Media}, tbl)
		if err != nil {
			return err
		}
	case ws.out.PartialMetadata:
		// Encoded once per event and media, like full objects: every
		// metadata watcher (the garbage collector's, for one) shares it.
		b, err = it.Encoded("partial:"+ws.out.Media, func(obj runtime.Object) ([]byte, error) {
			acc, err := meta.Accessor(obj)
			if err != nil {
				return nil, err
			}
			return ws.s.codecs.EncodeAs(Output{Media: ws.out.Media}, partial(acc))
		})
	case ws.out.Media == mediaProtobuf:
		b, err = ws.s.encodedItem(ws.res, it, "pb")
	default:
		b, err = ws.s.encodedItem(ws.res, it, "json")
	}
	if err != nil {
		return err
	}
	return ws.writeFrame(typ, b)
}

func (ws *watchStream) sendObject(typ watch.EventType, obj runtime.Object) error {
	ws.s.codecs.setKind(obj, ws.res.GVK().GroupVersion())
	if ws.out.Media == mediaProtobuf {
		obj = forProto(ws.res, obj)
	}
	b, err := ws.s.codecs.EncodeAs(Output{Media: ws.out.Media}, obj)
	if err != nil {
		return err
	}
	return ws.writeFrame(typ, b)
}

// bookmark sends a BOOKMARK carrying only a resourceVersion (and the
// initial-events-end annotation when it closes the initial events).
func (ws *watchStream) bookmark(rv int64, initialEnd bool) error {
	obj := ws.res.New()
	acc, _ := meta.Accessor(obj)
	acc.SetResourceVersion(strconv.FormatInt(rv, 10))
	if initialEnd {
		acc.SetAnnotations(map[string]string{metav1.InitialEventsAnnotationKey: "true"})
	}
	obj.GetObjectKind().SetGroupVersionKind(ws.res.GVK())
	if ws.out.PartialMetadata {
		// A metadata-only client decodes every event, bookmarks too, as
		// PartialObjectMetadata.
		b, err := ws.s.codecs.EncodeAs(Output{Media: ws.out.Media}, partial(acc))
		if err != nil {
			return err
		}
		return ws.writeFrame(watch.Bookmark, b)
	}
	return ws.sendObject(watch.Bookmark, obj)
}

func (s *Server) handleWatch(w http.ResponseWriter, r *http.Request, res *registry.Resource, ns, name string) error {
	o, err := parseListOptions(r, res)
	if err != nil {
		return err
	}
	out, err := negotiateFor(r.Header.Get("Accept"), res)
	if err != nil {
		return err
	}
	sendInitial := o.SendInitial != nil && *o.SendInitial
	cache := s.reg.Cache(res)
	ctx := r.Context()
	var rv int64
	initial := sendInitial
	switch o.RV {
	case "":
		cur, err := cache.Store().CurrentRevision(ctx)
		if err != nil {
			return err
		}
		if err := cache.WaitFresh(ctx, cur); err != nil {
			return err
		}
		initial = o.SendInitial == nil || sendInitial
	case "0":
		initial = o.SendInitial == nil || sendInitial
	default:
		rv, _ = strconv.ParseInt(o.RV, 10, 64)
		if err := cache.WaitFresh(ctx, rv); err != nil {
			return err
		}
	}
	filter := o.filter(ns, name)
	filter.FieldsOf = s.versionFields(res)
	watcher, backlog, cacheRV, werr := cache.Watch(filter, rv, initial)

	timeout := time.Duration(o.TimeoutSeconds) * time.Second
	if timeout <= 0 {
		timeout = time.Duration(1800+rand.IntN(1800)) * time.Second
	}
	flusher, _ := w.(http.Flusher)
	ct := out.ContentType()
	if out.Media == mediaProtobuf {
		ct += ";stream=watch"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "no-cache, private")
	w.Header().Set("Transfer-Encoding", "chunked")
	w.WriteHeader(http.StatusOK)
	ws := &watchStream{s: s, res: res, out: out, w: w, first: true}
	flush := func() {
		if flusher != nil {
			flusher.Flush()
		}
	}
	if werr != nil {
		// Upstream answers a too-old resourceVersion with an ERROR event.
		ws.sendObject(watch.Error, toStatus(werr))
		flush()
		return nil
	}
	defer watcher.Stop()
	for _, ev := range backlog {
		if err := ws.send(ev.Type, ev.Obj); err != nil {
			return nil
		}
	}
	if sendInitial {
		if err := ws.bookmark(cacheRV, true); err != nil {
			return nil
		}
	}
	flush()
	watchInitialized(r.Context())
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(bookmarkInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-deadline.C:
			return nil
		case <-tick.C:
			if o.Bookmarks {
				if err := ws.bookmark(cache.RV(), false); err != nil {
					return nil
				}
				flush()
			}
		case ev, ok := <-watcher.Events():
			if !ok {
				return nil
			}
			if err := ws.send(ev.Type, ev.Obj); err != nil {
				return nil
			}
			// Drain what is already queued before flushing once.
			for drained := false; !drained; {
				select {
				case ev, ok := <-watcher.Events():
					if !ok {
						flush()
						return nil
					}
					if err := ws.send(ev.Type, ev.Obj); err != nil {
						return nil
					}
				default:
					drained = true
				}
			}
			flush()
		}
	}
}
