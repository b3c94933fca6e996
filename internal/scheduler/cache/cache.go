// Package cache holds the scheduler's view of nodes and the pods on them,
// including pods assumed onto a node before their binding is confirmed, and
// brings a Snapshot up to date with only what changed.
package cache

import (
	"fmt"
	"maps"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

type podState struct {
	info *framework.PodInfo
	// assumed pods were placed by this scheduler and not yet seen bound.
	assumed bool
}

// Cache is safe for concurrent use: informer handlers write it, the
// scheduling loop snapshots it, binders confirm or forget assumed pods.
type Cache struct {
	mu         sync.Mutex
	nodes      map[string]*framework.NodeInfo
	pods       map[types.UID]*podState
	generation int64
	// dirty names nodes changed since the last snapshot; listChanged says
	// nodes came or went so the snapshot's lists must be rebuilt.
	dirty       map[string]struct{}
	listChanged bool
	imageNodes  map[string]int
	imagesDirty bool
	// index maps node names to their place in the snapshot list.
	index map[string]int
}

// New returns an empty cache.
func New() *Cache {
	return &Cache{
		nodes:      map[string]*framework.NodeInfo{},
		pods:       map[types.UID]*podState{},
		dirty:      map[string]struct{}{},
		imageNodes: map[string]int{},
		index:      map[string]int{},
	}
}

func (c *Cache) touch(name string, ni *framework.NodeInfo) {
	c.generation++
	ni.Generation = c.generation
	c.dirty[name] = struct{}{}
}

func (c *Cache) nodeInfo(name string) *framework.NodeInfo {
	ni := c.nodes[name]
	if ni == nil {
		ni = framework.NewNodeInfo()
		c.nodes[name] = ni
	}
	return ni
}

// AddNode adds or replaces a node.
func (c *Cache) AddNode(node *corev1.Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ni := c.nodeInfo(node.Name)
	if ni.Node() == nil {
		c.listChanged = true
	} else {
		c.countImages(ni, -1)
		if framework.ZoneKey(ni.Node()) != framework.ZoneKey(node) {
			c.listChanged = true
		}
	}
	ni.SetNode(node)
	c.countImages(ni, 1)
	c.touch(node.Name, ni)
}

// UpdateNode is AddNode.
func (c *Cache) UpdateNode(node *corev1.Node) { c.AddNode(node) }

// RemoveNode forgets a node; its pods stay counted until they are deleted.
func (c *Cache) RemoveNode(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ni := c.nodes[name]
	if ni == nil {
		return
	}
	c.countImages(ni, -1)
	if len(ni.Pods) == 0 {
		delete(c.nodes, name)
	} else {
		ni.ClearNode()
	}
	c.listChanged = true
	c.touch(name, ni)
}

func (c *Cache) countImages(ni *framework.NodeInfo, sign int) {
	if len(ni.Images) == 0 {
		return
	}
	for name := range ni.Images {
		c.imageNodes[name] += sign
		if c.imageNodes[name] <= 0 {
			delete(c.imageNodes, name)
		}
	}
	c.imagesDirty = true
}

// AssumePod counts pod (with spec.nodeName set) on its node before the
// binding is confirmed.
func (c *Cache) AssumePod(pi *framework.PodInfo) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.pods[pi.Pod.UID]; ok {
		return fmt.Errorf("pod %s/%s is already in the cache", pi.Pod.Namespace, pi.Pod.Name)
	}
	c.addLocked(pi, true)
	return nil
}

// ForgetPod removes an assumed pod whose binding failed.
func (c *Cache) ForgetPod(pod *corev1.Pod) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ps, ok := c.pods[pod.UID]; ok && ps.assumed {
		c.removeLocked(ps.info.Pod)
	}
}

// IsAssumed reports whether pod is assumed and not yet confirmed.
func (c *Cache) IsAssumed(uid types.UID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	ps, ok := c.pods[uid]
	return ok && ps.assumed
}

// AddPod counts a bound pod seen by the informer, confirming an assumed one.
func (c *Cache) AddPod(pod *corev1.Pod) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ps, ok := c.pods[pod.UID]; ok {
		c.removeLocked(ps.info.Pod)
	}
	c.addLocked(framework.NewPodInfo(pod), false)
}

// UpdatePod replaces a bound pod.
func (c *Cache) UpdatePod(pod *corev1.Pod) { c.AddPod(pod) }

// RemovePod uncounts a pod.
func (c *Cache) RemovePod(pod *corev1.Pod) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ps, ok := c.pods[pod.UID]; ok {
		c.removeLocked(ps.info.Pod)
	}
}

func (c *Cache) addLocked(pi *framework.PodInfo, assumed bool) {
	ni := c.nodeInfo(pi.Pod.Spec.NodeName)
	ni.AddPod(pi)
	c.pods[pi.Pod.UID] = &podState{info: pi, assumed: assumed}
	c.touch(pi.Pod.Spec.NodeName, ni)
}

func (c *Cache) removeLocked(pod *corev1.Pod) {
	delete(c.pods, pod.UID)
	ni := c.nodes[pod.Spec.NodeName]
	if ni == nil {
		return
	}
	_ = ni.RemovePod(pod)
	if ni.Node() == nil && len(ni.Pods) == 0 {
		delete(c.nodes, pod.Spec.NodeName)
		c.generation++
		c.dirty[pod.Spec.NodeName] = struct{}{}
		return
	}
	c.touch(pod.Spec.NodeName, ni)
}

// PodCount counts pods in the cache (bound and assumed).
func (c *Cache) PodCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pods)
}

// NodeCount counts known nodes.
func (c *Cache) NodeCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, ni := range c.nodes {
		if ni.Node() != nil {
			n++
		}
	}
	return n
}

// UpdateSnapshot brings s up to date, cloning only nodes that changed
// since the last call; s must only ever be updated from this cache.
func (c *Cache) UpdateSnapshot(s *framework.Snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.dirty) == 0 && !c.listChanged && !c.imagesDirty {
		return
	}
	for name := range c.dirty {
		ni := c.nodes[name]
		if ni == nil || ni.Node() == nil {
			if old, ok := s.NodeInfoMap[name]; ok {
				s.Index.Update(old, nil)
				delete(s.NodeInfoMap, name)
				c.listChanged = true
			}
			continue
		}
		clone := ni.Clone()
		old := s.NodeInfoMap[name]
		s.Index.Update(old, clone)
		if old != nil && !maps.Equal(old.Node().Labels, clone.Node().Labels) {
			s.InvalidateTopology()
		}
		if old == nil {
			c.listChanged = true
		}
		s.NodeInfoMap[name] = clone
		if !c.listChanged {
			s.ReplaceInList(c.index, clone)
		}
	}
	clear(c.dirty)
	if c.listChanged {
		s.RebuildLists()
		clear(c.index)
		for i, ni := range s.NodeInfoList {
			c.index[ni.Name()] = i
		}
		c.listChanged = false
	}
	if c.imagesDirty {
		s.ImageNodes = make(map[string]int, len(c.imageNodes))
		for k, v := range c.imageNodes {
			s.ImageNodes[k] = v
		}
		c.imagesDirty = false
	}
	s.Generation = c.generation
}
