package aggregator

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// The protobuf form of APIService, as upstream's generated.proto numbers
// its fields (clients built on the aggregator's clientset, upstream's e2e
// suite among them, speak protobuf). Scalars are always written, as
// upstream's generated code writes them; pointers only when set.

// MarshalProto is the bare protobuf message of an APIService (no
// envelope).
func MarshalProto(obj runtime.Object) ([]byte, error) {
	a, err := FromObject(obj)
	if err != nil {
		return nil, err
	}
	return a.marshal()
}

// UnmarshalProto reads an APIService from its bare protobuf message.
func UnmarshalProto(raw []byte) (*unstructured.Unstructured, error) {
	a := &APIService{}
	if err := a.unmarshal(raw); err != nil {
		return nil, fmt.Errorf("APIService: %w", err)
	}
	a.APIVersion, a.Kind = "apiregistration.k8s.io/v1", "APIService"
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(a)
	if err != nil {
		return nil, err
	}
	return &unstructured.Unstructured{Object: m}, nil
}

func appendMessage(b []byte, num protowire.Number, msg []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, msg)
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func (a *APIService) marshal() ([]byte, error) {
	meta, err := a.ObjectMeta.Marshal()
	if err != nil {
		return nil, err
	}
	var spec []byte
	if s := a.Spec.Service; s != nil {
		var ref []byte
		ref = appendString(ref, 1, s.Namespace)
		ref = appendString(ref, 2, s.Name)
		if s.Port != nil {
			ref = appendVarint(ref, 3, uint64(int64(*s.Port)))
		}
		spec = appendMessage(spec, 1, ref)
	}
	spec = appendString(spec, 2, a.Spec.Group)
	spec = appendString(spec, 3, a.Spec.Version)
	spec = appendVarint(spec, 4, protowire.EncodeBool(a.Spec.InsecureSkipTLSVerify))
	if a.Spec.CABundle != nil {
		spec = appendMessage(spec, 5, a.Spec.CABundle)
	}
	spec = appendVarint(spec, 7, uint64(int64(a.Spec.GroupPriorityMinimum)))
	spec = appendVarint(spec, 8, uint64(int64(a.Spec.VersionPriority)))
	var status []byte
	for _, c := range a.Status.Conditions {
		t, err := c.LastTransitionTime.Marshal()
		if err != nil {
			return nil, err
		}
		var cb []byte
		cb = appendString(cb, 1, c.Type)
		cb = appendString(cb, 2, c.Status)
		cb = appendMessage(cb, 3, t)
		cb = appendString(cb, 4, c.Reason)
		cb = appendString(cb, 5, c.Message)
		status = appendMessage(status, 1, cb)
	}
	var out []byte
	out = appendMessage(out, 1, meta)
	out = appendMessage(out, 2, spec)
	return appendMessage(out, 3, status), nil
}

// fields walks a message, calling f for each field with its number, wire
// type and value (the bytes of a length-delimited one, else the varint).
func fields(b []byte, f func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error) error {
	for len(b) > 0 {
		num, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return protowire.ParseError(l)
		}
		b = b[l:]
		var v []byte
		var n uint64
		switch typ {
		case protowire.BytesType:
			v, l = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			n, l = protowire.ConsumeVarint(b)
		default:
			l = protowire.ConsumeFieldValue(num, typ, b)
		}
		if l < 0 {
			return protowire.ParseError(l)
		}
		b = b[l:]
		if err := f(num, typ, v, n); err != nil {
			return err
		}
	}
	return nil
}

func (a *APIService) unmarshal(b []byte) error {
	return fields(b, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) error {
		switch num {
		case 1:
			return a.ObjectMeta.Unmarshal(v)
		case 2:
			return a.Spec.unmarshal(v)
		case 3:
			return fields(v, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) error {
				if num != 1 {
					return nil
				}
				var c Condition
				if err := c.unmarshal(v); err != nil {
					return err
				}
				a.Status.Conditions = append(a.Status.Conditions, c)
				return nil
			})
		}
		return nil
	})
}

func (s *Spec) unmarshal(b []byte) error {
	return fields(b, func(num protowire.Number, _ protowire.Type, v []byte, n uint64) error {
		switch num {
		case 1:
			ref := &ServiceReference{}
			s.Service = ref
			return fields(v, func(num protowire.Number, _ protowire.Type, v []byte, n uint64) error {
				switch num {
				case 1:
					ref.Namespace = string(v)
				case 2:
					ref.Name = string(v)
				case 3:
					p := int32(n)
					ref.Port = &p
				}
				return nil
			})
		case 2:
			s.Group = string(v)
		case 3:
			s.Version = string(v)
		case 4:
			s.InsecureSkipTLSVerify = n != 0
		case 5:
			s.CABundle = append([]byte{}, v...)
		case 7:
			s.GroupPriorityMinimum = int32(n)
		case 8:
			s.VersionPriority = int32(n)
		}
		return nil
	})
}

func (c *Condition) unmarshal(b []byte) error {
	return fields(b, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) error {
		switch num {
		case 1:
			c.Type = string(v)
		case 2:
			c.Status = string(v)
		case 3:
			var t metav1.Time
			if err := t.Unmarshal(v); err != nil {
				return err
			}
			c.LastTransitionTime = t
		case 4:
			c.Reason = string(v)
		case 5:
			c.Message = string(v)
		}
		return nil
	})
}
