package apiserver

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
	"github.com/skiff-sh/skiff/internal/storage"
)

// listOptions are the query options of list and watch.
type listOptions struct {
	Labels         labels.Selector
	Fields         fields.Selector
	RV             string
	RVMatch        metav1.ResourceVersionMatch
	Limit          int64
	Continue       string
	TimeoutSeconds int64
	Bookmarks      bool
	SendInitial    *bool
	IncludeObject  string
}

func parseListOptions(r *http.Request, res *registry.Resource) (listOptions, error) {
	q := r.URL.Query()
	var o listOptions
	var err error
	if o.Labels, err = labels.Parse(q.Get("labelSelector")); err != nil {
		return o, badRequest("unable to parse requirement: %v", err)
	}
	if o.Fields, err = fields.ParseSelector(q.Get("fieldSelector")); err != nil {
		return o, badRequest("invalid field selector: %v", err)
	}
	allowed := selectableFields(res)
	for _, req := range o.Fields.Requirements() {
		if _, ok := allowed[req.Field]; !ok {
			return o, badRequest("field label not supported: %s", req.Field)
		}
	}
	if res.FieldLabels != nil {
		// Selectors are matched against the stored version's fields.
		o.Fields, err = o.Fields.Transform(func(f, v string) (string, string, error) {
			if to, ok := res.FieldLabels[f]; ok {
				return to, v, nil
			}
			return f, v, nil
		})
		if err != nil {
			return o, badRequest("invalid field selector: %v", err)
		}
	}
	o.RV = q.Get("resourceVersion")
	o.RVMatch = metav1.ResourceVersionMatch(q.Get("resourceVersionMatch"))
	switch o.RVMatch {
	case "", metav1.ResourceVersionMatchExact, metav1.ResourceVersionMatchNotOlderThan:
	default:
		return o, badRequest("resourceVersionMatch: Unsupported value: %q", o.RVMatch)
	}
	if v := q.Get("limit"); v != "" {
		if o.Limit, err = strconv.ParseInt(v, 10, 64); err != nil || o.Limit < 0 {
			return o, badRequest("invalid limit %q", v)
		}
	}
	o.Continue = q.Get("continue")
	if v := q.Get("timeoutSeconds"); v != "" {
		if o.TimeoutSeconds, err = strconv.ParseInt(v, 10, 64); err != nil || o.TimeoutSeconds < 0 {
			return o, badRequest("invalid timeoutSeconds %q", v)
		}
	}
	o.Bookmarks = q.Get("allowWatchBookmarks") == "true"
	if v := q.Get("sendInitialEvents"); v != "" {
		b := v == "true"
		o.SendInitial = &b
	}
	o.IncludeObject = q.Get("includeObject")
	isWatch := q.Get("watch") == "true" || q.Get("watch") == "1" || strings.Contains(r.URL.Path, "/watch/")
	if errs := validateListOptions(o, isWatch); len(errs) > 0 {
		return o, apierrors.NewInvalid(schema.GroupKind{Group: "meta.k8s.io", Kind: "ListOptions"}, "", errs)
	}
	if o.RV != "" && o.RV != "0" {
		if _, err := strconv.ParseInt(o.RV, 10, 64); err != nil {
			return o, apierrors.NewBadRequest(fmt.Sprintf("invalid resource version: %q", o.RV))
		}
	}
	return o, nil
}

