package registry

import (
	"fmt"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

func endpointSliceStrategy(r *Resource) {
	r.Guard = nodeRestriction
	r.Validate = asValidate(func(s *discoveryv1.EndpointSlice) field.ErrorList {
		var errs field.ErrorList
		switch s.AddressType {
		case discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6, discoveryv1.AddressTypeFQDN:
		default:
			errs = append(errs, field.NotSupported(field.NewPath("addressType"), s.AddressType, []string{"IPv4", "IPv6", "FQDN"}))
		}
		if len(s.Endpoints) > 1000 {
			errs = append(errs, field.TooMany(field.NewPath("endpoints"), len(s.Endpoints), 1000))
		}
		return errs
	})
	r.Columns = []metav1.TableColumnDefinition{nameCol, col("AddressType", "string", 0, ""), col("Ports", "string", 0, ""), col("Endpoints", "string", 0, ""), ageCol}
	r.Row = asRow(func(s *discoveryv1.EndpointSlice, _ bool) []any {
		var ports, addrs []string
		for _, p := range s.Ports {
			ports = append(ports, fmt.Sprint(ptr.Deref(p.Port, 0)))
		}
		for _, e := range s.Endpoints {
			addrs = append(addrs, e.Addresses...)
		}
		return []any{s.Name, string(s.AddressType), joinLimited(ports, 3), joinLimited(addrs, 3), age(s.CreationTimestamp)}
	})
}
