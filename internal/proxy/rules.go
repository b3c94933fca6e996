// Package proxy is the service proxy: it turns Services and EndpointSlices
// into nftables rules in one table owned by skiff. Build computes the
// whole desired rule set as plain data; Table applies the difference from
// what it applied last; Proxy feeds Build from informers.
package proxy

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// masqMark is the packet mark asking the postrouting chain to masquerade:
// set on traffic that must return through this node (from outside the
// cluster CIDR, through a NodePort, or a pod reaching itself).
const masqMark = 0x4000

// Config is what the rules depend on besides the API objects.
type Config struct {
	// NodeName decides which endpoints are local.
	NodeName string
	// ClusterCIDR is the pods' range: service traffic from outside it is
	// masqueraded, and pod traffic leaving it is masqueraded.
	ClusterCIDR *net.IPNet
}

// Verdict is where a map element or rule sends a packet.
type Verdict struct {
	// Goto names a chain; empty with Drop or Reject.
	Goto string
	// Jump names a chain that may return here.
	Jump   string
	Drop   bool
	Reject bool
	// Return goes back to the calling chain; Accept ends this hook.
	Return, Accept bool
}

func (v Verdict) String() string {
	switch {
	case v.Drop:
		return "drop"
	case v.Reject:
		return "goto " + rejectChain
	case v.Return:
		return "return"
	case v.Accept:
		return "accept"
	case v.Jump != "":
		return "jump " + v.Jump
	default:
		return "goto " + v.Goto
	}
}

// Key is a service address as the dispatch maps see it. IP is empty in
// the node-port maps.
type Key struct {
	IP       string
	Protocol v1.Protocol
	Port     int32
}

func (k Key) String() string {
	p := strings.ToLower(string(k.Protocol)) + " . " + strconv.Itoa(int(k.Port))
	if k.IP == "" {
		return p
	}
	return k.IP + " . " + p
}

// Rule is one rule of a service, endpoint or policy chain: optional
// matches, then statements, in the order the fields are listed.
type Rule struct {
	// SrcNotInCluster matches sources outside the cluster CIDR.
	SrcNotInCluster bool
	// DstInSet matches destinations in an address set.
	DstInSet string
	// L4 matches a protocol and, when Port is set, a port or range.
	L4 *PortMatch
	// SrcIP matches one source address.
	SrcIP string
	// SrcInSet matches sources recorded in an affinity set.
	SrcInSet string
	// Masquerade marks the packet for masquerading.
	Masquerade bool
	// UpdateSet records the source in an affinity set.
	UpdateSet string
	// Random picks one of these chains uniformly.
	Random []string
	// DNAT rewrites the destination to IP:Port.
	DNAT *Endpoint
	// Verdict ends the rule (zero value: none).
	Verdict *Verdict
}

// PortMatch is a protocol with an optional destination port range.
type PortMatch struct {
	Protocol      v1.Protocol
	Port, EndPort int32
}

// AddrSet is a named set of IPv4 ranges (NetworkPolicy peers).
type AddrSet struct {
	Name   string
	Ranges []Range
}

// Range is an inclusive IPv4 address range.
type Range struct {
	First, Last uint32
}

// Endpoint is one backend address.
type Endpoint struct {
	IP   string
	Port int32
}

// Chain is one chain skiff owns besides the fixed base chains.
type Chain struct {
	Name  string
	Rules []Rule
	// text is the rendered rules, kept by the Builder so an unchanged
	// chain is compared without rendering it again.
	text string
}

// Text is the chain's rendered rules.
func (c Chain) Text() string {
	if c.text != "" {
		return c.text
	}
	return c.String()
}

// AffinitySet is a dynamic set of client addresses with a timeout, one per
// endpoint of a Service with sessionAffinity ClientIP.
type AffinitySet struct {
	Name    string
	Timeout time.Duration
}

