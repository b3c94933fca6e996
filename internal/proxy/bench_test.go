//go:build kernel

// Kernel tests and benchmarks: they need root, ip and nft, and make a
// network namespace each; `make e2e` runs them (go test -tags kernel).

package proxy

import (
	"fmt"
	"net"
	"sort"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// scale makes n Services with per endpoints each.
func scale(n, per int) ([]*v1.Service, []*discoveryv1.EndpointSlice) {
	var svcs []*v1.Service
	var slices []*discoveryv1.EndpointSlice
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("svc-%d", i)
		ip := fmt.Sprintf("10.43.%d.%d", 1+i/250, 1+i%250)
		svcs = append(svcs, &v1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: name},
			Spec: v1.ServiceSpec{Type: v1.ServiceTypeClusterIP, ClusterIP: ip, ClusterIPs: []string{ip},
				Ports: []v1.ServicePort{{Name: "http", Protocol: v1.ProtocolTCP, Port: 80}}},
		})
		s := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: "bench", Name: name + "-x", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Protocol: ptr.To(v1.ProtocolTCP), Port: ptr.To[int32](8080)}},
		}
		for j := 0; j < per; j++ {
			s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
				Addresses:  []string{fmt.Sprintf("10.42.%d.%d", (i*per+j)/250%250, 2+(i*per+j)%250)},
				NodeName:   ptr.To("node-a"),
				Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
			})
		}
		slices = append(slices, s)
	}
	return svcs, slices
}

// BenchmarkColdStart programs 1,000 Services × 10 endpoints into an empty
// table: what a node does when its agent starts.
func BenchmarkColdStart(b *testing.B) {
	_, ns := testNetns(b)
	svcs, slices := scale(1000, 10)
	for b.Loop() {
		tbl, err := NewTable(testConfig(), int(ns.Fd()))
		if err != nil {
			b.Fatal(err)
		}
		st, err := tbl.Apply(Build(testConfig(), svcs, slices))
		if err != nil {
			b.Fatal(err)
		}
		if st.ChainsAdded != 11000 {
			b.Fatalf("chains added %d", st.ChainsAdded)
		}
		tbl.Close()
	}
}

// BenchmarkEndpointChange is one endpoint replaced in one Service among
// 1,000: the full Build from the informers' objects, the diff, and the
// kernel transaction.
func BenchmarkEndpointChange(b *testing.B) {
	_, ns := testNetns(b)
	svcs, slices := scale(1000, 10)
	tbl, err := NewTable(testConfig(), int(ns.Fd()))
	if err != nil {
		b.Fatal(err)
	}
	defer tbl.Close()
	builder := NewBuilder(testConfig())
	if _, err := tbl.Apply(builder.Build(svcs, slices)); err != nil {
		b.Fatal(err)
	}
	i := 0
	var building, applying time.Duration
	for b.Loop() {
		i++
		s := slices[500].DeepCopy()
		s.Endpoints[3].Addresses = []string{fmt.Sprintf("10.42.251.%d", 2+i%250)}
		slices[500] = s
		start := time.Now()
		rs := builder.Build(svcs, slices)
		built := time.Now()
		st, err := tbl.Apply(rs)
		building += built.Sub(start)
		applying += time.Since(built)
		if err != nil {
			b.Fatal(err)
		}
		if st.ChainsChanged != 1 || st.ChainsAdded != 1 || st.ChainsRemoved != 1 {
			b.Fatalf("one endpoint change applied %+v", st)
		}
	}
	b.ReportMetric(float64(building.Microseconds())/float64(i)/1000, "build-ms")
	b.ReportMetric(float64(applying.Microseconds())/float64(i)/1000, "apply-ms")
}

// BenchmarkConnectOverhead compares connecting through a ClusterIP with
// connecting to the endpoint itself, with 1,000 Services in the table;
// it reports the p50 of each and the difference.
func BenchmarkConnectOverhead(b *testing.B) {
	_, ns := testNetns(b)
	listen(b, ns, "10.42.0.5:8080")
	svcs, slices := scale(999, 10)
	svcs = append(svcs, service("web"))
	slices = append(slices, slice("web", 8080, readyA))
	tbl, err := NewTable(testConfig(), int(ns.Fd()))
	if err != nil {
		b.Fatal(err)
	}
	defer tbl.Close()
	if _, err := tbl.Apply(Build(testConfig(), svcs, slices)); err != nil {
		b.Fatal(err)
	}
	measure := func(addr string, n int) time.Duration {
		var ds []time.Duration
		var err error
		inNetns(b, ns, func() {
			for i := 0; i < n && err == nil; i++ {
				start := time.Now()
				var c net.Conn
				if c, err = net.Dial("tcp", addr); err != nil {
					return
				}
				buf := make([]byte, 64)
				_, err = c.Read(buf)
				ds = append(ds, time.Since(start))
				c.Close()
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[len(ds)/2]
	}
	for b.Loop() {
		direct := measure("10.42.0.5:8080", 2000)
		via := measure("10.43.0.20:80", 2000)
		b.ReportMetric(float64(direct.Microseconds()), "direct-p50-µs")
		b.ReportMetric(float64(via.Microseconds()), "clusterip-p50-µs")
		b.ReportMetric(float64((via - direct).Microseconds()), "overhead-p50-µs")
	}
}
