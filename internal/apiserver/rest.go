package apiserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	jsonserializer "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"sigs.k8s.io/yaml"

	"github.com/skiff-sh/skiff/internal/objectjson"
	"github.com/skiff-sh/skiff/internal/registry"
)

var emptyGR = schema.GroupResource{}

// subresources each resource kind may serve.
func allowedSubresource(res *registry.Resource, sub string) bool {
	switch sub {
	case "":
		return true
	case "status":
		return res.Status
	}
	_, part := res.Parts[sub]
	return part || res.Actions[sub] != nil
}

func (s *Server) serveResource(w http.ResponseWriter, r *http.Request, ri RequestInfo) error {
	gvr := schema.GroupVersionResource{Group: ri.Group, Version: ri.Version, Resource: ri.Resource}
	res := s.reg.Lookup(gvr)
	if res == nil {
		// Upstream's mux answers an unserved group or resource with its
		// generic 404, not a missing object's.
		return apierrors.NewGenericServerResponse(http.StatusNotFound, "", schema.GroupResource{}, "", "", 0, false)
	}
	if res.Custom != nil && res.Custom.Deprecation != "" {
		w.Header().Add("Warning", fmt.Sprintf("299 - %q", res.Custom.Deprecation))
	}
	if ri.Name != "" && isResourceProxy(ri) {
		return s.serveResourceProxy(w, r, res, ri)
	}
	if ri.Name != "" && isNodeStream(ri) {
		return s.serveNodeStream(w, r, res, ri)
	}
	if !allowedSubresource(res, ri.Subresource) {
		return apierrors.NewNotFound(res.GroupResource(), ri.Name)
	}
	if !res.Namespaced && ri.Resource != "namespaces" && ri.Namespace != "" {
		return apierrors.NewNotFound(res.GroupResource(), ri.Name)
	}
	ns := ri.Namespace
	if !res.Namespaced {
		ns = ""
	}
	if res.Namespaced && ns == "" && (ri.Name != "" || ri.Verb == "create" || ri.Verb == "deletecollection") {
		return badRequest("the server could not find the requested resource: namespace is required for %s", ri.Resource)
	}
	if a := res.Actions[ri.Subresource]; a != nil {
		return s.serveAction(w, r, res, a, ns, ri)
	}
	switch ri.Verb {
	case "get":
		return s.handleGet(w, r, res, ns, ri)
	case "list":
		return s.handleList(w, r, res, ns)
	case "watch":
		return s.handleWatch(w, r, res, ns, ri.Name)
	case "create":
		return s.handleCreate(w, r, res, ns, ri)
	case "update":
		return s.handleUpdate(w, r, res, ns, ri)
	case "patch":
		return s.handlePatch(w, r, res, ns, ri)
	case "delete":
		return s.handleDelete(w, r, res, ns, ri)
	case "deletecollection":
		return s.handleDeleteCollection(w, r, res, ns)
	}
	return apierrors.NewMethodNotSupported(res.GroupResource(), ri.Verb)
}

// readBody reads at most maxBodyBytes, refusing larger bodies with 413.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		return nil, badRequest("read request body: %v", err)
	}
	if len(b) > maxBodyBytes {
		return nil, statusError(http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", fmt.Sprintf("Request entity too large: limit is %d", maxBodyBytes))
	}
	return b, nil
}

func dryRun(r *http.Request) (bool, error) {
	vals := r.URL.Query()["dryRun"]
	for _, v := range vals {
		if v != metav1.DryRunAll {
			return false, badRequest("Invalid dry run value: %q: valid values are %q", v, metav1.DryRunAll)
		}
	}
	return len(vals) > 0, nil
}

// fieldValidation is the query's fieldValidation (default Warn, as upstream).
func fieldValidation(r *http.Request) (string, error) {
	v := r.URL.Query().Get("fieldValidation")
	switch v {
	case "":
		return "Warn", nil
	case "Ignore", "Warn", "Strict":
		return v, nil
	}
	return "", badRequest("fieldValidation parameter unsupported: %q", v)
}

