package proxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	mnl "github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
)

// Names in the table. The base chains hook into netfilter; the service
// chains hang off the dispatch maps.
const (
	tableName          = "skiff"
	servicesChain      = "services"
	endpointsCheck     = "endpoints-check"
	masqueradingChain  = "masquerading"
	rejectChain        = "reject-chain"
	serviceIPsMap      = "service-ips"
	nodePortsMap       = "service-nodeports"
	noEndpointsMap     = "no-endpoint-services"
	noEndpointNodePort = "no-endpoint-nodeports"
	policyIngressMap   = "policy-ingress"
	policyEgressMap    = "policy-egress"
)

// batchLimit bounds the messages sent before reading their acks: each ack
// is charged to the socket's receive buffer, which would overflow on a
// cold start with thousands of chains.
const batchLimit = 400

// icmpPortUnreachable is ICMP code 3: connect() fails with ECONNREFUSED.
const icmpPortUnreachable = 3

// Table is skiff's nftables table, programmed incrementally: Apply sends
// only the chains, elements and sets that differ from the last Apply.
type Table struct {
	conn  *nftables.Conn
	table *nftables.Table
	cfg   Config

	maps    map[string]*nftables.Set
	chains  map[string]*nftables.Chain
	applied map[string]string // chain name → rendered rules
	elems   map[string]map[Key]Verdict
	sets    map[string]*nftables.Set
	addr    map[string]*nftables.Set
	addrTxt map[string]string
	pending int
	// dirty means the kernel may not hold what applied says (an Apply
	// failed half way): the next Apply rebuilds the table.
	dirty bool
	// adopted is set once the first Apply has tried to take over the
	// table a previous agent left.
	adopted bool
}

// Stats counts what one Apply changed.
type Stats struct {
	ChainsAdded, ChainsChanged, ChainsRemoved int
	Elements                                  int
	Rebuilt                                   bool
	// Adopted: the table a previous agent left was taken over.
	Adopted bool
}

// NewTable opens netlink to nftables in the network namespace open as
// netns, or the calling thread's when netns is negative. The table is
// (re)built by the first Apply.
func NewTable(cfg Config, netns int) (*Table, error) {
	opts := []nftables.ConnOption{nftables.AsLasting()}
	if netns >= 0 {
		opts = append(opts, nftables.WithNetNSFd(netns))
	}
	conn, err := nftables.New(append(opts, nftables.WithSockOptions(func(c *mnl.Conn) error {
		// Root may exceed rmem_max; ignore refusal and rely on batchLimit.
		raw, err := c.SyscallConn()
		if err == nil {
			_ = raw.Control(func(fd uintptr) {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 8<<20)
			})
		}
		return nil
	}))...)
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	return &Table{conn: conn, cfg: cfg, dirty: true}, nil
}

// Close releases the netlink socket; the rules stay, so connections keep
// working while the agent restarts.
func (t *Table) Close() error { return t.conn.CloseLasting() }

// Delete removes skiff's table from the kernel.
func (t *Table) Delete() error {
	t.conn.DelTable(&nftables.Table{Name: tableName, Family: nftables.TableFamilyIPv4})
	err := t.conn.Flush()
	if errors.Is(err, syscall.ENOENT) || err != nil && strings.Contains(err.Error(), "no such file") {
		return nil
	}
	return err
}