// Ruleset is the whole desired state of the table apart from its fixed
// base: service chains, the dispatch maps and the affinity sets.
type Ruleset struct {
	Chains map[string]Chain
	// ServiceIPs dispatches ClusterIPs, externalIPs and load-balancer IPs.
	ServiceIPs map[Key]Verdict
	// NodePorts dispatches node ports on every local address.
	NodePorts map[Key]Verdict
	// NoEndpoints and NoEndpointNodePorts are consulted by the filter
	// chains for new connections: services with nothing to reach.
	NoEndpoints         map[Key]Verdict
	NoEndpointNodePorts map[Key]Verdict
	Sets                map[string]AffinitySet
	// PolicyIngress and PolicyEgress send traffic to and from isolated
	// local pods through their NetworkPolicy chains (jump verdicts).
	PolicyIngress, PolicyEgress map[string]Verdict
	AddrSets                    map[string]AddrSet
}

// NewRuleset is an empty rule set.
func NewRuleset() *Ruleset { return newRuleset() }

func newRuleset() *Ruleset {
	return &Ruleset{
		Chains: map[string]Chain{}, ServiceIPs: map[Key]Verdict{}, NodePorts: map[Key]Verdict{},
		NoEndpoints: map[Key]Verdict{}, NoEndpointNodePorts: map[Key]Verdict{}, Sets: map[string]AffinitySet{},
		PolicyIngress: map[string]Verdict{}, PolicyEgress: map[string]Verdict{}, AddrSets: map[string]AddrSet{},
	}
}

// Build computes the rules for services and their endpoint slices. It is
// pure: the same objects give the same rules, in any order.
func Build(cfg Config, services []*v1.Service, slices []*discoveryv1.EndpointSlice) *Ruleset {
	return NewBuilder(cfg).Build(services, slices)
}

// Builder is Build with memory: a Service whose object and endpoint
// slices are the very objects of the last build (informers replace an
// object on every change, never edit it) reuses its rules, rendering
// included, so one endpoint change costs one Service's work.
type Builder struct {
	cfg   Config
	cache map[string]*fragment
}

// fragment is one Service's rules with the objects they came from.
type fragment struct {
	svc    *v1.Service
	slices []*discoveryv1.EndpointSlice
	rs     *Ruleset
}

// NewBuilder builds for cfg.
func NewBuilder(cfg Config) *Builder {
	return &Builder{cfg: cfg, cache: map[string]*fragment{}}
}

// Build computes the rules for services and their endpoint slices.
func (b *Builder) Build(services []*v1.Service, slices []*discoveryv1.EndpointSlice) *Ruleset {
	bySvc := map[string][]*discoveryv1.EndpointSlice{}
	for _, s := range slices {
		name := s.Labels[discoveryv1.LabelServiceName]
		if name == "" || s.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		bySvc[s.Namespace+"/"+name] = append(bySvc[s.Namespace+"/"+name], s)
	}
	rs := newRuleset()
	next := make(map[string]*fragment, len(services))
	for _, svc := range services {
		if !proxied(svc) {
			continue
		}
		key := svc.Namespace + "/" + svc.Name
		own := bySvc[key]
		// Slices come in lister order; sort by name so the same set of
		// objects is recognised whatever the order.
		sort.Slice(own, func(i, j int) bool { return own[i].Name < own[j].Name })
		f := b.cache[key]
		if f == nil || !f.same(svc, own) {
			f = &fragment{svc: svc, slices: own, rs: newRuleset()}
			for _, port := range svc.Spec.Ports {
				addServicePort(f.rs, b.cfg, svc, port, endpointsFor(b.cfg.NodeName, port, own))
			}
			for name, c := range f.rs.Chains {
				c.text = c.String()
				f.rs.Chains[name] = c
			}
		}
		next[key] = f
		rs.merge(f.rs)
	}
	b.cache = next
	return rs
}