// decodeBody decodes a request body of the request's content type into a
// new object of the expected kind, applying fieldValidation.
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, body []byte, expected schema.GroupVersionKind, into runtime.Object) (runtime.Object, error) {
	ct := r.Header.Get("Content-Type")
	mt := mediaJSON
	if ct != "" {
		var err error
		if mt, _, err = mime.ParseMediaType(ct); err != nil {
			return nil, statusError(http.StatusUnsupportedMediaType, metav1.StatusReasonUnsupportedMediaType, fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: %s, %s, %s", mediaJSON, mediaYAML, mediaProtobuf))
		}
	}
	validation, err := fieldValidation(r)
	if err != nil {
		return nil, err
	}
	var obj runtime.Object
	var gvk *schema.GroupVersionKind
	switch mt {
	case mediaJSON, mediaYAML:
		dec := s.codecs.Strict
		if mt == mediaYAML {
			dec = s.codecs.YAML
		}
		if err := checkKind(body, mt == mediaYAML, expected); err != nil {
			return nil, err
		}
		obj, gvk, err = dec.Decode(body, &expected, into)
		if err != nil && runtime.IsStrictDecodingError(err) && obj != nil {
			switch validation {
			case "Strict":
				// Upstream's text, prefix included (clients match on it).
				return nil, badRequest("%s", err.Error())
			case "Warn":
				for _, e := range strictErrors(err) {
					w.Header().Add("Warning", fmt.Sprintf("299 - %q", e))
				}
			}
			err = nil
		}
	case mediaProtobuf:
		obj, gvk, err = s.codecs.Proto.Decode(body, &expected, into)
	default:
		return nil, statusError(http.StatusUnsupportedMediaType, metav1.StatusReasonUnsupportedMediaType, fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: %s, %s, %s", mediaJSON, mediaYAML, mediaProtobuf))
	}
	if err != nil {
		return nil, badRequest("the object provided is unrecognized or malformed: %v", err)
	}
	if gvk != nil && *gvk != expected {
		if gvk.GroupVersion() != expected.GroupVersion() {
			return nil, badRequest("the API version in the data (%s) does not match the expected API version (%s)", gvk.GroupVersion(), expected.GroupVersion())
		}
		return nil, badRequest("the kind in the data (%s) does not match the expected kind (%s)", gvk.Kind, expected.Kind)
	}
	if obj != into {
		return nil, badRequest("the object provided is unrecognized (kind %s)", gvk)
	}
	obj.GetObjectKind().SetGroupVersionKind(expected)
	recordRequestObject(r.Context(), obj)
	return obj, nil
}

// decodeResource decodes a request's object of res. A custom object comes
// as JSON or YAML only, and the fields its schema does not know are pruned:
// refused, warned about or dropped silently as fieldValidation says.
func (s *Server) decodeResource(w http.ResponseWriter, r *http.Request, body []byte, res *registry.Resource) (runtime.Object, error) {
	if res.Custom == nil {
		return s.decodeBody(w, r, body, res.GVK(), res.New())
	}
	var obj runtime.Object
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil && mt == mediaProtobuf {
		if res.Custom.Proto.Unmarshal == nil {
			return nil, statusError(http.StatusUnsupportedMediaType, metav1.StatusReasonUnsupportedMediaType, fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: %s, %s", mediaJSON, mediaYAML))
		}
		if obj, err = s.decodeProto(r, body, res); err != nil {
			return nil, err
		}
	} else if obj = decodeCustomJSON(r, body, res.GVK()); obj != nil {
		recordRequestObject(r.Context(), obj)
	} else if obj, err = s.decodeBody(w, r, body, res.GVK(), res.New()); err != nil {
		return nil, err
	}
	if err := pruneUnknown(w, r, res, obj); err != nil {
		return nil, err
	}
	return obj, nil
}

// decodeCustomJSON is the quick way to a custom object sent as JSON: the
// object when the body is plain valid JSON of the expected kind, nil for
// anything else, which decodeBody then decodes and words the errors of.
func decodeCustomJSON(r *http.Request, body []byte, want schema.GroupVersionKind) runtime.Object {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != mediaJSON {
			return nil
		}
	}
	m, ok := objectjson.Decode(body)
	if !ok {
		return nil
	}
	if v, _ := m["apiVersion"].(string); v != want.GroupVersion().String() {
		return nil
	}
	if k, _ := m["kind"].(string); k != want.Kind {
		return nil
	}
	return &unstructured.Unstructured{Object: m}
}

// decodeProto reads a protobuf body of a kind skiff defines itself.
func (s *Server) decodeProto(r *http.Request, body []byte, res *registry.Resource) (runtime.Object, error) {
	tm, raw, err := decodeProtoEnvelope(body)
	if err != nil {
		return nil, badRequest("the object provided is unrecognized or malformed: %v", err)
	}
	if want := res.GVK(); tm.APIVersion != want.GroupVersion().String() || tm.Kind != want.Kind {
		return nil, badRequest("the kind in the data (%s, %s) does not match the expected kind (%s)", tm.APIVersion, tm.Kind, want)
	}
	obj, err := res.Custom.Proto.Unmarshal(raw)
	if err != nil {
		return nil, badRequest("the object provided is unrecognized or malformed: %v", err)
	}
	recordRequestObject(r.Context(), obj)
	return obj, nil
}

// pruneUnknown drops a custom object's unknown fields, as fieldValidation
// asks (see unknownFields).
func pruneUnknown(w http.ResponseWriter, r *http.Request, res *registry.Resource, obj runtime.Object) error {
	validation, err := fieldValidation(r)
	if err != nil {
		return err
	}
	warnings, err := unknownFields(res, obj, validation)
	for _, m := range warnings {
		w.Header().Add("Warning", fmt.Sprintf("299 - %q", m))
	}
	return err
}

// unknownFields prunes the fields of a custom object its schema does not
// know: Strict refuses the request naming them, Warn returns a warning for
// each, Ignore drops them silently.
func unknownFields(res *registry.Resource, obj runtime.Object, validation string) ([]string, error) {
	if res.Custom == nil {
		return nil, nil
	}
	unknown := res.Custom.UnknownFields(obj)
	if len(unknown) == 0 {
		return nil, nil
	}
	msgs := make([]string, len(unknown))
	for i, f := range unknown {
		msgs[i] = fmt.Sprintf("unknown field %q", f)
	}
	switch validation {
	case "Strict":
		return nil, badRequest("strict decoding error: %s", strings.Join(msgs, ", "))
	case "Warn":
		return msgs, nil
	}
	return nil, nil
}

func strictErrors(err error) []string {
	msg := strings.TrimPrefix(err.Error(), "strict decoding error: ")
	return strings.Split(msg, ", ")
}

// respond writes obj (which carries its kind) with code in the negotiated
// form.
func (s *Server) respond(w http.ResponseWriter, r *http.Request, res *registry.Resource, code int, obj runtime.Object) error {
	out, err := negotiateFor(r.Header.Get("Accept"), res)
	if err != nil {
		return err
	}
	if r.URL.Query().Get("pretty") == "true" {
		out.Pretty = true
	}
	if out.Table && res != nil && !meta.IsListType(obj) {
		if _, isStatus := obj.(*metav1.Status); !isStatus {
			tbl, err := s.tableFor(res, []runtime.Object{obj}, "", r.URL.Query().Get("includeObject"), false)
			if err != nil {
				return err
			}
			obj = tbl
		}
	} else if out.PartialMetadata {
		if meta.IsListType(obj) {
			obj = partialList(obj)
		} else if acc, err := meta.Accessor(obj); err == nil {
			obj = partial(acc)
		}
	}
	s.codecs.setKind(obj, schema.GroupVersion{})
	recordResponseObject(r.Context(), obj)
	if out.Media == mediaProtobuf {
		obj = forProto(res, obj)
	}
	b, err := s.codecs.EncodeAs(out, obj)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", out.ContentType())
	w.Header().Set("Cache-Control", "no-cache, private")
	w.WriteHeader(code)
	w.Write(b)
	return nil
}

// partialList is a list's PartialObjectMetadataList form (what a metadata
// client's deletecollection reads).
func partialList(list runtime.Object) runtime.Object {
	out := &metav1.PartialObjectMetadataList{TypeMeta: metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "PartialObjectMetadataList"}}
	if la, err := meta.ListAccessor(list); err == nil {
		out.ResourceVersion = la.GetResourceVersion()
	}
	_ = meta.EachListItem(list, func(item runtime.Object) error {
		if acc, err := meta.Accessor(item); err == nil {
			out.Items = append(out.Items, *partial(acc))
		}
		return nil
	})
	return out
}

func partial(acc metav1.Object) *metav1.PartialObjectMetadata {
	p := &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "PartialObjectMetadata"}}
	if om, ok := acc.(*metav1.ObjectMeta); ok {
		p.ObjectMeta = *om.DeepCopy()
	} else {
		p.ObjectMeta = metav1.ObjectMeta{Name: acc.GetName(), Namespace: acc.GetNamespace(), UID: acc.GetUID(), ResourceVersion: acc.GetResourceVersion(),
			Generation: acc.GetGeneration(), CreationTimestamp: acc.GetCreationTimestamp(), DeletionTimestamp: acc.GetDeletionTimestamp(),
			DeletionGracePeriodSeconds: acc.GetDeletionGracePeriodSeconds(), Labels: acc.GetLabels(), Annotations: acc.GetAnnotations(),
			OwnerReferences: acc.GetOwnerReferences(), Finalizers: acc.GetFinalizers(), ManagedFields: acc.GetManagedFields()}
	}
	return p
}

