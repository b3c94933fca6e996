package apiserver

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"mime"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	jsonserializer "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"sigs.k8s.io/yaml"

	"github.com/skiff-sh/skiff/internal/objectjson"
	"github.com/skiff-sh/skiff/internal/registry"
)

// Media types skiff speaks.
const (
	mediaJSON       = "application/json"
	mediaYAML       = "application/yaml"
	mediaProtobuf   = "application/vnd.kubernetes.protobuf"
	mediaApply      = "application/apply-patch+yaml"
	mediaJSONPatch  = "application/json-patch+json"
	mediaMergePatch = "application/merge-patch+json"
	mediaSMP        = "application/strategic-merge-patch+json"
)

// protoMagic prefixes every protobuf-encoded Kubernetes object.
var protoMagic = []byte{0x6b, 0x38, 0x73, 0x00}

// Codecs bundles the serializers of the scheme.
type Codecs struct {
	Scheme  *runtime.Scheme
	Factory serializer.CodecFactory
	JSON    *jsonserializer.Serializer
	Strict  *jsonserializer.Serializer
	YAML    *jsonserializer.Serializer
	Proto   *protobuf.Serializer
	Raw     *protobuf.RawSerializer
}

// NewCodecs builds the serializers for scheme.
func NewCodecs(scheme *runtime.Scheme) *Codecs {
	return &Codecs{
		Scheme:  scheme,
		Factory: serializer.NewCodecFactory(scheme),
		JSON:    jsonserializer.NewSerializerWithOptions(jsonserializer.DefaultMetaFactory, scheme, scheme, jsonserializer.SerializerOptions{}),
		Strict:  jsonserializer.NewSerializerWithOptions(jsonserializer.DefaultMetaFactory, scheme, scheme, jsonserializer.SerializerOptions{Strict: true}),
		YAML:    jsonserializer.NewSerializerWithOptions(jsonserializer.DefaultMetaFactory, scheme, scheme, jsonserializer.SerializerOptions{Yaml: true, Strict: true}),
		Proto:   protobuf.NewSerializer(scheme, scheme),
		Raw:     protobuf.NewRawSerializer(scheme, scheme),
	}
}

// setKind fills obj's apiVersion and kind from the scheme if empty.
func (c *Codecs) setKind(obj runtime.Object, gv schema.GroupVersion) {
	if !obj.GetObjectKind().GroupVersionKind().Empty() {
		return
	}
	gvks, _, err := c.Scheme.ObjectKinds(obj)
	if err != nil {
		return
	}
	for _, gvk := range gvks {
		if gvk.GroupVersion() == gv {
			obj.GetObjectKind().SetGroupVersionKind(gvk)
			return
		}
	}
	obj.GetObjectKind().SetGroupVersionKind(gvks[0])
}