// Check looks for the table in the kernel; when someone removed it (an
// `nft flush ruleset`, a firewall reload) the next Apply rebuilds it.
func (t *Table) Check() (present bool, err error) {
	if t.dirty {
		return false, nil
	}
	if _, err := t.conn.ListTableOfFamily(tableName, nftables.TableFamilyIPv4); err != nil {
		if errors.Is(err, syscall.ENOENT) || strings.Contains(err.Error(), "no such file") {
			t.dirty = true
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// Apply makes the table hold rs.
func (t *Table) Apply(rs *Ruleset) (Stats, error) {
	var st Stats
	if t.dirty && !t.adopted {
		// First Apply of this agent: take over what the last one left.
		t.adopted = true
		if ok, err := t.adopt(); err == nil && ok {
			st.Adopted = true
		}
	}
	if t.dirty {
		if err := t.rebuildBase(); err != nil {
			return st, err
		}
		st.Rebuilt = true
	}
	err := t.apply(rs, &st)
	if err == nil {
		err = t.flush()
	}
	if err != nil {
		t.dirty = true
		return st, fmt.Errorf("program nftables: %w", err)
	}
	return st, nil
}

func (t *Table) apply(rs *Ruleset, st *Stats) error {
	// 1. New affinity sets.
	for name, s := range rs.Sets {
		if _, ok := t.sets[name]; ok {
			continue
		}
		set := &nftables.Set{Table: t.table, Name: name, KeyType: nftables.TypeIPAddr, HasTimeout: true, Dynamic: true, Timeout: s.Timeout}
		if err := t.conn.AddSet(set, nil); err != nil {
			return fmt.Errorf("set %s: %w", name, err)
		}
		t.sets[name] = set
		if err := t.step(1); err != nil {
			return err
		}
	}
	// 1b. Address sets: new ones created, changed ones refilled.
	for name, want := range rs.AddrSets {
		text := want.String()
		set, had := t.addr[name]
		if had && t.addrTxt[name] == text {
			continue
		}
		if !had {
			set = &nftables.Set{Table: t.table, Name: name, KeyType: nftables.TypeIPAddr, Interval: true}
			if err := t.conn.AddSet(set, nil); err != nil {
				return fmt.Errorf("set %s: %w", name, err)
			}
			t.addr[name] = set
		} else {
			t.conn.FlushSet(set)
		}
		if err := t.step(2); err != nil {
			return err
		}
		elems := rangeElements(want.Ranges)
		for len(elems) > 0 {
			n := min(len(elems), 400)
			if err := t.conn.SetAddElements(set, elems[:n]); err != nil {
				return fmt.Errorf("set %s: %w", name, err)
			}
			elems = elems[n:]
			if err := t.step(1); err != nil {
				return err
			}
		}
		t.addrTxt[name] = text
	}
	// 2. New chains, empty, so rules and elements may name them.
	for name := range rs.Chains {
		if _, ok := t.chains[name]; ok {
			continue
		}
		t.chains[name] = t.conn.AddChain(&nftables.Chain{Name: name, Table: t.table})
		if err := t.step(1); err != nil {
			return err
		}
	}
	// 3. Rules of new and changed chains.
	for name, c := range rs.Chains {
		text := c.Text()
		old, had := t.applied[name]
		if had && old == text {
			continue
		}
		if had {
			t.conn.FlushChain(t.chains[name])
			st.ChainsChanged++
		} else {
			st.ChainsAdded++
		}
		for _, r := range c.Rules {
			exprs, err := t.ruleExprs(r)
			if err != nil {
				return fmt.Errorf("chain %s: %w", name, err)
			}
			t.conn.AddRule(&nftables.Rule{Table: t.table, Chain: t.chains[name], Exprs: exprs})
		}
		t.applied[name] = text
		if err := t.step(1 + len(c.Rules)); err != nil {
			return err
		}
	}
	// 4. Map elements.
	for name, want := range map[string]map[Key]Verdict{serviceIPsMap: rs.ServiceIPs, nodePortsMap: rs.NodePorts, noEndpointsMap: rs.NoEndpoints, noEndpointNodePort: rs.NoEndpointNodePorts,
		policyIngressMap: addressKeys(rs.PolicyIngress), policyEgressMap: addressKeys(rs.PolicyEgress)} {
		n, err := t.syncMap(name, want)
		st.Elements += n
		if err != nil {
			return err
		}
	}
	// 5. Chains no longer wanted: emptied first, since they may jump to
	// each other, then deleted.
	var gone []string
	for name := range t.chains {
		if _, ok := rs.Chains[name]; !ok {
			gone = append(gone, name)
		}
	}
	for _, name := range gone {
		t.conn.FlushChain(t.chains[name])
		if err := t.step(1); err != nil {
			return err
		}
	}
	for _, name := range gone {
		t.conn.DelChain(t.chains[name])
		delete(t.chains, name)
		delete(t.applied, name)
		st.ChainsRemoved++
		if err := t.step(1); err != nil {
			return err
		}
	}
	// 6. Sets no rule uses any more.
	for name, set := range t.sets {
		if _, ok := rs.Sets[name]; !ok {
			t.conn.DelSet(set)
			delete(t.sets, name)
			if err := t.step(1); err != nil {
				return err
			}
		}
	}
	for name, set := range t.addr {
		if _, ok := rs.AddrSets[name]; !ok {
			t.conn.DelSet(set)
			delete(t.addr, name)
			delete(t.addrTxt, name)
			if err := t.step(1); err != nil {
				return err
			}
		}
	}
	return nil
}

// addressKeys turns address-keyed verdicts into map keys with no
// protocol, which mapKey encodes as the address alone.
func addressKeys(m map[string]Verdict) map[Key]Verdict {
	out := make(map[Key]Verdict, len(m))
	for ip, v := range m {
		out[Key{IP: ip}] = v
	}
	return out
}

// rangeElements encodes merged ranges as interval-set elements: each
// range's first address, then the address after its last flagged as an
// interval end (none when the range runs to the top of the space).
func rangeElements(ranges []Range) []nftables.SetElement {
	var out []nftables.SetElement
	for _, r := range ranges {
		out = append(out, nftables.SetElement{Key: binaryutil.BigEndian.PutUint32(r.First)})
		if r.Last != ^uint32(0) {
			out = append(out, nftables.SetElement{Key: binaryutil.BigEndian.PutUint32(r.Last + 1), IntervalEnd: true})
		}
	}
	return out
}

// syncMap brings one dispatch map to want, deleting stale and changed
// elements before adding new ones.
func (t *Table) syncMap(name string, want map[Key]Verdict) (int, error) {
	have := t.elems[name]
	set := t.maps[name]
	var del, add []nftables.SetElement
	for k, v := range have {
		if w, ok := want[k]; !ok || w != v {
			del = append(del, nftables.SetElement{Key: mapKey(k)})
		}
	}
	for k, v := range want {
		if h, ok := have[k]; !ok || h != v {
			add = append(add, nftables.SetElement{Key: mapKey(k), VerdictData: t.verdict(v)})
		}
	}
	for len(del) > 0 {
		n := min(len(del), 200)
		if err := t.conn.SetDeleteElements(set, del[:n]); err != nil {
			return 0, err
		}
		del = del[n:]
		if err := t.step(1); err != nil {
			return 0, err
		}
	}
	changed := len(add)
	for len(add) > 0 {
		n := min(len(add), 200)
		if err := t.conn.SetAddElements(set, add[:n]); err != nil {
			return 0, err
		}
		add = add[n:]
		if err := t.step(1); err != nil {
			return 0, err
		}
	}
	cp := make(map[Key]Verdict, len(want))
	for k, v := range want {
		cp[k] = v
	}
	t.elems[name] = cp
	return changed, nil
}

// step counts queued messages and sends them once there are enough.
func (t *Table) step(n int) error {
	t.pending += n
	if t.pending < batchLimit {
		return nil
	}
	return t.flush()
}

func (t *Table) flush() error {
	t.pending = 0
	return t.conn.Flush()
}

// rebuildBase deletes the table and creates it again with its base chains
// and maps: the starting point of an incremental life.
func (t *Table) rebuildBase() error {
	if err := t.Delete(); err != nil {
		return fmt.Errorf("delete old table: %w", err)
	}
	t.maps, t.chains, t.applied, t.elems, t.sets = map[string]*nftables.Set{}, map[string]*nftables.Chain{}, map[string]string{}, map[string]map[Key]Verdict{}, map[string]*nftables.Set{}
	t.addr, t.addrTxt = map[string]*nftables.Set{}, map[string]string{}
	t.table = t.conn.AddTable(&nftables.Table{Name: tableName, Family: nftables.TableFamilyIPv4})
	svcKey := nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService)
	portKey := nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService)
	for name, key := range map[string]nftables.SetDatatype{serviceIPsMap: svcKey, noEndpointsMap: svcKey, nodePortsMap: portKey, noEndpointNodePort: portKey} {
		s := &nftables.Set{Table: t.table, Name: name, IsMap: true, Concatenation: true, KeyType: key, DataType: nftables.TypeVerdict}
		if err := t.conn.AddSet(s, nil); err != nil {
			return fmt.Errorf("map %s: %w", name, err)
		}
		t.maps[name] = s
	}
	for _, name := range []string{policyIngressMap, policyEgressMap} {
		s := &nftables.Set{Table: t.table, Name: name, IsMap: true, KeyType: nftables.TypeIPAddr, DataType: nftables.TypeVerdict}
		if err := t.conn.AddSet(s, nil); err != nil {
			return fmt.Errorf("map %s: %w", name, err)
		}
		t.maps[name] = s
	}
	user := func(name string) *nftables.Chain {
		return t.conn.AddChain(&nftables.Chain{Name: name, Table: t.table})
	}
	hooked := func(name string, typ nftables.ChainType, hook *nftables.ChainHook, prio *nftables.ChainPriority) *nftables.Chain {
		return t.conn.AddChain(&nftables.Chain{Name: name, Table: t.table, Type: typ, Hooknum: hook, Priority: prio})
	}
	rule := func(c *nftables.Chain, e ...expr.Any) {
		t.conn.AddRule(&nftables.Rule{Table: t.table, Chain: c, Exprs: e})
	}
	user(baseMarker)
	reject := user(rejectChain)
	rule(reject, &expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: icmpPortUnreachable})

	services := user(servicesChain)
	rule(services, t.lookupService(serviceIPsMap)...)
	rule(services, t.lookupNodePort(nodePortsMap)...)
	check := user(endpointsCheck)
	rule(check, t.lookupService(noEndpointsMap)...)
	rule(check, t.lookupNodePort(noEndpointNodePort)...)

	masq := user(masqueradingChain)
	rule(masq, append(markIsSet(), &expr.Masq{FullyRandom: true})...)
	if c := t.cfg.ClusterCIDR; c != nil && c.IP.To4() != nil {
		// Pods reaching beyond the cluster leave with the node's address.
		e := append(cidrMatch(12, c, expr.CmpOpEq), cidrMatch(16, c, expr.CmpOpNeq)...)
		rule(masq, append(e, &expr.Masq{})...)
	}

	jump := &expr.Verdict{Kind: expr.VerdictJump, Chain: servicesChain}
	rule(hooked("nat-prerouting", nftables.ChainTypeNAT, nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest), jump)
	rule(hooked("nat-output", nftables.ChainTypeNAT, nftables.ChainHookOutput, nftables.ChainPriorityNATDest), jump)
	rule(hooked("nat-postrouting", nftables.ChainTypeNAT, nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource),
		&expr.Verdict{Kind: expr.VerdictJump, Chain: masqueradingChain})
	// Connections to a service with nothing behind it are refused before
	// NAT and before routing: a node without a route for the service range
	// would otherwise drop them silently.
	prio := nftables.ChainPriorityRef(*nftables.ChainPriorityNATDest - 10)
	for name, hook := range map[string]*nftables.ChainHook{"filter-prerouting": nftables.ChainHookPrerouting, "filter-output": nftables.ChainHookOutput} {
		c := hooked(name, nftables.ChainTypeFilter, hook, prio)
		rule(c, append(ctStateNew(), &expr.Verdict{Kind: expr.VerdictJump, Chain: endpointsCheck})...)
	}
	// NetworkPolicy: replies pass; traffic to an isolated local pod runs
	// its ingress chain, from one its egress chain; each chain returns
	// when a rule allows the packet and drops at its end.
	policy := hooked("policy-forward", nftables.ChainTypeFilter, nftables.ChainHookForward, nftables.ChainPriorityFilter)
	rule(policy, append(ctState(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), &expr.Verdict{Kind: expr.VerdictAccept})...)
	rule(policy,
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Lookup{SourceRegister: 1, SetName: policyIngressMap, SetID: t.maps[policyIngressMap].ID, IsDestRegSet: true, DestRegister: 0})
	rule(policy,
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Lookup{SourceRegister: 1, SetName: policyEgressMap, SetID: t.maps[policyEgressMap].ID, IsDestRegSet: true, DestRegister: 0})
	if err := t.flush(); err != nil {
		return fmt.Errorf("create table: %w", err)
	}
	t.dirty = false
	return nil
}