// withKind sets obj's kind to res's.
// withKind sets obj's apiVersion and kind to res's; an object that has them
// already is left untouched, as it may be shared with the watch cache.
func withKind(res *registry.Resource, obj runtime.Object) runtime.Object {
	if k := obj.GetObjectKind(); k.GroupVersionKind() != res.GVK() {
		k.SetGroupVersionKind(res.GVK())
	}
	return obj
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request, res *registry.Resource, ns string, ri RequestInfo) error {
	obj, err := s.reg.Get(r.Context(), res, ns, ri.Name)
	if err != nil {
		return err
	}
	return s.respond(w, r, res, http.StatusOK, withKind(res, obj))
}

func writeOptions(r *http.Request, sub string) (registry.WriteOptions, error) {
	dr, err := dryRun(r)
	if err != nil {
		return registry.WriteOptions{}, err
	}
	fm := r.URL.Query().Get("fieldManager")
	if len(fm) > 128 {
		return registry.WriteOptions{}, badRequest("fieldManager: Too long: may not be more than 128 bytes")
	}
	if fm == "" {
		fm = defaultManager(r.UserAgent())
	}
	return registry.WriteOptions{DryRun: dr, FieldManager: fm, Subresource: sub}, nil
}

// defaultManager derives a field manager from the user agent, as upstream
// does ("kubectl-client-side-apply/v1.37 (linux/amd64)" -> its first word).
func defaultManager(ua string) string {
	if i := strings.Index(ua, "/"); i > 0 {
		ua = ua[:i]
	}
	if len(ua) > 128 {
		ua = ua[:128]
	}
	return ua
}

