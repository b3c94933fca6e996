package framework

import (
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
)

// Snapshot is an immutable view of the cluster for one scheduling cycle.
// The cache updates it in place between cycles, cloning only the nodes that
// changed.
type Snapshot struct {
	NodeInfoMap map[string]*NodeInfo
	// NodeInfoList holds every node, interleaved across zones so that the
	// first nodes examined are spread over zones.
	NodeInfoList []*NodeInfo
	// ImageNodes counts the nodes that have each normalized image.
	ImageNodes map[string]int
	// Index finds pods by label and groups existing pods' affinity terms.
	Index *PodIndex
	// Generation is the cache generation the snapshot reflects.
	Generation int64

	domainsMu sync.Mutex
	// domains memoizes TopologyDomains until nodes or their labels change.
	domains map[string][]map[string]struct{}
}

// NewEmptySnapshot returns an empty snapshot for the cache to fill.
func NewEmptySnapshot() *Snapshot {
	return &Snapshot{NodeInfoMap: map[string]*NodeInfo{}, ImageNodes: map[string]int{}, Index: NewPodIndex()}
}

// NewSnapshot builds a snapshot from objects (tests and simulations).
func NewSnapshot(pods []*corev1.Pod, nodes []*corev1.Node) *Snapshot {
	s := NewEmptySnapshot()
	for _, n := range nodes {
		ni := NewNodeInfo()
		ni.SetNode(n)
		s.NodeInfoMap[n.Name] = ni
		for name := range ni.Images {
			s.ImageNodes[name]++
		}
	}
	for _, p := range pods {
		if ni := s.NodeInfoMap[p.Spec.NodeName]; ni != nil {
			ni.AddPod(NewPodInfo(p))
		}
	}
	for _, ni := range s.NodeInfoMap {
		if ni.Node() != nil {
			s.Index.Update(nil, ni)
		}
	}
	s.RebuildLists()
	return s
}

// Get returns a node, or nil.
func (s *Snapshot) Get(name string) *NodeInfo { return s.NodeInfoMap[name] }

// NumNodes counts the nodes.
func (s *Snapshot) NumNodes() int { return len(s.NodeInfoList) }

// RebuildLists recomputes the node lists from the map.
func (s *Snapshot) RebuildLists() {
	names := make([]string, 0, len(s.NodeInfoMap))
	for name := range s.NodeInfoMap {
		names = append(names, name)
	}
	sort.Strings(names)
	zones := map[string][]*NodeInfo{}
	var order []string
	for _, name := range names {
		ni := s.NodeInfoMap[name]
		z := ZoneKey(ni.Node())
		if _, ok := zones[z]; !ok {
			order = append(order, z)
		}
		zones[z] = append(zones[z], ni)
	}
	s.NodeInfoList = s.NodeInfoList[:0]
	for i := 0; len(s.NodeInfoList) < len(names); i++ {
		for _, z := range order {
			if i < len(zones[z]) {
				s.NodeInfoList = append(s.NodeInfoList, zones[z][i])
			}
		}
	}
	s.InvalidateTopology()
}

// InvalidateTopology forgets memoized topology domains; the cache calls it
// when nodes come, go or change labels.
func (s *Snapshot) InvalidateTopology() {
	s.domainsMu.Lock()
	s.domains = nil
	s.domainsMu.Unlock()
}

// TopologyDomains returns, over the nodes that carry every key in keys,
// the distinct values of each key (in the order of keys). The result is
// shared and must not be changed.
func (s *Snapshot) TopologyDomains(keys []string) []map[string]struct{} {
	memo := strings.Join(keys, "\x00")
	s.domainsMu.Lock()
	defer s.domainsMu.Unlock()
	if d, ok := s.domains[memo]; ok {
		return d
	}
	out := make([]map[string]struct{}, len(keys))
	for i := range out {
		out[i] = map[string]struct{}{}
	}
nodes:
	for _, ni := range s.NodeInfoList {
		l := ni.Node().Labels
		for _, k := range keys {
			if _, ok := l[k]; !ok {
				continue nodes
			}
		}
		for i, k := range keys {
			out[i][l[k]] = struct{}{}
		}
	}
	if s.domains == nil {
		s.domains = map[string][]map[string]struct{}{}
	}
	s.domains[memo] = out
	return out
}

// ReplaceInList swaps a changed node's clone into NodeInfoList.
func (s *Snapshot) ReplaceInList(index map[string]int, ni *NodeInfo) {
	if i, ok := index[ni.Name()]; ok {
		s.NodeInfoList[i] = ni
	}
}

// ZoneKey is a node's region and zone, or "" without zone labels.
func ZoneKey(n *corev1.Node) string {
	if n == nil {
		return ""
	}
	z, zok := n.Labels[corev1.LabelTopologyZone]
	r, rok := n.Labels[corev1.LabelTopologyRegion]
	if !zok && !rok {
		return ""
	}
	return r + ":\x00:" + z
}
