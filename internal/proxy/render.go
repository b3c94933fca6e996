package proxy

import (
	"fmt"
	"sort"
	"strings"
)

// String renders a rule in nft syntax: what `nft list table ip skiff`
// shows, so tests and logs read like the kernel's rules.
func (r Rule) String() string {
	var parts []string
	if r.SrcNotInCluster {
		parts = append(parts, "ip saddr != @cluster-cidr")
	}
	if r.DstInSet != "" {
		parts = append(parts, "ip daddr @"+r.DstInSet)
	}
	if r.L4 != nil {
		p := strings.ToLower(string(r.L4.Protocol))
		switch {
		case r.L4.Port == 0:
			parts = append(parts, "meta l4proto "+p)
		case r.L4.EndPort > r.L4.Port:
			parts = append(parts, fmt.Sprintf("%s dport %d-%d", p, r.L4.Port, r.L4.EndPort))
		default:
			parts = append(parts, fmt.Sprintf("%s dport %d", p, r.L4.Port))
		}
	}
	if r.SrcIP != "" {
		parts = append(parts, "ip saddr "+r.SrcIP)
	}
	if r.SrcInSet != "" {
		parts = append(parts, "ip saddr @"+r.SrcInSet)
	}
	if r.Masquerade {
		parts = append(parts, fmt.Sprintf("meta mark set meta mark | %#x", masqMark))
	}
	if r.UpdateSet != "" {
		parts = append(parts, "update @"+r.UpdateSet+" { ip saddr }")
	}
	if len(r.Random) > 0 {
		var m []string
		for i, c := range r.Random {
			m = append(m, fmt.Sprintf("%d : goto %s", i, c))
		}
		parts = append(parts, fmt.Sprintf("numgen random mod %d vmap { %s }", len(r.Random), strings.Join(m, ", ")))
	}
	if r.DNAT != nil {
		parts = append(parts, fmt.Sprintf("dnat to %s:%d", r.DNAT.IP, r.DNAT.Port))
	}
	if r.Verdict != nil {
		parts = append(parts, r.Verdict.String())
	}
	return strings.Join(parts, " ")
}

// String renders the chain's rules, one per line.
func (c Chain) String() string {
	var b strings.Builder
	for _, r := range c.Rules {
		b.WriteString(r.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// String renders the whole rule set in a stable order, for tests.
func (rs *Ruleset) String() string {
	var b strings.Builder
	maps := []struct {
		name string
		m    map[Key]Verdict
	}{{"service-ips", rs.ServiceIPs}, {"service-nodeports", rs.NodePorts}, {"no-endpoint-services", rs.NoEndpoints}, {"no-endpoint-nodeports", rs.NoEndpointNodePorts}}
	for _, m := range maps {
		var lines []string
		for k, v := range m.m {
			lines = append(lines, "  "+k.String()+" : "+v.String())
		}
		sort.Strings(lines)
		fmt.Fprintf(&b, "map %s {\n%s\n}\n", m.name, strings.Join(lines, "\n"))
	}
	var sets []string
	for n, s := range rs.Sets {
		sets = append(sets, fmt.Sprintf("set %s { timeout %s }", n, s.Timeout))
	}
	sort.Strings(sets)
	for _, s := range sets {
		b.WriteString(s + "\n")
	}
	for _, m := range []struct {
		name string
		m    map[string]Verdict
	}{{"policy-ingress", rs.PolicyIngress}, {"policy-egress", rs.PolicyEgress}} {
		var lines []string
		for k, v := range m.m {
			lines = append(lines, "  "+k+" : "+v.String())
		}
		sort.Strings(lines)
		if len(lines) > 0 {
			fmt.Fprintf(&b, "map %s {\n%s\n}\n", m.name, strings.Join(lines, "\n"))
		}
	}
	var addr []string
	for n, s := range rs.AddrSets {
		addr = append(addr, fmt.Sprintf("set %s { %s }", n, s.String()))
	}
	sort.Strings(addr)
	for _, s := range addr {
		b.WriteString(s + "\n")
	}
	var names []string
	for n := range rs.Chains {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "chain %s {\n%s}\n", n, indent(rs.Chains[n].String()))
	}
	return b.String()
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(s, "\n") {
		if l != "" {
			b.WriteString("  " + l)
		}
	}
	return b.String()
}

// String lists the set's ranges, for tests and change detection.
func (s AddrSet) String() string {
	var parts []string
	for _, r := range s.Ranges {
		if r.First == r.Last {
			parts = append(parts, ipString(r.First))
		} else {
			parts = append(parts, ipString(r.First)+"-"+ipString(r.Last))
		}
	}
	return strings.Join(parts, ", ")
}

func ipString(v uint32) string {
	return fmt.Sprintf("%d.%d.%d.%d", v>>24, v>>16&0xff, v>>8&0xff, v&0xff)
}