func (s *Server) handleCreate(w http.ResponseWriter, r *http.Request, res *registry.Resource, ns string, ri RequestInfo) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	if ri.Name != "" || ri.Subresource != "" {
		return apierrors.NewMethodNotSupported(res.GroupResource(), "create")
	}
	obj, err := s.decodeResource(w, r, body, res)
	if err != nil {
		return err
	}
	o, err := writeOptions(r, "")
	if err != nil {
		return err
	}
	out, err := s.reg.Create(r.Context(), res, ns, obj, o)
	if err != nil {
		return err
	}
	return s.respond(w, r, res, http.StatusCreated, withKind(res, out))
}

func (s *Server) handleUpdate(w http.ResponseWriter, r *http.Request, res *registry.Resource, ns string, ri RequestInfo) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	obj, err := s.decodeResource(w, r, body, res)
	if err != nil {
		return err
	}
	acc, _ := meta.Accessor(obj)
	if acc.GetName() != ri.Name {
		return badRequest("the name of the object (%s) does not match the name on the URL (%s)", acc.GetName(), ri.Name)
	}
	if res.Namespaced && acc.GetNamespace() != "" && acc.GetNamespace() != ns {
		return badRequest("the namespace of the provided object does not match the namespace sent on the request")
	}
	sub := ri.Subresource
	o, err := writeOptions(r, sub)
	if err != nil {
		return err
	}
	mutate := func(runtime.Object) (runtime.Object, error) { return obj.DeepCopyObject(), nil }
	out, created, err := s.reg.Update(r.Context(), res, ns, ri.Name, mutate, o, false)
	return s.finishWrite(w, r, res, out, created, err)
}

func (s *Server) finishWrite(w http.ResponseWriter, r *http.Request, res *registry.Resource, out runtime.Object, created bool, err error) error {
	if err != nil {
		return err
	}
	if out == nil {
		// The write removed the last finalizer and the object is gone.
		return s.respond(w, r, nil, http.StatusOK, statusObject(&metav1.Status{Status: metav1.StatusSuccess}))
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	return s.respond(w, r, res, code, withKind(res, out))
}

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request, res *registry.Resource, ns string, ri RequestInfo) error {
	if ri.Subresource != "" {
		return apierrors.NewMethodNotSupported(res.GroupResource(), "delete")
	}
	opts, err := s.deleteOptions(r)
	if err != nil {
		return err
	}
	obj, gone, err := s.reg.Delete(r.Context(), res, ns, ri.Name, opts)
	if err != nil {
		return err
	}
	if !gone {
		return s.respond(w, r, res, http.StatusOK, withKind(res, obj))
	}
	acc, _ := meta.Accessor(obj)
	st := &metav1.Status{Status: metav1.StatusSuccess, Details: &metav1.StatusDetails{Name: ri.Name, Group: res.GVR.Group, Kind: res.GVR.Resource, UID: acc.GetUID()}}
	return s.respond(w, r, nil, http.StatusOK, statusObject(st))
}

