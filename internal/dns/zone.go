// Package dns is the cluster DNS: names for Services, headless endpoints,
// StatefulSet pods and pods under the cluster domain, answered from a zone
// built from informers; every other name is forwarded to the node's
// resolvers through a cache. BuildZone is pure; Server does the I/O.
package dns

import (
	"net"
	"sort"
	"strings"

	"github.com/miekg/dns"
	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// recordTTL is the TTL of cluster records, as CoreDNS's kubernetes plugin:
// short, because Services and endpoints change.
const recordTTL = 5

// node is one name of the zone and what it holds.
type node struct {
	a, aaaa []net.IP
	cname   string
	srv     []*dns.SRV
}

// Zone is the cluster's records at one moment; it is never changed after
// BuildZone, so lookups need no lock.
type Zone struct {
	domain string // "cluster.local." (lower case, fully qualified)
	names  map[string]*node
	ptr    map[string]string // reverse name → target
	soa    *dns.SOA
}

// BuildZone computes the zone for services and endpoint slices under
// domain (e.g. "cluster.local").
func BuildZone(domain string, services []*v1.Service, slices []*discoveryv1.EndpointSlice) *Zone {
	domain = dns.Fqdn(strings.ToLower(domain))
	z := &Zone{domain: domain, names: map[string]*node{}, ptr: map[string]string{}}
	z.soa = &dns.SOA{
		Hdr: dns.RR_Header{Name: domain, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: recordTTL},
		Ns:  "ns.dns." + domain, Mbox: "hostmaster." + domain,
		Serial: 1, Refresh: 7200, Retry: 1800, Expire: 86400, Minttl: recordTTL,
	}
	bySvc := map[string][]*discoveryv1.EndpointSlice{}
	for _, s := range slices {
		if name := s.Labels[discoveryv1.LabelServiceName]; name != "" {
			bySvc[s.Namespace+"/"+name] = append(bySvc[s.Namespace+"/"+name], s)
		}
	}
	z.get("svc." + domain)
	z.get("pod." + domain)
	for _, svc := range services {
		base := strings.ToLower(svc.Name + "." + svc.Namespace + ".svc." + domain)
		z.get(svc.Namespace + ".svc." + domain)
		switch {
		case svc.Spec.Type == v1.ServiceTypeExternalName:
			z.get(base).cname = dns.Fqdn(strings.ToLower(svc.Spec.ExternalName))
		case svc.Spec.ClusterIP == v1.ClusterIPNone:
			z.addHeadless(svc, base, bySvc[svc.Namespace+"/"+svc.Name])
		case svc.Spec.ClusterIP != "":
			n := z.get(base)
			ips := svc.Spec.ClusterIPs
			if len(ips) == 0 {
				ips = []string{svc.Spec.ClusterIP}
			}
			for _, s := range ips {
				if ip := net.ParseIP(s); ip != nil {
					n.add(ip)
					z.addPTR(ip, base)
				}
			}
			for _, p := range svc.Spec.Ports {
				if p.Name == "" {
					continue
				}
				srv := &dns.SRV{Priority: 0, Weight: 100, Port: uint16(p.Port), Target: base}
				named := z.get("_" + p.Name + "._" + strings.ToLower(string(p.Protocol)) + "." + base)
				named.srv = append(named.srv, srv)
				n.srv = append(n.srv, srv)
			}
		}
	}
	for _, n := range z.names {
		sortIPs(n.a)
		sortIPs(n.aaaa)
		sort.Slice(n.srv, func(i, j int) bool {
			if n.srv[i].Target != n.srv[j].Target {
				return n.srv[i].Target < n.srv[j].Target
			}
			return n.srv[i].Port < n.srv[j].Port
		})
	}
	return z
}

// addHeadless: the Service's name resolves to its ready endpoints; each
// endpoint has its own name (its hostname, as StatefulSet pods set it,
// else its address with dashes) and SRV records point at those names.
func (z *Zone) addHeadless(svc *v1.Service, base string, slices []*discoveryv1.EndpointSlice) {
	n := z.get(base)
	seen := map[string]bool{}
	for _, s := range slices {
		for _, e := range s.Endpoints {
			ready := e.Conditions.Ready == nil || *e.Conditions.Ready
			if !ready && !svc.Spec.PublishNotReadyAddresses || len(e.Addresses) == 0 {
				continue
			}
			for _, addr := range e.Addresses {
				ip := net.ParseIP(addr)
				if ip == nil || seen[addr] {
					continue
				}
				seen[addr] = true
				n.add(ip)
				label := strings.NewReplacer(".", "-", ":", "-").Replace(addr)
				if e.Hostname != nil && *e.Hostname != "" {
					label = strings.ToLower(*e.Hostname)
				}
				target := label + "." + base
				z.get(target).add(ip)
				z.addPTR(ip, target)
				for _, p := range s.Ports {
					if p.Name == nil || *p.Name == "" || p.Port == nil {
						continue
					}
					proto := "tcp"
					if p.Protocol != nil {
						proto = strings.ToLower(string(*p.Protocol))
					}
					srv := &dns.SRV{Priority: 0, Weight: 100, Port: uint16(*p.Port), Target: target}
					name := "_" + *p.Name + "._" + proto + "." + base
					z.get(name).srv = append(z.get(name).srv, srv)
					n.srv = append(n.srv, srv)
				}
			}
		}
	}
}

// get returns the node for name, creating it and every name above it up
// to the domain (those exist, with no records: NODATA, not NXDOMAIN).
func (z *Zone) get(name string) *node {
	name = strings.ToLower(name)
	if n, ok := z.names[name]; ok {
		return n
	}
	n := &node{}
	z.names[name] = n
	for parent := name; ; {
		i := strings.IndexByte(parent, '.')
		if i < 0 || i == len(parent)-1 {
			break
		}
		parent = parent[i+1:]
		if len(parent) < len(z.domain) {
			break
		}
		if _, ok := z.names[parent]; ok {
			break
		}
		z.names[parent] = &node{}
	}
	return n
}

func (n *node) add(ip net.IP) {
	if v4 := ip.To4(); v4 != nil {
		n.a = append(n.a, v4)
	} else {
		n.aaaa = append(n.aaaa, ip)
	}
}

func (z *Zone) addPTR(ip net.IP, target string) {
	if rev, err := dns.ReverseAddr(ip.String()); err == nil {
		if _, taken := z.ptr[rev]; !taken {
			z.ptr[rev] = target
		}
	}
}

func sortIPs(ips []net.IP) {
	sort.Slice(ips, func(i, j int) bool { return string(ips[i]) < string(ips[j]) })
}

// Answer is what the zone says about one question.
type Answer struct {
	// Mine is false when the zone has nothing to say: forward the query.
	Mine   bool
	Rcode  int
	Answer []dns.RR
	Ns     []dns.RR
	Extra  []dns.RR
	// CNAME is an ExternalName target the caller may chase.
	CNAME string
}

// Lookup answers q from the zone.
func (z *Zone) Lookup(q dns.Question) Answer {
	name := strings.ToLower(q.Name)
	if q.Qtype == dns.TypePTR && (strings.HasSuffix(name, ".in-addr.arpa.") || strings.HasSuffix(name, ".ip6.arpa.")) {
		target, ok := z.ptr[name]
		if !ok {
			return Answer{} // not a cluster address: the upstream resolvers decide
		}
		return Answer{Mine: true, Answer: []dns.RR{&dns.PTR{Hdr: hdr(q.Name, dns.TypePTR), Ptr: target}}}
	}
	if name != z.domain && !strings.HasSuffix(name, "."+z.domain) {
		return Answer{}
	}
	n, ok := z.names[name]
	if !ok {
		n = podName(name, z.domain)
	}
	if n == nil {
		return Answer{Mine: true, Rcode: dns.RcodeNameError, Ns: []dns.RR{z.soa}}
	}
	var ans, extra []dns.RR
	if n.cname != "" {
		return Answer{Mine: true, Answer: []dns.RR{&dns.CNAME{Hdr: hdr(q.Name, dns.TypeCNAME), Target: n.cname}}, CNAME: n.cname}
	}
	switch q.Qtype {
	case dns.TypeA:
		for _, ip := range n.a {
			ans = append(ans, &dns.A{Hdr: hdr(q.Name, dns.TypeA), A: ip})
		}
	case dns.TypeAAAA:
		for _, ip := range n.aaaa {
			ans = append(ans, &dns.AAAA{Hdr: hdr(q.Name, dns.TypeAAAA), AAAA: ip})
		}
	case dns.TypeSRV:
		for _, s := range n.srv {
			rr := *s
			rr.Hdr = hdr(q.Name, dns.TypeSRV)
			// Spread the weight as upstream: equal shares of 100.
			rr.Weight = uint16(100 / len(n.srv))
			ans = append(ans, &rr)
			if t := z.names[s.Target]; t != nil {
				for _, ip := range t.a {
					extra = append(extra, &dns.A{Hdr: hdr(s.Target, dns.TypeA), A: ip})
				}
			}
		}
	case dns.TypeSOA:
		if name == z.domain {
			ans = append(ans, z.soa)
		}
	}
	a := Answer{Mine: true, Answer: ans, Extra: extra}
	if len(ans) == 0 {
		a.Ns = []dns.RR{z.soa}
	}
	return a
}

// podName resolves "a-b-c-d.<ns>.pod.<domain>" to a.b.c.d without
// looking the pod up, as upstream's "pods insecure" mode.
func podName(name, domain string) *node {
	rest, ok := strings.CutSuffix(name, ".pod."+domain)
	if !ok {
		return nil
	}
	label, ns, ok := strings.Cut(rest, ".")
	if !ok || ns == "" || strings.Contains(ns, ".") {
		return nil
	}
	ip := net.ParseIP(strings.ReplaceAll(label, "-", "."))
	if ip == nil || ip.To4() == nil {
		if ip = net.ParseIP(strings.ReplaceAll(label, "-", ":")); ip == nil {
			return nil
		}
	}
	n := &node{}
	n.add(ip)
	return n
}

func hdr(name string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: recordTTL}
}
