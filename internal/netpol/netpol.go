// Package netpol enforces NetworkPolicies on a node: every local pod that
// a policy isolates gets an ingress or egress chain in skiff's nftables
// table, whose rules return (allow) for the peers and ports the policies
// name and drop everything else. Build is pure; Enforcer feeds it from
// informers as a source of the service proxy's table.
package netpol

import (
	"encoding/binary"
	"net"
	"sort"
	"strconv"

	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/skiff-sh/skiff/internal/proxy"
)

// Input is the cluster state the rules depend on.
type Input struct {
	// Node is this node: only its pods are enforced here.
	Node       string
	Pods       []*v1.Pod
	Namespaces []*v1.Namespace
	Policies   []*networkingv1.NetworkPolicy
}

// Build adds the policy chains, peer sets and dispatch elements to rs.
func Build(in Input, rs *proxy.Ruleset) {
	b := builder{in: in, rs: rs, nsLabels: map[string]labels.Set{}}
	for _, ns := range in.Namespaces {
		l := labels.Set{v1.LabelMetadataName: ns.Name}
		for k, v := range ns.Labels {
			l[k] = v
		}
		b.nsLabels[ns.Name] = l
	}
	for _, p := range in.Pods {
		if podIP(p) != "" {
			b.pods = append(b.pods, p)
		}
	}
	sort.Slice(b.pods, func(i, j int) bool {
		return b.pods[i].Namespace+"/"+b.pods[i].Name < b.pods[j].Namespace+"/"+b.pods[j].Name
	})
	pols := append([]*networkingv1.NetworkPolicy{}, in.Policies...)
	sort.Slice(pols, func(i, j int) bool { return pols[i].Namespace+"/"+pols[i].Name < pols[j].Namespace+"/"+pols[j].Name })
	for _, p := range b.pods {
		if p.Spec.NodeName != in.Node {
			continue
		}
		var ingress, egress []*networkingv1.NetworkPolicy
		for _, pol := range pols {
			if pol.Namespace != p.Namespace || !selects(&pol.Spec.PodSelector, p.Labels) {
				continue
			}
			in, eg := types(pol)
			if in {
				ingress = append(ingress, pol)
			}
			if eg {
				egress = append(egress, pol)
			}
		}
		if len(ingress) > 0 {
			name := proxy.ChainName("pol-in", p.Namespace+"/"+p.Name)
			rs.Chains[name] = proxy.Chain{Name: name, Rules: b.ingressRules(p, ingress)}
			rs.PolicyIngress[podIP(p)] = proxy.Verdict{Jump: name}
		}
		if len(egress) > 0 {
			name := proxy.ChainName("pol-out", p.Namespace+"/"+p.Name)
			rs.Chains[name] = proxy.Chain{Name: name, Rules: b.egressRules(egress)}
			rs.PolicyEgress[podIP(p)] = proxy.Verdict{Jump: name}
		}
	}
}

type builder struct {
	in       Input
	rs       *proxy.Ruleset
	nsLabels map[string]labels.Set
	pods     []*v1.Pod // with an address, sorted
}

var (
	allow = &proxy.Verdict{Return: true}
	deny  = proxy.Rule{Verdict: &proxy.Verdict{Drop: true}}
)

// ingressRules: for each rule, its sources (a set, or anyone) on each of
// its ports as the destination pod p names them.
func (b *builder) ingressRules(p *v1.Pod, pols []*networkingv1.NetworkPolicy) []proxy.Rule {
	var out []proxy.Rule
	for _, pol := range pols {
		for i, r := range pol.Spec.Ingress {
			src := ""
			if len(r.From) > 0 {
				src = b.peerSet(pol, "in", i, "", r.From, nil)
			}
			ports, any := portMatches(r.Ports, func(name string) []proxy.PortMatch { return namedPort(p, name) })
			if any {
				out = append(out, proxy.Rule{SrcInSet: src, Verdict: allow})
			}
			for _, pm := range ports {
				pm := pm
				out = append(out, proxy.Rule{SrcInSet: src, L4: &pm, Verdict: allow})
			}
		}
	}
	return append(out, deny)
}