// validateListOptions applies upstream's rules for combining
// resourceVersion, resourceVersionMatch, continue and sendInitialEvents.
func validateListOptions(o listOptions, isWatch bool) field.ErrorList {
	var errs field.ErrorList
	match := field.NewPath("resourceVersionMatch")
	if o.SendInitial != nil {
		p := field.NewPath("sendInitialEvents")
		if !isWatch {
			errs = append(errs, field.Forbidden(p, "sendInitialEvents is forbidden for list"))
		}
		if !o.Bookmarks {
			errs = append(errs, field.Forbidden(field.NewPath("allowWatchBookmarks"), "sendInitialEvents requires setting allowWatchBookmarks to true"))
		}
		if o.RVMatch != metav1.ResourceVersionMatchNotOlderThan {
			errs = append(errs, field.Forbidden(match, fmt.Sprintf("sendInitialEvents requires setting resourceVersionMatch to %s", metav1.ResourceVersionMatchNotOlderThan)))
		}
		return errs
	}
	if o.RVMatch == "" {
		return nil
	}
	if isWatch {
		errs = append(errs, field.Forbidden(match, "resourceVersionMatch is forbidden for watch"))
	}
	if o.RV == "" {
		errs = append(errs, field.Forbidden(match, "resourceVersionMatch is forbidden unless resourceVersion is provided"))
	}
	if o.Continue != "" {
		errs = append(errs, field.Forbidden(match, "resourceVersionMatch is forbidden when continue is provided"))
	}
	if o.RVMatch == metav1.ResourceVersionMatchExact && o.RV == "0" {
		errs = append(errs, field.Forbidden(match, "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\""))
	}
	return errs
}

// selectableFields are the field selector keys a resource supports.
func selectableFields(res *registry.Resource) map[string]struct{} {
	out := map[string]struct{}{"metadata.name": {}}
	if res.Namespaced {
		out["metadata.namespace"] = struct{}{}
	}
	if res.Fields != nil {
		for k := range res.Fields(res.New()) {
			out[k] = struct{}{}
		}
	}
	for k := range res.FieldLabels {
		out[k] = struct{}{}
	}
	return out
}

// versionFields, for a custom resource served at a version other than
// the stored one whose selectable fields differ, computes an object's
// fields at the requested version (converting it, as upstream does);
// nil otherwise: the cache's fields are the stored version's.
func (s *Server) versionFields(res *registry.Resource) func(o *storage.Object) fields.Set {
	if res.Custom == nil || res.GVR.Version == res.Custom.StorageVersion {
		return nil
	}
	return func(o *storage.Object) fields.Set {
		set := fields.Set{}
		for _, k := range []string{"metadata.name", "metadata.namespace"} {
			if v, ok := o.Fields[k]; ok {
				set[k] = v
			}
		}
		if res.Fields == nil {
			return set
		}
		conv, err := s.reg.FromStorage(res, o.Obj)
		if err != nil {
			// An object that cannot be converted matches no field.
			return set
		}
		for k, v := range res.Fields(conv) {
			set[k] = v
		}
		return set
	}
}

func (o listOptions) filter(ns string, name string) storage.Filter {
	f := storage.Filter{Labels: o.Labels, Fields: o.Fields}
	if ns != "" {
		f.KeyPrefix = ns + "/"
	}
	if name != "" {
		if ns != "" {
			f.Key = ns + "/" + name
		} else {
			f.Key = name
		}
	}
	return f
}

// continueToken is upstream's continue format: the revision of the first
// page and the key to resume from.
type continueToken struct {
	APIVersion      string `json:"v"`
	ResourceVersion int64  `json:"rv"`
	StartKey        string `json:"start"`
}

func encodeContinue(rv int64, key string) string {
	b, _ := json.Marshal(continueToken{APIVersion: "meta.k8s.io/v1", ResourceVersion: rv, StartKey: key})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeContinue(s string) (continueToken, error) {
	var t continueToken
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return t, badRequest("continue key is not valid: %v", err)
	}
	// -1 is the token handed out when the first page's revision was
	// compacted: go on at the newest revision (an inconsistent list).
	if err := json.Unmarshal(b, &t); err != nil || t.APIVersion != "meta.k8s.io/v1" || t.ResourceVersion == 0 || t.ResourceVersion < -1 {
		return t, badRequest("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
	}
	return t, nil
}

// compactedContinue is upstream's answer to a continue token whose
// revision was compacted: 410 Gone, carrying a token that resumes from the
// same key at the newest revision, for a client that accepts an
// inconsistent list.
func compactedContinue(startKey string) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure, Code: http.StatusGone, Reason: metav1.StatusReasonExpired,
		ListMeta: metav1.ListMeta{Continue: encodeContinue(-1, startKey)},
		Message: "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, " +
			"or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - " +
			"objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
	}}
}

