package controlplane

import (
	"bytes"
	"fmt"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
)

// NewScheme registers every built-in API type and the meta types.
func NewScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := apiextensionsv1.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := metav1.AddMetaToScheme(s); err != nil {
		return nil, err
	}
	// Clients may send option bodies (DeleteOptions, ...) as meta.k8s.io/v1,
	// which upstream accepts for every resource.
	metav1.AddToGroupVersion(s, metav1.SchemeGroupVersion)
	return s, nil
}

// protoCodec stores built-in objects as enveloped protobuf, as upstream.
type protoCodec struct {
	scheme *runtime.Scheme
	ser    *protobuf.Serializer
}

func newProtoCodec(s *runtime.Scheme) *protoCodec {
	return &protoCodec{scheme: s, ser: protobuf.NewSerializer(s, s)}
}

func (c *protoCodec) Encode(obj runtime.Object) ([]byte, error) {
	gvks, _, err := c.scheme.ObjectKinds(obj)
	if err != nil {
		return nil, err
	}
	obj.GetObjectKind().SetGroupVersionKind(gvks[0])
	var buf bytes.Buffer
	if err := c.ser.Encode(obj, &buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (c *protoCodec) Decode(data []byte) (runtime.Object, error) {
	obj, gvk, err := c.ser.Decode(data, nil, nil)
	if err != nil {
		return nil, err
	}
	if gvk == nil {
		return nil, fmt.Errorf("stored object has no kind")
	}
	obj.GetObjectKind().SetGroupVersionKind(*gvk)
	return obj, nil
}