func (f *fragment) same(svc *v1.Service, slices []*discoveryv1.EndpointSlice) bool {
	if f.svc != svc || len(f.slices) != len(slices) {
		return false
	}
	for i := range slices {
		if f.slices[i] != slices[i] {
			return false
		}
	}
	return true
}

// merge adds o's chains, elements and sets to rs.
func (rs *Ruleset) merge(o *Ruleset) {
	for k, v := range o.Chains {
		rs.Chains[k] = v
	}
	for k, v := range o.ServiceIPs {
		rs.ServiceIPs[k] = v
	}
	for k, v := range o.NodePorts {
		rs.NodePorts[k] = v
	}
	for k, v := range o.NoEndpoints {
		rs.NoEndpoints[k] = v
	}
	for k, v := range o.NoEndpointNodePorts {
		rs.NoEndpointNodePorts[k] = v
	}
	for k, v := range o.Sets {
		rs.Sets[k] = v
	}
}

// proxied: headless and ExternalName Services get no rules.
func proxied(svc *v1.Service) bool {
	if svc.Spec.Type == v1.ServiceTypeExternalName {
		return false
	}
	return svc.Spec.ClusterIP != "" && svc.Spec.ClusterIP != v1.ClusterIPNone
}

// endpoint is one backend of a service port with what selection needs.
type endpoint struct {
	Endpoint
	local                bool
	ready, servingNotRdy bool
}

// endpointsFor collects the backends of one service port from its slices:
// the slice port with the same name and protocol gives the target port.
func endpointsFor(node string, sp v1.ServicePort, slices []*discoveryv1.EndpointSlice) []endpoint {
	seen := map[string]bool{}
	var out []endpoint
	for _, s := range slices {
		var port int32
		found := false
		for _, p := range s.Ports {
			proto := v1.ProtocolTCP
			if p.Protocol != nil {
				proto = *p.Protocol
			}
			name := ""
			if p.Name != nil {
				name = *p.Name
			}
			if name == sp.Name && proto == sp.Protocol && p.Port != nil {
				port, found = *p.Port, true
				break
			}
		}
		if !found {
			continue
		}
		for _, e := range s.Endpoints {
			if len(e.Addresses) == 0 || net.ParseIP(e.Addresses[0]).To4() == nil {
				continue
			}
			ip := e.Addresses[0]
			key := ip + ":" + strconv.Itoa(int(port))
			if seen[key] {
				continue
			}
			seen[key] = true
			ready := e.Conditions.Ready == nil || *e.Conditions.Ready
			serving := e.Conditions.Serving == nil && ready || e.Conditions.Serving != nil && *e.Conditions.Serving
			terminating := e.Conditions.Terminating != nil && *e.Conditions.Terminating
			out = append(out, endpoint{
				Endpoint:      Endpoint{IP: ip, Port: port},
				local:         e.NodeName != nil && *e.NodeName == node,
				ready:         ready,
				servingNotRdy: !ready && serving && terminating,
			})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].IP != out[j].IP {
			return out[i].IP < out[j].IP
		}
		return out[i].Port < out[j].Port
	})
	return out
}

// usable picks the endpoints traffic goes to: the ready ones, or while
// there are none, the serving ones that are terminating (as upstream, so
// a rolling update does not drop connections); onlyLocal keeps this
// node's.
func usable(eps []endpoint, onlyLocal bool) []endpoint {
	var ready, terminating []endpoint
	for _, e := range eps {
		if onlyLocal && !e.local {
			continue
		}
		if e.ready {
			ready = append(ready, e)
		} else if e.servingNotRdy {
			terminating = append(terminating, e)
		}
	}
	if len(ready) > 0 {
		return ready
	}
	return terminating
}