// lookupService: ip daddr . meta l4proto . th dport vmap @name.
func (t *Table) lookupService(name string) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 9},
		&expr.Payload{DestRegister: 10, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: 1, SetName: name, SetID: t.maps[name].ID, IsDestRegSet: true, DestRegister: 0},
	}
}

// lookupNodePort: fib daddr type local ip daddr != 127.0.0.0/8
// meta l4proto . th dport vmap @name.
func (t *Table) lookupNodePort(name string) []expr.Any {
	_, loopback, _ := net.ParseCIDR("127.0.0.0/8")
	e := []expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
	}
	e = append(e, cidrMatch(16, loopback, expr.CmpOpNeq)...)
	return append(e,
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Payload{DestRegister: 9, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: 1, SetName: name, SetID: t.maps[name].ID, IsDestRegSet: true, DestRegister: 0},
	)
}

// cidrMatch compares the IPv4 address at offset (12 source, 16
// destination) with a prefix.
func cidrMatch(offset uint32, n *net.IPNet, op expr.CmpOp) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte(net.IP(n.Mask).To4()), Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: op, Register: 1, Data: n.IP.To4().Mask(n.Mask)},
	}
}

func markIsSet() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(masqMark), Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}},
	}
}

func ctStateNew() []expr.Any { return ctState(expr.CtStateBitNEW) }