// egressRules: for each rule, its destinations on each port; a named port
// is resolved on each destination pod, so destinations are grouped by
// the number their port has.
func (b *builder) egressRules(pols []*networkingv1.NetworkPolicy) []proxy.Rule {
	var out []proxy.Rule
	for _, pol := range pols {
		for i, r := range pol.Spec.Egress {
			dst := ""
			if len(r.To) > 0 {
				dst = b.peerSet(pol, "out", i, "", r.To, nil)
			}
			ports, any := portMatches(r.Ports, func(string) []proxy.PortMatch { return nil })
			if any {
				out = append(out, proxy.Rule{DstInSet: dst, Verdict: allow})
			}
			for _, pm := range ports {
				pm := pm
				out = append(out, proxy.Rule{DstInSet: dst, L4: &pm, Verdict: allow})
			}
			for _, np := range r.Ports {
				if np.Port == nil || np.Port.Type != intstr.String {
					continue
				}
				name := np.Port.StrVal
				// Destination pods grouped by what the name means there.
				groups := map[proxy.PortMatch][]*v1.Pod{}
				for _, p := range b.peerPods(pol, r.To) {
					for _, pm := range namedPort(p, name) {
						if pm.Protocol == protocol(np.Protocol) {
							groups[pm] = append(groups[pm], p)
						}
					}
				}
				keys := make([]proxy.PortMatch, 0, len(groups))
				for pm := range groups {
					keys = append(keys, pm)
				}
				sort.Slice(keys, func(a, c int) bool { return keys[a].Port < keys[c].Port })
				for _, pm := range keys {
					pm := pm
					set := b.peerSet(pol, "out", i, name+"/"+string(pm.Protocol)+"/"+itoa(pm.Port), nil, groups[pm])
					out = append(out, proxy.Rule{DstInSet: set, L4: &pm, Verdict: allow})
				}
			}
		}
	}
	return append(out, deny)
}

// peerSet makes (once) the address set of one rule's peers, or of the
// given pods, and returns its name.
func (b *builder) peerSet(pol *networkingv1.NetworkPolicy, dir string, i int, suffix string, peers []networkingv1.NetworkPolicyPeer, pods []*v1.Pod) string {
	name := proxy.ChainName("np", pol.Namespace+"/"+pol.Name+"/"+dir+"/"+itoa(int32(i))+"/"+suffix)
	if _, ok := b.rs.AddrSets[name]; ok {
		return name
	}
	var ranges []proxy.Range
	if pods == nil {
		pods = b.peerPods(pol, peers)
		for _, peer := range peers {
			if peer.IPBlock != nil {
				ranges = append(ranges, blockRanges(peer.IPBlock)...)
			}
		}
	}
	for _, p := range pods {
		v := ipValue(net.ParseIP(podIP(p)))
		ranges = append(ranges, proxy.Range{First: v, Last: v})
	}
	b.rs.AddrSets[name] = proxy.AddrSet{Name: name, Ranges: Merge(ranges)}
	return name
}

