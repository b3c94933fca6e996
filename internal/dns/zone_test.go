package dns

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/miekg/dns"
	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func testZone() *Zone {
	svcs := []*v1.Service{
		{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"}, Spec: v1.ServiceSpec{
			ClusterIP: "10.43.0.20", ClusterIPs: []string{"10.43.0.20"},
			Ports: []v1.ServicePort{{Name: "http", Port: 80, Protocol: v1.ProtocolTCP}, {Port: 9000, Protocol: v1.ProtocolTCP}},
		}},
		{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "shop"}, Spec: v1.ServiceSpec{ClusterIP: v1.ClusterIPNone,
			Ports: []v1.ServicePort{{Name: "pg", Port: 5432, Protocol: v1.ProtocolTCP}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "ext", Namespace: "shop"}, Spec: v1.ServiceSpec{Type: v1.ServiceTypeExternalName, ExternalName: "Example.COM"}},
	}
	slices := []*discoveryv1.EndpointSlice{{
		ObjectMeta:  metav1.ObjectMeta{Name: "db-1", Namespace: "shop", Labels: map[string]string{discoveryv1.LabelServiceName: "db"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("pg"), Port: ptr.To[int32](5432), Protocol: ptr.To(v1.ProtocolTCP)}},
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.42.0.7"}, Hostname: ptr.To("db-0"), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}},
			{Addresses: []string{"10.42.1.8"}, Hostname: ptr.To("db-1"), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}},
			{Addresses: []string{"10.42.1.9"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}},
			{Addresses: []string{"10.42.1.10"}, Hostname: ptr.To("db-3"), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false)}},
		},
	}}
	return BuildZone("cluster.local", svcs, slices)
}

// render is a lookup's rcode and answers as short strings.
func render(a Answer) string {
	var rrs []string
	for _, rr := range a.Answer {
		f := strings.Fields(rr.String())
		rrs = append(rrs, strings.Join(append([]string{f[3]}, f[4:]...), " "))
	}
	sort.Strings(rrs)
	return fmt.Sprintf("%s %s", dns.RcodeToString[a.Rcode], strings.Join(rrs, "; "))
}

func TestZoneLookup(t *testing.T) {
	z := testZone()
	cases := []struct {
		name  string
		qtype uint16
		want  string
	}{
		{"web.shop.svc.cluster.local.", dns.TypeA, "NOERROR A 10.43.0.20"},
		{"WEB.Shop.svc.cluster.local.", dns.TypeA, "NOERROR A 10.43.0.20"},
		{"web.shop.svc.cluster.local.", dns.TypeAAAA, "NOERROR "},
		{"_http._tcp.web.shop.svc.cluster.local.", dns.TypeSRV, "NOERROR SRV 0 100 80 web.shop.svc.cluster.local."},
		{"db.shop.svc.cluster.local.", dns.TypeA, "NOERROR A 10.42.0.7; A 10.42.1.8; A 10.42.1.9"},
		{"db-1.db.shop.svc.cluster.local.", dns.TypeA, "NOERROR A 10.42.1.8"},
		{"10-42-1-9.db.shop.svc.cluster.local.", dns.TypeA, "NOERROR A 10.42.1.9"},
		{"db-3.db.shop.svc.cluster.local.", dns.TypeA, "NXDOMAIN "},
		{"_pg._tcp.db.shop.svc.cluster.local.", dns.TypeSRV, "NOERROR SRV 0 33 5432 10-42-1-9.db.shop.svc.cluster.local.; SRV 0 33 5432 db-0.db.shop.svc.cluster.local.; SRV 0 33 5432 db-1.db.shop.svc.cluster.local."},
		{"ext.shop.svc.cluster.local.", dns.TypeA, "NOERROR CNAME example.com."},
		{"10-42-3-4.shop.pod.cluster.local.", dns.TypeA, "NOERROR A 10.42.3.4"},
		{"nope.shop.svc.cluster.local.", dns.TypeA, "NXDOMAIN "},
		{"shop.svc.cluster.local.", dns.TypeA, "NOERROR "},
		{"20.0.43.10.in-addr.arpa.", dns.TypePTR, "NOERROR PTR web.shop.svc.cluster.local."},
		{"8.1.42.10.in-addr.arpa.", dns.TypePTR, "NOERROR PTR db-1.db.shop.svc.cluster.local."},
	}
	for _, c := range cases {
		t.Run(c.name+"/"+dns.TypeToString[c.qtype], func(t *testing.T) {
			a := z.Lookup(dns.Question{Name: c.name, Qtype: c.qtype, Qclass: dns.ClassINET})
			if !a.Mine {
				t.Fatal("zone did not answer a cluster name")
			}
			if got := render(a); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
			// Negative answers carry the SOA so resolvers cache them.
			if len(a.Answer) == 0 && (len(a.Ns) != 1 || a.Ns[0].Header().Rrtype != dns.TypeSOA || a.Ns[0].(*dns.SOA).Minttl != recordTTL) {
				t.Errorf("negative answer without SOA: %v", a.Ns)
			}
		})
	}
}

func TestZoneLeavesOtherNamesToForwarding(t *testing.T) {
	z := testZone()
	for _, q := range []dns.Question{
		{Name: "example.com.", Qtype: dns.TypeA},
		{Name: "cluster.local.example.com.", Qtype: dns.TypeA},
		{Name: "4.3.2.1.in-addr.arpa.", Qtype: dns.TypePTR},
	} {
		if a := z.Lookup(q); a.Mine {
			t.Errorf("%s answered by the zone: %s", q.Name, render(a))
		}
	}
}
