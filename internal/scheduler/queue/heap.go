package queue

import (
	"container/heap"

	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

// podHeap is a keyed priority queue of pods.
type podHeap struct {
	items []*framework.QueuedPodInfo
	index map[types.UID]int
	less  func(a, b *framework.QueuedPodInfo) bool
}

func newHeap(less func(a, b *framework.QueuedPodInfo) bool) *podHeap {
	return &podHeap{index: map[types.UID]int{}, less: less}
}

func (h *podHeap) Len() int           { return len(h.items) }
func (h *podHeap) Less(i, j int) bool { return h.less(h.items[i], h.items[j]) }
func (h *podHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.index[h.items[i].Pod.UID] = i
	h.index[h.items[j].Pod.UID] = j
}
func (h *podHeap) Push(x any) {
	p := x.(*framework.QueuedPodInfo)
	h.index[p.Pod.UID] = len(h.items)
	h.items = append(h.items, p)
}
func (h *podHeap) Pop() any {
	last := len(h.items) - 1
	p := h.items[last]
	h.items[last] = nil
	h.items = h.items[:last]
	delete(h.index, p.Pod.UID)
	return p
}

// AddOrUpdate inserts p, or replaces the entry with p's UID.
func (h *podHeap) AddOrUpdate(p *framework.QueuedPodInfo) {
	if i, ok := h.index[p.Pod.UID]; ok {
		h.items[i] = p
		heap.Fix(h, i)
		return
	}
	heap.Push(h, p)
}

// Get returns the entry for uid.
func (h *podHeap) Get(uid types.UID) (*framework.QueuedPodInfo, bool) {
	i, ok := h.index[uid]
	if !ok {
		return nil, false
	}
	return h.items[i], true
}

// Delete removes the entry for uid.
func (h *podHeap) Delete(uid types.UID) bool {
	i, ok := h.index[uid]
	if !ok {
		return false
	}
	heap.Remove(h, i)
	return true
}

// Peek returns the first entry.
func (h *podHeap) Peek() *framework.QueuedPodInfo {
	if len(h.items) == 0 {
		return nil
	}
	return h.items[0]
}

// PopFirst removes and returns the first entry.
func (h *podHeap) PopFirst() *framework.QueuedPodInfo {
	if len(h.items) == 0 {
		return nil
	}
	return heap.Pop(h).(*framework.QueuedPodInfo)
}