// listResult is a page of objects ready to encode.
type listResult struct {
	items     []*storage.Object
	rv        int64
	continue_ string
	// remaining counts the objects after a page, when the list is not
	// filtered by selectors (as upstream, which cannot count filtered ones).
	remaining *int64
}

// collect reads the list either from the watch cache (no paging, or
// resourceVersion semantics the cache can serve) or from etcd.
func (s *Server) collect(ctx context.Context, res *registry.Resource, ns string, o listOptions) (listResult, error) {
	cache := s.reg.Cache(res)
	filter := o.filter(ns, "")
	filter.FieldsOf = s.versionFields(res)
	fromEtcd := o.Continue != "" || o.RVMatch == metav1.ResourceVersionMatchExact || (o.Limit > 0 && o.RV != "0")
	if !fromEtcd {
		switch o.RV {
		case "0":
			if !cache.Ready() {
				if err := cache.WaitFresh(ctx, 1); err != nil {
					return listResult{}, err
				}
			}
		case "":
			cur, err := cache.Store().CurrentRevision(ctx)
			if err != nil {
				return listResult{}, err
			}
			if err := cache.WaitFresh(ctx, cur); err != nil {
				return listResult{}, err
			}
		default:
			rv, _ := strconv.ParseInt(o.RV, 10, 64)
			if err := cache.WaitFresh(ctx, rv); err != nil {
				return listResult{}, err
			}
		}
		items, rv := cache.Snapshot(filter)
		return listResult{items: items, rv: rv}, nil
	}
	var rev int64
	start := ""
	if o.Continue != "" {
		t, err := decodeContinue(o.Continue)
		if err != nil {
			return listResult{}, err
		}
		rev, start = max(t.ResourceVersion, 0), t.StartKey
	} else if o.RV != "" && o.RV != "0" {
		rev, _ = strconv.ParseInt(o.RV, 10, 64)
		if o.RVMatch != metav1.ResourceVersionMatchExact {
			// NotOlderThan with a limit: read now, which is not older.
			rev = 0
		}
	}
	prefix := filter.KeyPrefix
	if start != "" && !strings.HasPrefix(start, prefix) {
		return listResult{}, badRequest("continue key is not valid: it does not belong to this request")
	}
	var out listResult
	want := o.Limit
	unfiltered := (o.Labels == nil || o.Labels.Empty()) && (o.Fields == nil || o.Fields.Empty())
	for {
		batch := want - int64(len(out.items))
		if want == 0 {
			batch = 0
		} else if batch < 100 {
			batch = 100
		}
		page, err := cache.Store().ListPage(ctx, prefix, start, rev, batch)
		kvs, readRev, more := page.KVs, page.Rev, page.More
		if err != nil {
			if apierrors.IsResourceExpired(err) && o.Continue != "" {
				return listResult{}, compactedContinue(start)
			}
			return listResult{}, err
		}
		if rev == 0 {
			rev = readRev
		}
		out.rv = rev
		for i, kv := range kvs {
			l, f := attrs(res, kv.Obj)
			obj := &storage.Object{Key: kv.Key, Obj: kv.Obj, Labels: l, Fields: f}
			if !filter.Matches(obj) {
				continue
			}
			if want > 0 && int64(len(out.items)) == want {
				out.continue_ = encodeContinue(rev, kv.Key)
				if unfiltered {
					// The batch's count runs from its first key: those
					// before i are in this page or earlier ones.
					n := page.Count - int64(i)
					out.remaining = &n
				}
				return out, nil
			}
			out.items = append(out.items, obj)
		}
		if !more || len(kvs) == 0 {
			return out, nil
		}
		start = kvs[len(kvs)-1].Key + "\x00"
	}
}