// ctState matches connections in any of the states in bits.
func ctState(bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}},
	}
}

// ruleExprs translates one service or endpoint rule.
func (t *Table) ruleExprs(r Rule) ([]expr.Any, error) {
	var e []expr.Any
	saddr := &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4}
	if r.SrcNotInCluster {
		if t.cfg.ClusterCIDR == nil {
			return nil, fmt.Errorf("no cluster CIDR")
		}
		e = append(e, cidrMatch(12, t.cfg.ClusterCIDR, expr.CmpOpNeq)...)
	}
	if r.DstInSet != "" {
		s, ok := t.addr[r.DstInSet]
		if !ok {
			return nil, fmt.Errorf("no set %s", r.DstInSet)
		}
		e = append(e, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID})
	}
	if r.L4 != nil {
		e = append(e, &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{protoNumber(r.L4.Protocol)}})
		if r.L4.Port != 0 {
			e = append(e, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2})
			if r.L4.EndPort > r.L4.Port {
				e = append(e, &expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: binaryutil.BigEndian.PutUint16(uint16(r.L4.Port)), ToData: binaryutil.BigEndian.PutUint16(uint16(r.L4.EndPort))})
			} else {
				e = append(e, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(uint16(r.L4.Port))})
			}
		}
	}
	if r.SrcIP != "" {
		e = append(e, saddr, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: net.ParseIP(r.SrcIP).To4()})
	}
	if r.SrcInSet != "" {
		s, ok := t.sets[r.SrcInSet]
		if !ok {
			s, ok = t.addr[r.SrcInSet]
		}
		if !ok {
			return nil, fmt.Errorf("no set %s", r.SrcInSet)
		}
		e = append(e, saddr, &expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID})
	}
	if r.Masquerade {
		e = append(e,
			&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(^uint32(masqMark)), Xor: binaryutil.NativeEndian.PutUint32(masqMark)},
			&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1})
	}
	if r.UpdateSet != "" {
		s, ok := t.sets[r.UpdateSet]
		if !ok {
			return nil, fmt.Errorf("no set %s", r.UpdateSet)
		}
		e = append(e, saddr, &expr.Dynset{SrcRegKey: 1, SetName: s.Name, SetID: s.ID, Operation: unix.NFT_DYNSET_OP_UPDATE, Timeout: s.Timeout})
	}
	if len(r.Random) > 0 {
		m := &nftables.Set{Table: t.table, Anonymous: true, Constant: true, IsMap: true, KeyType: nftables.TypeInteger, KeyByteOrder: binaryutil.NativeEndian, DataType: nftables.TypeVerdict}
		var elems []nftables.SetElement
		for i, c := range r.Random {
			elems = append(elems, nftables.SetElement{Key: binaryutil.NativeEndian.PutUint32(uint32(i)), VerdictData: &expr.Verdict{Kind: expr.VerdictGoto, Chain: c}})
		}
		if err := t.conn.AddSet(m, elems); err != nil {
			return nil, err
		}
		t.pending++
		e = append(e,
			&expr.Numgen{Register: 1, Modulus: uint32(len(r.Random)), Type: unix.NFT_NG_RANDOM},
			&expr.Lookup{SourceRegister: 1, SetName: m.Name, SetID: m.ID, IsDestRegSet: true, DestRegister: 0})
	}
	if r.DNAT != nil {
		port := make([]byte, 2)
		binary.BigEndian.PutUint16(port, uint16(r.DNAT.Port))
		e = append(e,
			&expr.Immediate{Register: 1, Data: net.ParseIP(r.DNAT.IP).To4()},
			&expr.Immediate{Register: 2, Data: port},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true})
	}
	if r.Verdict != nil {
		e = append(e, t.verdict(*r.Verdict))
	}
	return e, nil
}