// addServicePort adds the chains and map elements for one service port:
// the internal path (ClusterIPs), then the external one (node ports,
// externalIPs, load-balancer IPs).
func addServicePort(rs *Ruleset, cfg Config, svc *v1.Service, sp v1.ServicePort, eps []endpoint) {
	p := &portRules{rs: rs, id: svc.Namespace + "/" + svc.Name + "/" + strings.ToLower(string(sp.Protocol)) + "/" + portName(sp),
		affinity: sessionAffinity(svc), epChains: map[string]string{}}
	internalLocal := svc.Spec.InternalTrafficPolicy != nil && *svc.Spec.InternalTrafficPolicy == v1.ServiceInternalTrafficPolicyLocal
	externalLocal := svc.Spec.ExternalTrafficPolicy == v1.ServiceExternalTrafficPolicyLocal &&
		(svc.Spec.Type == v1.ServiceTypeNodePort || svc.Spec.Type == v1.ServiceTypeLoadBalancer)
	clusterEps, externalEps := usable(eps, internalLocal), usable(eps, externalLocal)
	p.endpointChains(clusterEps)
	p.endpointChains(externalEps)

	var internal Verdict
	switch {
	case len(clusterEps) > 0:
		name := chainName("svc", p.id)
		var first []Rule
		if cfg.ClusterCIDR != nil {
			first = append(first, Rule{SrcNotInCluster: true, Masquerade: true})
		}
		rs.Chains[name] = Chain{Name: name, Rules: p.dispatch(clusterEps, first...)}
		internal = Verdict{Goto: name}
	case internalLocal && len(usable(eps, false)) > 0:
		// Endpoints exist, just none here: upstream drops.
		internal = Verdict{Drop: true}
	default:
		internal = Verdict{Reject: true}
	}
	clusterIPs, external := serviceAddresses(svc)
	for _, ip := range clusterIPs {
		setVerdict(rs, Key{IP: ip, Protocol: sp.Protocol, Port: sp.Port}, internal)
	}

	hasNodePort := sp.NodePort != 0 && (svc.Spec.Type == v1.ServiceTypeNodePort || svc.Spec.Type == v1.ServiceTypeLoadBalancer)
	if len(external) == 0 && !hasNodePort {
		return
	}
	// Traffic from outside the cluster: masqueraded so replies come back
	// through this node, unless the policy is Local (the client address
	// is kept and only this node's endpoints serve).
	var ext Verdict
	switch {
	case len(externalEps) == 0 && externalLocal:
		ext = Verdict{Drop: true}
	case len(externalEps) == 0:
		ext = Verdict{Reject: true}
	default:
		name := chainName("ext", p.id)
		var rules []Rule
		switch {
		case externalLocal:
			rules = p.dispatch(externalEps)
		case internal.Goto != "" && !internalLocal:
			// Same endpoints as the internal path: reuse its chain.
			rules = []Rule{{Masquerade: true, Verdict: &internal}}
		default:
			rules = p.dispatch(externalEps, Rule{Masquerade: true})
		}
		rs.Chains[name] = Chain{Name: name, Rules: rules}
		ext = Verdict{Goto: name}
	}
	for _, ip := range external {
		setVerdict(rs, Key{IP: ip, Protocol: sp.Protocol, Port: sp.Port}, ext)
	}
	if hasNodePort {
		k := Key{Protocol: sp.Protocol, Port: sp.NodePort}
		if ext.Goto != "" {
			rs.NodePorts[k] = ext
		} else {
			rs.NoEndpointNodePorts[k] = ext
		}
	}
}

// portRules builds the chains of one service port.
type portRules struct {
	rs       *Ruleset
	id       string
	affinity time.Duration
	// epChains maps "ip:port" to its endpoint chain, shared by the
	// internal and external paths.
	epChains map[string]string
}