// attrs computes the filterable attributes of an object read from etcd.
func attrs(res *registry.Resource, obj runtime.Object) (labels.Set, fields.Set) {
	acc, err := meta.Accessor(obj)
	if err != nil {
		return nil, nil
	}
	f := fields.Set{"metadata.name": acc.GetName()}
	if res.Namespaced {
		f["metadata.namespace"] = acc.GetNamespace()
	}
	if res.Fields != nil && res.ToStorage == nil {
		for k, v := range res.Fields(obj) {
			f[k] = v
		}
	}
	return labels.Set(acc.GetLabels()), f
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request, res *registry.Resource, ns string) error {
	o, err := parseListOptions(r, res)
	if err != nil {
		return err
	}
	out, err := negotiateFor(r.Header.Get("Accept"), res)
	if err != nil {
		return err
	}
	lr, err := s.collect(r.Context(), res, ns, o)
	if err != nil {
		return err
	}
	var body []byte
	var answer runtime.Object // a Table or metadata list (nil: the list itself)
	switch {
	case out.Table:
		stored := make([]runtime.Object, len(lr.items))
		for i, it := range lr.items {
			stored[i] = it.Obj
		}
		objs, err := s.reg.FromStorageBatch(res, stored)
		if err != nil {
			return err
		}
		tbl, err := s.tableFor(res, objs, o.IncludeObject, o.IncludeObject, false)
		if err != nil {
			return err
		}
		tbl.ResourceVersion, tbl.Continue, tbl.RemainingItemCount = strconv.FormatInt(lr.rv, 10), lr.continue_, lr.remaining
		answer = tbl
		body, err = s.codecs.EncodeAs(out, tbl)
		if err != nil {
			return err
		}
	case out.PartialMetadata:
		pl := &metav1.PartialObjectMetadataList{TypeMeta: metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "PartialObjectMetadataList"}}
		pl.ResourceVersion, pl.Continue, pl.RemainingItemCount = strconv.FormatInt(lr.rv, 10), lr.continue_, lr.remaining
		for _, it := range lr.items {
			acc, _ := meta.Accessor(it.Obj)
			p := partial(acc)
			p.TypeMeta = metav1.TypeMeta{}
			pl.Items = append(pl.Items, *p)
		}
		answer = pl
		if body, err = s.codecs.EncodeAs(out, pl); err != nil {
			return err
		}
	default:
		if body, err = s.encodeList(res, out, lr); err != nil {
			return err
		}
	}
	recordResponseBody(r.Context(), func() ([]byte, error) {
		if out.Media == mediaJSON {
			return body, nil
		}
		// The event holds JSON whatever the wire format.
		jsonOut := out
		jsonOut.Media, jsonOut.Pretty = mediaJSON, false
		if answer != nil {
			return s.codecs.EncodeAs(jsonOut, answer)
		}
		return s.encodeList(res, jsonOut, lr)
	})
	w.Header().Set("Content-Type", out.ContentType())
	w.Header().Set("Cache-Control", "no-cache, private")
	w.WriteHeader(http.StatusOK)
	w.Write(body)
	return nil
}