func (t *Table) verdict(v Verdict) *expr.Verdict {
	switch {
	case v.Drop:
		return &expr.Verdict{Kind: expr.VerdictDrop}
	case v.Reject:
		return &expr.Verdict{Kind: expr.VerdictGoto, Chain: rejectChain}
	case v.Return:
		return &expr.Verdict{Kind: expr.VerdictReturn}
	case v.Accept:
		return &expr.Verdict{Kind: expr.VerdictAccept}
	case v.Jump != "":
		return &expr.Verdict{Kind: expr.VerdictJump, Chain: v.Jump}
	default:
		return &expr.Verdict{Kind: expr.VerdictGoto, Chain: v.Goto}
	}
}

// mapKey encodes a dispatch key as the kernel compares it: each field of
// the concatenation padded to four bytes.
func mapKey(k Key) []byte {
	var b []byte
	if k.IP != "" {
		b = append(b, net.ParseIP(k.IP).To4()...)
	}
	if k.Protocol == "" {
		return b // an address-only key (the policy maps)
	}
	b = append(b, protoNumber(k.Protocol), 0, 0, 0)
	b = append(b, byte(k.Port>>8), byte(k.Port), 0, 0)
	return b
}

func protoNumber(p v1.Protocol) byte {
	switch p {
	case v1.ProtocolUDP:
		return unix.IPPROTO_UDP
	case v1.ProtocolSCTP:
		return unix.IPPROTO_SCTP
	default:
		return unix.IPPROTO_TCP
	}
}
