package kubelet

import (
	"encoding/json"
	"net/http"
	"time"

	"k8s.io/apimachinery/pkg/types"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-sh/skiff/internal/kubelet/nodestatus"
)

// The /stats/summary document, shaped like the kubelet's stats/v1alpha1
// Summary (the fields metrics consumers read).
type summary struct {
	Node nodeStats  `json:"node"`
	Pods []podStats `json:"pods"`
}

type nodeStats struct {
	NodeName  string       `json:"nodeName"`
	StartTime time.Time    `json:"startTime"`
	CPU       *cpuStats    `json:"cpu,omitempty"`
	Memory    *memoryStats `json:"memory,omitempty"`
}

type podStats struct {
	PodRef     podRef           `json:"podRef"`
	StartTime  time.Time        `json:"startTime"`
	Containers []containerStats `json:"containers"`
	CPU        *cpuStats        `json:"cpu,omitempty"`
	Memory     *memoryStats     `json:"memory,omitempty"`
}

type podRef struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	UID       string `json:"uid"`
}

type containerStats struct {
	Name      string       `json:"name"`
	StartTime time.Time    `json:"startTime"`
	CPU       *cpuStats    `json:"cpu,omitempty"`
	Memory    *memoryStats `json:"memory,omitempty"`
}

type cpuStats struct {
	Time                 time.Time `json:"time"`
	UsageCoreNanoSeconds *uint64   `json:"usageCoreNanoSeconds,omitempty"`
	UsageNanoCores       *uint64   `json:"usageNanoCores,omitempty"`
}

type memoryStats struct {
	Time            time.Time `json:"time"`
	UsageBytes      *uint64   `json:"usageBytes,omitempty"`
	WorkingSetBytes *uint64   `json:"workingSetBytes,omitempty"`
	AvailableBytes  *uint64   `json:"availableBytes,omitempty"`
}

var startTime = time.Now()

func (k *Kubelet) serveSummary(w http.ResponseWriter, r *http.Request) {
	now := k.clock.Now()
	mem := nodestatus.Meminfo()
	total, avail := uint64(mem["MemTotal"]), uint64(mem["MemAvailable"])
	used := total - avail
	s := summary{Node: nodeStats{NodeName: k.cfg.NodeName, StartTime: startTime,
		Memory: &memoryStats{Time: now, UsageBytes: &used, WorkingSetBytes: &used, AvailableBytes: &avail}}}
	resp, err := k.rt.ListContainerStats(r.Context(), &cri.ListContainerStatsRequest{})
	if err != nil {
		http.Error(w, criMessage(err), http.StatusInternalServerError)
		return
	}
	byPod := map[types.UID]*podStats{}
	var order []types.UID
	for _, cs := range resp.Stats {
		attrs := cs.Attributes
		if attrs == nil {
			continue
		}
		uid := types.UID(attrs.Labels[labelPodUID])
		ps, ok := byPod[uid]
		if !ok {
			ps = &podStats{PodRef: podRef{Name: attrs.Labels[labelPodName], Namespace: attrs.Labels[labelPodNamespace], UID: string(uid)}}
			if p := k.pod(uid); p != nil && p.Status.StartTime != nil {
				ps.StartTime = p.Status.StartTime.Time
			}
			byPod[uid] = ps
			order = append(order, uid)
		}
		c := containerStats{Name: attrs.Labels[labelContainerName]}
		if cpu := cs.Cpu; cpu != nil && cpu.UsageCoreNanoSeconds != nil {
			v := cpu.UsageCoreNanoSeconds.Value
			c.CPU = &cpuStats{Time: time.Unix(0, cpu.Timestamp), UsageCoreNanoSeconds: &v}
		}
		if m := cs.Memory; m != nil && m.WorkingSetBytes != nil {
			v := m.WorkingSetBytes.Value
			c.Memory = &memoryStats{Time: time.Unix(0, m.Timestamp), WorkingSetBytes: &v}
		}
		ps.Containers = append(ps.Containers, c)
	}
	for _, uid := range order {
		s.Pods = append(s.Pods, *byPod[uid])
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s)
}