// decodeForeignDeleteOptions reads DeleteOptions sent with the apiVersion
// of a group the scheme does not hold, as JSON or protobuf.
func decodeForeignDeleteOptions(body []byte, opts *metav1.DeleteOptions) error {
	if tm, raw, err := decodeProtoEnvelope(body); err == nil {
		if tm.Kind != "DeleteOptions" {
			return fmt.Errorf("kind %q", tm.Kind)
		}
		return opts.Unmarshal(raw)
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(body, &tm); err != nil || tm.Kind != "DeleteOptions" {
		return fmt.Errorf("not DeleteOptions")
	}
	return json.Unmarshal(body, opts)
}

// deleteOptions reads DeleteOptions from the body and the query.
func (s *Server) deleteOptions(r *http.Request) (metav1.DeleteOptions, error) {
	var opts metav1.DeleteOptions
	body, err := readBody(r)
	if err != nil {
		return opts, err
	}
	if len(bytes.TrimSpace(body)) > 0 {
		def := metav1.SchemeGroupVersion.WithKind("DeleteOptions")
		if _, _, err := s.codecs.Factory.UniversalDeserializer().Decode(body, &def, &opts); err != nil {
			// Upstream takes DeleteOptions in the version of the resource
			// deleted, also of groups this scheme does not hold (custom
			// resources, APIService): read those for what they are.
			if !runtime.IsNotRegisteredError(err) || decodeForeignDeleteOptions(body, &opts) != nil {
				return opts, badRequest("invalid DeleteOptions: %v", err)
			}
		}
	}
	q := r.URL.Query()
	if v := q.Get("gracePeriodSeconds"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return opts, badRequest("invalid gracePeriodSeconds %q", v)
		}
		opts.GracePeriodSeconds = &n
	}
	if v := q.Get("propagationPolicy"); v != "" {
		p := metav1.DeletionPropagation(v)
		opts.PropagationPolicy = &p
	}
	if v := q.Get("orphanDependents"); v != "" {
		b := v == "true"
		opts.OrphanDependents = &b
	}
	opts.DryRun = append(opts.DryRun, q["dryRun"]...)
	for _, d := range opts.DryRun {
		if d != metav1.DryRunAll {
			return opts, badRequest("Invalid dry run value: %q", d)
		}
	}
	if p := opts.PropagationPolicy; p != nil && !slices.Contains([]metav1.DeletionPropagation{metav1.DeletePropagationForeground, metav1.DeletePropagationBackground, metav1.DeletePropagationOrphan}, *p) {
		return opts, badRequest("propagationPolicy: Unsupported value: %q: supported values: \"Foreground\", \"Background\", \"Orphan\"", *p)
	}
	if g := opts.GracePeriodSeconds; g != nil && *g < 0 {
		zero := int64(0)
		opts.GracePeriodSeconds = &zero
	}
	return opts, nil
}

// checkKind compares the apiVersion and kind a body declares with the URL's
// before decoding, so the error names the mismatch.
func checkKind(body []byte, isYAML bool, expected schema.GroupVersionKind) error {
	js := body
	if isYAML {
		var err error
		if js, err = yaml.YAMLToJSON(body); err != nil {
			return badRequest("error decoding YAML: %v", err)
		}
	}
	gvk, err := jsonserializer.DefaultMetaFactory.Interpret(js)
	if err != nil || gvk == nil {
		return nil // the decoder reports malformed input
	}
	if gvk.Version != "" && gvk.GroupVersion() != expected.GroupVersion() {
		return badRequest("the API version in the data (%s) does not match the expected API version (%s)", gvk.GroupVersion(), expected.GroupVersion())
	}
	if gvk.Kind != "" && gvk.Kind != expected.Kind {
		return badRequest("the kind in the data (%s) does not match the expected kind (%s)", gvk.Kind, expected.Kind)
	}
	return nil
}