// EncodeJSON is the JSON form of obj, which must carry its kind.
func (c *Codecs) EncodeJSON(obj runtime.Object) ([]byte, error) {
	if u, ok := obj.(*unstructured.Unstructured); ok && u.Object != nil {
		return objectjson.Marshal(u.Object) // the same bytes, without reflection
	}
	var buf bytes.Buffer
	if err := c.JSON.Encode(obj, &buf); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// EncodeProto is the enveloped protobuf form of obj.
func (c *Codecs) EncodeProto(obj runtime.Object) ([]byte, error) {
	var buf bytes.Buffer
	if err := c.Proto.Encode(obj, &buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// EncodeRawProto is the bare protobuf message of obj (no envelope), used to
// splice items into a list.
func EncodeRawProto(obj runtime.Object) ([]byte, error) {
	m, ok := obj.(interface{ Marshal() ([]byte, error) })
	if !ok {
		return nil, fmt.Errorf("%T cannot be encoded as protobuf", obj)
	}
	return m.Marshal()
}

// protoListEnvelope encodes a list in the Kubernetes protobuf envelope
// (magic, then runtime.Unknown{typeMeta, raw, contentEncoding, contentType})
// from the list's encoded ListMeta and its items' raw messages, writing every
// byte once into one buffer sized up front.
func protoListEnvelope(gvk schema.GroupVersionKind, listMeta []byte, items [][]byte) []byte {
	tm := runtime.TypeMeta{APIVersion: gvk.GroupVersion().String(), Kind: gvk.Kind}
	tmRaw, _ := tm.Marshal() // TypeMeta of two strings cannot fail to encode
	msgLen := protoFieldLen(len(listMeta))
	for _, it := range items {
		msgLen += protoFieldLen(len(it))
	}
	buf := make([]byte, 0, len(protoMagic)+protoFieldLen(len(tmRaw))+protoFieldLen(msgLen)+4)
	buf = append(buf, protoMagic...)
	buf = appendProtoField(buf, 1, tmRaw)
	buf = binary.AppendUvarint(buf, uint64(2<<3|2))
	buf = binary.AppendUvarint(buf, uint64(msgLen))
	buf = appendProtoField(buf, 1, listMeta)
	for _, it := range items {
		buf = appendProtoField(buf, 2, it)
	}
	// contentEncoding and contentType, empty, as runtime.Unknown writes them.
	buf = appendProtoField(buf, 3, nil)
	return appendProtoField(buf, 4, nil)
}

// protoFieldLen is the encoded size of a length-delimited field (of number
// below 16) holding n bytes.
func protoFieldLen(n int) int {
	return 1 + uvarintLen(uint64(n)) + n
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// appendProtoField appends a length-delimited field to a protobuf message.
func appendProtoField(dst []byte, field int, data []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(field<<3|2))
	dst = binary.AppendUvarint(dst, uint64(len(data)))
	return append(dst, data...)
}

// Output is a negotiated response form.
type Output struct {
	Media string // mediaJSON, mediaYAML or mediaProtobuf
	// Table set: answer as a meta.k8s.io/v1 Table.
	Table bool
	// PartialMetadata: answer as PartialObjectMetadata(List).
	PartialMetadata bool
	Pretty          bool
}

// ContentType is the Content-Type header of the output.
func (o Output) ContentType() string {
	switch {
	case o.Table && o.Media == mediaJSON:
		return "application/json;as=Table;v=v1;g=meta.k8s.io"
	case o.Table && o.Media == mediaProtobuf:
		return mediaProtobuf + ";as=Table;v=v1;g=meta.k8s.io"
	case o.PartialMetadata:
		return o.Media + ";as=PartialObjectMetadata;v=v1;g=meta.k8s.io"
	}
	return o.Media
}

// Negotiate picks the response form from an Accept header, as upstream's
// content negotiation does: the first acceptable entry wins.
func Negotiate(accept string, allowTable bool) (Output, error) {
	return negotiate(accept, allowTable, false)
}

// negotiateFor picks the response form for res: custom objects have no
// protobuf form (their Table and metadata views do), as upstream.
func negotiateFor(accept string, res *registry.Resource) (Output, error) {
	return negotiate(accept, true, res != nil && res.Custom != nil && res.Custom.Proto.Marshal == nil)
}

// protoObject gives an object of a kind skiff defines itself (held as
// unstructured) the protobuf marshalling the serializer looks for.
type protoObject struct {
	runtime.Object
	marshal func(runtime.Object) ([]byte, error)
}

func (p protoObject) Marshal() ([]byte, error) { return p.marshal(p.Object) }

// forProto is obj ready for protobuf encoding as res's kind.
func forProto(res *registry.Resource, obj runtime.Object) runtime.Object {
	if res == nil || res.Custom == nil || res.Custom.Proto.Marshal == nil {
		return obj
	}
	switch obj.(type) {
	case *unstructured.Unstructured:
		return protoObject{Object: obj, marshal: res.Custom.Proto.Marshal}
	case *unstructured.UnstructuredList:
		return protoObject{Object: obj, marshal: func(o runtime.Object) ([]byte, error) {
			return marshalProtoList(o.(*unstructured.UnstructuredList), res.Custom.Proto.Marshal)
		}}
	}
	return obj
}

// marshalProtoList is a list's bare protobuf message: its ListMeta (field
// 1), then each item (field 2), as every Kubernetes list is numbered.
func marshalProtoList(l *unstructured.UnstructuredList, item func(runtime.Object) ([]byte, error)) ([]byte, error) {
	lm := metav1.ListMeta{ResourceVersion: l.GetResourceVersion(), Continue: l.GetContinue(), RemainingItemCount: l.GetRemainingItemCount()}
	raw, err := lm.Marshal()
	if err != nil {
		return nil, err
	}
	out := appendProtoField(nil, 1, raw)
	for i := range l.Items {
		b, err := item(&l.Items[i])
		if err != nil {
			return nil, err
		}
		out = appendProtoField(out, 2, b)
	}
	return out, nil
}

// decodeProtoEnvelope reads the Kubernetes protobuf envelope (magic, then
// runtime.Unknown) and returns its type and bare message.
func decodeProtoEnvelope(body []byte) (runtime.TypeMeta, []byte, error) {
	if !bytes.HasPrefix(body, protoMagic) {
		return runtime.TypeMeta{}, nil, fmt.Errorf("provided data does not appear to be a protobuf message, expected prefix %v", protoMagic)
	}
	var unk runtime.Unknown
	if err := unk.Unmarshal(body[len(protoMagic):]); err != nil {
		return runtime.TypeMeta{}, nil, err
	}
	return unk.TypeMeta, unk.Raw, nil
}

func negotiate(accept string, allowTable, jsonOnly bool) (Output, error) {
	if strings.TrimSpace(accept) == "" {
		return Output{Media: mediaJSON}, nil
	}
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		var media string
		switch mt {
		case mediaJSON, "*/*", "application/*":
			media = mediaJSON
		case mediaYAML:
			media = mediaYAML
		case mediaProtobuf:
			media = mediaProtobuf
		default:
			continue
		}
		if jsonOnly && media == mediaProtobuf && params["as"] == "" {
			continue
		}
		out := Output{Media: media, Pretty: params["pretty"] == "1"}
		switch params["as"] {
		case "":
		case "Table":
			if !allowTable || params["g"] != "meta.k8s.io" || (params["v"] != "v1" && params["v"] != "v1beta1") {
				continue
			}
			out.Table = true
		case "PartialObjectMetadata", "PartialObjectMetadataList":
			if params["g"] != "meta.k8s.io" || (params["v"] != "v1" && params["v"] != "v1beta1") {
				continue
			}
			out.PartialMetadata = true
		default:
			continue
		}
		return out, nil
	}
	if jsonOnly {
		return Output{}, apierrors.NewGenericServerResponse(406, "get", schema.GroupResource{}, "", fmt.Sprintf("only the following media types are accepted: %s, %s", mediaJSON, mediaYAML), 0, false)
	}
	return Output{}, apierrors.NewGenericServerResponse(406, "get", schema.GroupResource{}, "", fmt.Sprintf("only the following media types are accepted: %s, %s, %s", mediaJSON, mediaYAML, mediaProtobuf), 0, false)
}

// EncodeAs renders obj (which carries its kind) in the output's media type.
func (c *Codecs) EncodeAs(o Output, obj runtime.Object) ([]byte, error) {
	switch o.Media {
	case mediaProtobuf:
		return c.EncodeProto(obj)
	case mediaYAML:
		j, err := c.EncodeJSON(obj)
		if err != nil {
			return nil, err
		}
		return yaml.JSONToYAML(j)
	}
	j, err := c.EncodeJSON(obj)
	if err != nil {
		return nil, err
	}
	if o.Pretty {
		var buf bytes.Buffer
		if err := jsonIndent(&buf, j); err == nil {
			return buf.Bytes(), nil
		}
	}
	return j, nil
}

// statusKind fills a Status's kind for encoding.
func statusObject(s *metav1.Status) *metav1.Status {
	s.Kind, s.APIVersion = "Status", "v1"
	return s
}
