package kubelet

import (
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the kubelet's Prometheus metrics, served on its own /metrics
// (named as upstream's kubelet names them, so dashboards carry over).
type metrics struct {
	registry *prometheus.Registry
	// running sandboxes and containers, from the last relist
	runningPods, runningContainers atomic.Int64
	podStart                       prometheus.Histogram
	workerDuration                 *prometheus.HistogramVec
	evictions                      *prometheus.CounterVec
	gcRemoved                      *prometheus.CounterVec
}

func newMetrics(nodeName string) *metrics {
	m := &metrics{registry: prometheus.NewRegistry()}
	m.podStart = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "kubelet_pod_start_duration_seconds",
		Help:    "Duration in seconds from the kubelet seeing a pod for the first time to the pod starting to run.",
		Buckets: []float64{0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 30, 60, 120, 300}})
	m.workerDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kubelet_pod_worker_duration_seconds",
		Help: "Duration in seconds to sync a single pod, broken down by operation type: create, update or sync.", Buckets: prometheus.DefBuckets},
		[]string{"operation_type"})
	m.evictions = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kubelet_evictions",
		Help: "Cumulative number of pod evictions by eviction signal."}, []string{"eviction_signal"})
	m.gcRemoved = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "skiff_kubelet_garbage_collected_total",
		Help: "Dead containers, sandboxes and unused images the kubelet removed."}, []string{"kind"})
	nodeGauge := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kubelet_node_name", Help: "The node's name. The count is always 1."}, []string{"node"})
	nodeGauge.WithLabelValues(nodeName).Set(1)
	m.registry.MustRegister(
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.podStart, m.workerDuration, m.evictions, m.gcRemoved, nodeGauge,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "kubelet_running_pods", Help: "Number of pods that have a running pod sandbox."},
			func() float64 { return float64(m.runningPods.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "kubelet_running_containers", Help: "Number of containers currently running.",
			ConstLabels: prometheus.Labels{"container_state": "running"}},
			func() float64 { return float64(m.runningContainers.Load()) }),
	)
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}