// endpointChains adds a chain per endpoint not yet given one.
func (p *portRules) endpointChains(eps []endpoint) {
	for _, e := range eps {
		k := e.IP + ":" + strconv.Itoa(int(e.Port))
		if _, ok := p.epChains[k]; ok {
			continue
		}
		name := chainName("ep", p.id+"/"+k)
		p.epChains[k] = name
		// A pod reaching itself through its Service: its reply would skip
		// the host without masquerading (hairpin).
		rules := []Rule{{SrcIP: e.IP, Masquerade: true}}
		if p.affinity > 0 {
			set := affinitySet(name, p.affinity)
			p.rs.Sets[set] = AffinitySet{Name: set, Timeout: p.affinity}
			rules = append(rules, Rule{UpdateSet: set})
		}
		ep := e.Endpoint
		p.rs.Chains[name] = Chain{Name: name, Rules: append(rules, Rule{DNAT: &ep})}
	}
}

// dispatch is a service chain's body: the rules given first (masquerade
// marks), then the client's remembered endpoint, then a random one.
func (p *portRules) dispatch(list []endpoint, first ...Rule) []Rule {
	rules := first
	var chains []string
	for _, e := range list {
		chains = append(chains, p.epChains[e.IP+":"+strconv.Itoa(int(e.Port))])
	}
	if p.affinity > 0 {
		for _, c := range chains {
			rules = append(rules, Rule{SrcInSet: affinitySet(c, p.affinity), Verdict: &Verdict{Goto: c}})
		}
	}
	return append(rules, Rule{Random: chains})
}

// sessionAffinity is the ClientIP affinity timeout (upstream's default
// 3 h), or 0 without affinity.
func sessionAffinity(svc *v1.Service) time.Duration {
	if svc.Spec.SessionAffinity != v1.ServiceAffinityClientIP {
		return 0
	}
	if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
		return time.Duration(*c.ClientIP.TimeoutSeconds) * time.Second
	}
	return 10800 * time.Second
}

// serviceAddresses are a Service's IPv4 ClusterIPs, and its external
// addresses: externalIPs and, for a LoadBalancer, the ingress IPs.
func serviceAddresses(svc *v1.Service) (clusterIPs, external []string) {
	for _, ip := range append([]string{svc.Spec.ClusterIP}, svc.Spec.ClusterIPs...) {
		clusterIPs = appendIPv4(clusterIPs, ip)
	}
	for _, ip := range svc.Spec.ExternalIPs {
		external = appendIPv4(external, ip)
	}
	if svc.Spec.Type == v1.ServiceTypeLoadBalancer {
		for _, in := range svc.Status.LoadBalancer.Ingress {
			external = appendIPv4(external, in.IP)
		}
	}
	return clusterIPs, external
}

// setVerdict puts a service address into the dispatch map, or, without a
// chain, into the filter's no-endpoints map.
func setVerdict(rs *Ruleset, k Key, v Verdict) {
	if v.Goto != "" {
		rs.ServiceIPs[k] = v
		return
	}
	rs.NoEndpoints[k] = v
}

func appendIPv4(list []string, ip string) []string {
	p := net.ParseIP(ip).To4()
	if p == nil {
		return list
	}
	s := p.String()
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

func portName(sp v1.ServicePort) string {
	if sp.Name != "" {
		return sp.Name
	}
	return strconv.Itoa(int(sp.Port))
}

// ChainName is a readable chain or set name made unique by a hash of the
// whole identity (names may be cut to fit nftables' limit). NetworkPolicy
// names its chains and sets with it too.
func ChainName(prefix, id string) string { return chainName(prefix, id) }

func chainName(prefix, id string) string {
	sum := sha256.Sum256([]byte(prefix + "|" + id))
	name := prefix + "-" + base32.StdEncoding.EncodeToString(sum[:5]) + "-" + id
	if len(name) > 200 {
		name = name[:200]
	}
	return name
}

// affinitySet names an endpoint's client set; the timeout is part of the
// name, so changing it makes a new set rather than altering a live one.
func affinitySet(epChain string, timeout time.Duration) string {
	return fmt.Sprintf("aff-%s-%d", strings.SplitN(epChain, "-", 3)[1], int(timeout.Seconds()))
}
