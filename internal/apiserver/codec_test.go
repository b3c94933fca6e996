package apiserver

import (
	"bytes"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
)

func TestNegotiate(t *testing.T) {
	cases := []struct {
		accept string
		want   Output
		err    bool
	}{
		{"", Output{Media: mediaJSON}, false},
		{"application/json", Output{Media: mediaJSON}, false},
		{"application/vnd.kubernetes.protobuf, */*", Output{Media: mediaProtobuf}, false},
		{"application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json", Output{Media: mediaJSON, Table: true}, false},
		{"application/json;as=Table;v=v9;g=meta.k8s.io,application/json", Output{Media: mediaJSON}, false},
		{"application/yaml", Output{Media: mediaYAML}, false},
		{"application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1", Output{Media: mediaProtobuf, PartialMetadata: true}, false},
		{"text/html", Output{}, true},
	}
	for _, c := range cases {
		got, err := Negotiate(c.accept, true)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("%q: got %+v, %v; want %+v", c.accept, got, err, c.want)
		}
	}
}

func TestContinueToken(t *testing.T) {
	tok := encodeContinue(42, "ns/name\x00")
	got, err := decodeContinue(tok)
	if err != nil || got.ResourceVersion != 42 || got.StartKey != "ns/name\x00" {
		t.Errorf("round trip: %+v %v", got, err)
	}
	for _, bad := range []string{"", "!!!", "eyJ2IjoieCJ9"} {
		if _, err := decodeContinue(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestProtoListEnvelope checks the spliced protobuf list against what the
// upstream protobuf serializer makes of the same list.
func TestProtoListEnvelope(t *testing.T) {
	pods := &corev1.PodList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "PodList"}, ListMeta: metav1.ListMeta{ResourceVersion: "42", Continue: "next"}}
	for i := range 300 { // enough bytes for multi-byte length varints
		pods.Items = append(pods.Items, corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%d", i), Namespace: "ns", Labels: map[string]string{"app": "web"}}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "img"}}}})
	}
	var raws [][]byte
	for i := range pods.Items {
		raw, err := EncodeRawProto(&pods.Items[i])
		if err != nil {
			t.Fatal(err)
		}
		raws = append(raws, raw)
	}
	lm, _ := pods.ListMeta.Marshal()
	got := protoListEnvelope(corev1.SchemeGroupVersion.WithKind("PodList"), lm, raws)

	s := runtime.NewScheme()
	clientgoscheme.AddToScheme(s)
	var want bytes.Buffer
	if err := protobuf.NewSerializer(s, s).Encode(pods, &want); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("envelope differs from the upstream serializer: %d bytes, want %d", len(got), want.Len())
	}
}