// peerPods are the pods the peers' selectors pick; no peers means every
// pod (a rule without `to`).
func (b *builder) peerPods(pol *networkingv1.NetworkPolicy, peers []networkingv1.NetworkPolicyPeer) []*v1.Pod {
	if len(peers) == 0 {
		return b.pods
	}
	var out []*v1.Pod
	for _, p := range b.pods {
		if p.Spec.HostNetwork {
			continue
		}
		for _, peer := range peers {
			if b.peerSelects(pol, peer, p) {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

func (b *builder) peerSelects(pol *networkingv1.NetworkPolicy, peer networkingv1.NetworkPolicyPeer, p *v1.Pod) bool {
	switch {
	case peer.IPBlock != nil:
		return false
	case peer.NamespaceSelector != nil:
		if !selects(peer.NamespaceSelector, b.nsLabels[p.Namespace]) {
			return false
		}
		return peer.PodSelector == nil || selects(peer.PodSelector, p.Labels)
	case peer.PodSelector != nil:
		return p.Namespace == pol.Namespace && selects(peer.PodSelector, p.Labels)
	}
	return false
}

// portMatches turns a rule's ports into matches; any reports a rule with
// no ports (every port). A named port resolves through named, and one
// that resolves to nothing matches nothing.
func portMatches(ports []networkingv1.NetworkPolicyPort, named func(string) []proxy.PortMatch) (out []proxy.PortMatch, any bool) {
	if len(ports) == 0 {
		return nil, true
	}
	for _, p := range ports {
		proto := protocol(p.Protocol)
		switch {
		case p.Port == nil:
			out = append(out, proxy.PortMatch{Protocol: proto})
		case p.Port.Type == intstr.String:
			for _, pm := range named(p.Port.StrVal) {
				if pm.Protocol == proto {
					out = append(out, pm)
				}
			}
		default:
			pm := proxy.PortMatch{Protocol: proto, Port: p.Port.IntVal}
			if p.EndPort != nil && *p.EndPort > pm.Port {
				pm.EndPort = *p.EndPort
			}
			out = append(out, pm)
		}
	}
	return out, false
}

// namedPort is what a container port name means on pod p.
func namedPort(p *v1.Pod, name string) []proxy.PortMatch {
	var out []proxy.PortMatch
	for _, cs := range [][]v1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for _, c := range cs {
			for _, port := range c.Ports {
				if port.Name == name {
					out = append(out, proxy.PortMatch{Protocol: protocol(&port.Protocol), Port: port.ContainerPort})
				}
			}
		}
	}
	return out
}

// types says which directions a policy isolates: its policyTypes, or by
// default Ingress, and Egress when it has egress rules.
func types(pol *networkingv1.NetworkPolicy) (ingress, egress bool) {
	if len(pol.Spec.PolicyTypes) == 0 {
		return true, len(pol.Spec.Egress) > 0
	}
	for _, t := range pol.Spec.PolicyTypes {
		switch t {
		case networkingv1.PolicyTypeIngress:
			ingress = true
		case networkingv1.PolicyTypeEgress:
			egress = true
		}
	}
	return ingress, egress
}

func selects(sel *metav1.LabelSelector, l labels.Set) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && s.Matches(l)
}

func podIP(p *v1.Pod) string {
	if p.Spec.HostNetwork || p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed {
		return ""
	}
	if ip := net.ParseIP(p.Status.PodIP); ip != nil && ip.To4() != nil {
		return ip.To4().String()
	}
	return ""
}

func protocol(p *v1.Protocol) v1.Protocol {
	if p == nil || *p == "" {
		return v1.ProtocolTCP
	}
	return *p
}

// blockRanges is an ipBlock's CIDR minus its exceptions (IPv4 only).
func blockRanges(b *networkingv1.IPBlock) []proxy.Range {
	_, n, err := net.ParseCIDR(b.CIDR)
	if err != nil || n.IP.To4() == nil {
		return nil
	}
	out := []proxy.Range{cidrRange(n)}
	for _, e := range b.Except {
		_, x, err := net.ParseCIDR(e)
		if err != nil || x.IP.To4() == nil {
			continue
		}
		out = Subtract(out, cidrRange(x))
	}
	return out
}

func cidrRange(n *net.IPNet) proxy.Range {
	first := ipValue(n.IP)
	ones, bits := n.Mask.Size()
	size := uint64(1) << uint(bits-ones)
	return proxy.Range{First: first, Last: uint32(uint64(first) + size - 1)}
}

func ipValue(ip net.IP) uint32 { return binary.BigEndian.Uint32(ip.To4()) }

// Subtract removes x from every range.
func Subtract(ranges []proxy.Range, x proxy.Range) []proxy.Range {
	var out []proxy.Range
	for _, r := range ranges {
		if x.Last < r.First || x.First > r.Last {
			out = append(out, r)
			continue
		}
		if x.First > r.First {
			out = append(out, proxy.Range{First: r.First, Last: x.First - 1})
		}
		if x.Last < r.Last {
			out = append(out, proxy.Range{First: x.Last + 1, Last: r.Last})
		}
	}
	return out
}

// Merge sorts ranges and joins overlapping and adjacent ones, as an
// interval set needs.
func Merge(ranges []proxy.Range) []proxy.Range {
	sort.Slice(ranges, func(i, j int) bool { return ranges[i].First < ranges[j].First })
	var out []proxy.Range
	for _, r := range ranges {
		if n := len(out); n > 0 && (out[n-1].Last == ^uint32(0) || r.First <= out[n-1].Last+1) {
			if r.Last > out[n-1].Last {
				out[n-1].Last = r.Last
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

func itoa(v int32) string { return strconv.Itoa(int(v)) }