// encodeList splices each object's cached encoding into the list, so a
// list of N objects costs N buffer copies, not N encodings.
func (s *Server) encodeList(res *registry.Resource, out Output, lr listResult) ([]byte, error) {
	listGVK := res.GVK().GroupVersion().WithKind(res.Kind + "List")
	lm := metav1.ListMeta{ResourceVersion: strconv.FormatInt(lr.rv, 10), Continue: lr.continue_, RemainingItemCount: lr.remaining}
	switch out.Media {
	case mediaProtobuf:
		lmRaw, err := lm.Marshal()
		if err != nil {
			return nil, err
		}
		raws := make([][]byte, len(lr.items))
		for i, it := range lr.items {
			if raws[i], err = s.encodedItem(res, it, "pbraw"); err != nil {
				return nil, err
			}
		}
		return protoListEnvelope(listGVK, lmRaw, raws), nil
	case mediaYAML, mediaJSON:
		var buf bytes.Buffer
		lmJSON, _ := json.Marshal(lm)
		fmt.Fprintf(&buf, `{"kind":%q,"apiVersion":%q,"metadata":%s,"items":[`, listGVK.Kind, listGVK.GroupVersion().String(), lmJSON)
		convs, err := s.convertUncached(res, lr.items, "json")
		if err != nil {
			return nil, err
		}
		for i, it := range lr.items {
			b, err := s.encodedItemFrom(res, it, "json", convs[i])
			if err != nil {
				return nil, err
			}
			if i > 0 {
				buf.WriteByte(',')
			}
			buf.Write(b)
		}
		buf.WriteString("]}")
		if out.Media == mediaYAML {
			return jsonToYAML(buf.Bytes())
		}
		if out.Pretty {
			var pretty bytes.Buffer
			if err := jsonIndent(&pretty, buf.Bytes()); err == nil {
				return pretty.Bytes(), nil
			}
		}
		return buf.Bytes(), nil
	}
	return nil, fmt.Errorf("unsupported list media %s", out.Media)
}

// encodedItem is the cached encoding of one object in res's version.
func (s *Server) encodedItem(res *registry.Resource, it *storage.Object, format string) ([]byte, error) {
	return s.encodedItemFrom(res, it, format, nil)
}

// encodedItemFrom is encodedItem with the object already converted to
// res's version (conv; nil: converted here if its encoding is not kept).
func (s *Server) encodedItemFrom(res *registry.Resource, it *storage.Object, format string, conv runtime.Object) ([]byte, error) {
	key := format + ":" + res.GVK().GroupVersion().String()
	return it.Encoded(key, func(obj runtime.Object) ([]byte, error) {
		if conv == nil {
			var err error
			if conv, err = s.reg.FromStorage(res, obj); err != nil {
				return nil, err
			}
		}
		if conv == obj && obj.GetObjectKind().GroupVersionKind() != res.GVK() {
			conv = obj.DeepCopyObject() // the cache's object is never changed
		}
		withKind(res, conv)
		switch format {
		case "pbraw":
			return EncodeRawProto(forProto(res, conv))
		case "pb":
			return s.codecs.EncodeProto(forProto(res, conv))
		}
		return s.codecs.EncodeJSON(conv)
	})
}

// convertUncached converts, in one batch, the items whose encoding in
// format at res's version is not kept yet (a conversion webhook is then
// called once per batch, not per object); the others are nil.
func (s *Server) convertUncached(res *registry.Resource, items []*storage.Object, format string) ([]runtime.Object, error) {
	if !s.reg.ConvertsInBatches(res) {
		return make([]runtime.Object, len(items)), nil
	}
	key := format + ":" + res.GVK().GroupVersion().String()
	var todo []runtime.Object
	var at []int
	for i, it := range items {
		if !it.HasEncoded(key) {
			todo, at = append(todo, it.Obj), append(at, i)
		}
	}
	out := make([]runtime.Object, len(items))
	if len(todo) == 0 {
		return out, nil
	}
	convs, err := s.reg.FromStorageBatch(res, todo)
	if err != nil {
		return nil, err
	}
	for j, i := range at {
		out[i] = convs[j]
	}
	return out, nil
}

func sortObjects(objs []runtime.Object) {
	sort.SliceStable(objs, func(i, j int) bool {
		a, _ := meta.Accessor(objs[i])
		b, _ := meta.Accessor(objs[j])
		return a.GetNamespace()+"/"+a.GetName() < b.GetNamespace()+"/"+b.GetName()
	})
}
