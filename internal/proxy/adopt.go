package proxy

import (
	"encoding/binary"
	"fmt"
	"net"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	mnl "github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
)

// baseMarker is an empty chain naming the layout of the base chains and
// maps. A table that has it was made by a skiff with the same base, so a
// restarted agent takes the table over instead of deleting it: rebuilding
// would leave Services unreachable until the whole table is back (a second
// and more at a thousand Services). Change the name whenever the base
// changes, so an upgraded agent rebuilds.
const baseMarker = "skiff-base-1"

// adopt takes over the table a previous agent left: the base as it is, the
// dispatch maps' elements as they are, every other chain to be rewritten
// in place (each in one transaction with its flush, so no chain is ever
// seen empty) or deleted, the sets to be refilled. It reports false,
// without error, when there is nothing to adopt.
func (t *Table) adopt() (bool, error) {
	table := &nftables.Table{Name: tableName, Family: nftables.TableFamilyIPv4}
	chains, err := t.conn.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return false, err
	}
	own := map[string]*nftables.Chain{}
	marked := false
	for _, c := range chains {
		if c.Table == nil || c.Table.Name != tableName {
			continue
		}
		if c.Name == baseMarker {
			marked = true
		}
		if c.Hooknum == nil && !isBaseChain(c.Name) {
			c.Table = table
			own[c.Name] = c
		}
	}
	if !marked {
		return false, nil
	}
	sets, err := t.conn.GetSets(table)
	if err != nil {
		return false, err
	}
	maps, elems := map[string]*nftables.Set{}, map[string]map[Key]Verdict{}
	affinity, addr, addrTxt := map[string]*nftables.Set{}, map[string]*nftables.Set{}, map[string]string{}
	for _, s := range sets {
		s.Table, s.ID = table, 0 // existing sets are found by name
		switch {
		case isMapName(s.Name):
			got, err := t.conn.GetSetElements(s)
			if err != nil {
				return false, fmt.Errorf("map %s: %w", s.Name, err)
			}
			m := map[Key]Verdict{}
			for _, e := range got {
				k, v, ok := decodeElement(s.Name, e)
				if !ok {
					return false, nil // not what this skiff writes: rebuild
				}
				m[k] = v
			}
			maps[s.Name], elems[s.Name] = s, m
		case strings.HasPrefix(s.Name, "aff-"):
			affinity[s.Name] = s
		case strings.HasPrefix(s.Name, "np-"):
			addr[s.Name], addrTxt[s.Name] = s, "" // refilled by the next apply
		}
	}
	if len(maps) != len(mapNames) {
		return false, nil
	}
	t.table = table
	t.maps, t.elems, t.sets, t.addr, t.addrTxt = maps, elems, affinity, addr, addrTxt
	t.chains, t.applied = own, map[string]string{}
	for name := range own {
		t.applied[name] = "" // unknown contents: rewritten if still wanted
	}
	t.dirty = false
	return true, nil
}

var mapNames = []string{serviceIPsMap, nodePortsMap, noEndpointsMap, noEndpointNodePort, policyIngressMap, policyEgressMap}

func isMapName(n string) bool {
	for _, m := range mapNames {
		if n == m {
			return true
		}
	}
	return false
}

// isBaseChain: the user chains the base creates, kept as they are.
func isBaseChain(n string) bool {
	switch n {
	case rejectChain, servicesChain, endpointsCheck, masqueradingChain, baseMarker:
		return true
	}
	return false
}

// decodeElement reads back a dispatch-map element as mapKey wrote it.
func decodeElement(mapName string, e nftables.SetElement) (Key, Verdict, bool) {
	var k Key
	b := e.Key
	switch mapName {
	case policyIngressMap, policyEgressMap:
		if len(b) != 4 {
			return k, Verdict{}, false
		}
		k.IP = net.IP(b).String()
	case serviceIPsMap, noEndpointsMap:
		if len(b) != 12 {
			return k, Verdict{}, false
		}
		k.IP = net.IP(b[:4]).String()
		b = b[4:]
	default:
		if len(b) != 8 {
			return k, Verdict{}, false
		}
	}
	if len(b) == 8 {
		switch b[0] {
		case unix.IPPROTO_TCP:
			k.Protocol = v1.ProtocolTCP
		case unix.IPPROTO_UDP:
			k.Protocol = v1.ProtocolUDP
		case unix.IPPROTO_SCTP:
			k.Protocol = v1.ProtocolSCTP
		default:
			return k, Verdict{}, false
		}
		k.Port = int32(b[4])<<8 | int32(b[5])
	}
	vd := e.VerdictData
	if vd == nil {
		vd = parseVerdict(e.Val)
	}
	if vd == nil {
		return k, Verdict{}, false
	}
	switch {
	case vd.Kind == expr.VerdictDrop:
		return k, Verdict{Drop: true}, true
	case vd.Kind == expr.VerdictGoto && vd.Chain == rejectChain:
		return k, Verdict{Reject: true}, true
	case vd.Kind == expr.VerdictGoto:
		return k, Verdict{Goto: vd.Chain}, true
	case vd.Kind == expr.VerdictJump:
		return k, Verdict{Jump: vd.Chain}, true
	}
	return k, Verdict{}, false
}

// parseVerdict decodes the verdict attributes a map element's data holds
// when read back from the kernel (NFTA_VERDICT_CODE, NFTA_VERDICT_CHAIN).
func parseVerdict(b []byte) *expr.Verdict {
	ad, err := mnl.NewAttributeDecoder(b)
	if err != nil {
		return nil
	}
	ad.ByteOrder = binary.BigEndian
	var v expr.Verdict
	seen := false
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_VERDICT_CODE:
			v.Kind, seen = expr.VerdictKind(int32(ad.Uint32())), true
		case unix.NFTA_VERDICT_CHAIN:
			v.Chain = ad.String()
		}
	}
	if ad.Err() != nil || !seen {
		return nil
	}
	return &v
}
