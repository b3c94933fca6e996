package proxy

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// String renders a rule in nft syntax: what `nft list table ip skiff`
// shows, so tests and logs read like the kernel's rules. It also decides
// whether a chain changed, on every sync, so it avoids fmt.
func (r Rule) String() string {
	var b strings.Builder
	r.render(&b)
	return b.String()
}

func (r Rule) render(b *strings.Builder) {
	start := b.Len()
	sep := func() {
		if b.Len() > start {
			b.WriteByte(' ')
		}
	}
	if r.SrcNotInCluster {
		sep()
		b.WriteString("ip saddr != @cluster-cidr")
	}
	if r.DstInSet != "" {
		sep()
		b.WriteString("ip daddr @" + r.DstInSet)
	}
	if r.L4 != nil {
		sep()
		p := strings.ToLower(string(r.L4.Protocol))
		switch {
		case r.L4.Port == 0:
			b.WriteString("meta l4proto " + p)
		case r.L4.EndPort > r.L4.Port:
			b.WriteString(p + " dport " + strconv.Itoa(int(r.L4.Port)) + "-" + strconv.Itoa(int(r.L4.EndPort)))
		default:
			b.WriteString(p + " dport " + strconv.Itoa(int(r.L4.Port)))
		}
	}
	if r.SrcIP != "" {
		sep()
		b.WriteString("ip saddr " + r.SrcIP)
	}
	if r.SrcInSet != "" {
		sep()
		b.WriteString("ip saddr @" + r.SrcInSet)
	}
	if r.Masquerade {
		sep()
		b.WriteString("meta mark set meta mark | 0x4000")
	}
	if r.UpdateSet != "" {
		sep()
		b.WriteString("update @" + r.UpdateSet + " { ip saddr }")
	}
	if len(r.Random) > 0 {
		sep()
		b.WriteString("numgen random mod " + strconv.Itoa(len(r.Random)) + " vmap { ")
		for i, c := range r.Random {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(strconv.Itoa(i) + " : goto " + c)
		}
		b.WriteString(" }")
	}
	if r.DNAT != nil {
		sep()
		b.WriteString("dnat to " + r.DNAT.IP + ":" + strconv.Itoa(int(r.DNAT.Port)))
	}
	if r.Verdict != nil {
		sep()
		b.WriteString(r.Verdict.String())
	}
}

// String renders the chain's rules, one per line.
func (c Chain) String() string {
	var b strings.Builder
	b.Grow(64 * len(c.Rules))
	for _, r := range c.Rules {
		r.render(&b)
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
