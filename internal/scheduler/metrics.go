package scheduler

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
	"github.com/skiff-sh/skiff/internal/scheduler/queue"
)

// Metrics are the scheduler's Prometheus series, named as upstream's.
type Metrics struct {
	attempts           *prometheus.CounterVec
	attemptDuration    *prometheus.HistogramVec
	e2e                prometheus.Histogram
	preemptionAttempts prometheus.Counter
	pending            *prometheus.GaugeVec
}

// attemptBuckets resolve the sub-10 ms attempts the benchmark reports.
var attemptBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.008, 0.01, 0.015, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// NewMetrics registers the scheduler's series with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "scheduler_schedule_attempts_total",
			Help: "Number of attempts to schedule pods, by the result."}, []string{"result", "profile"}),
		attemptDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "scheduler_scheduling_attempt_duration_seconds",
			Help: "Scheduling attempt latency in seconds (scheduling algorithm + assume).", Buckets: attemptBuckets}, []string{"result", "profile"}),
		e2e: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "scheduler_pod_scheduling_duration_seconds",
			Help: "E2e latency for a pod being scheduled, from its first attempt to its binding.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 20)}),
		preemptionAttempts: prometheus.NewCounter(prometheus.CounterOpts{Name: "scheduler_preemption_attempts_total", Help: "Total preemption attempts in the cluster till now."}),
		pending:            prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "scheduler_pending_pods", Help: "Number of pending pods, by the queue type."}, []string{"queue"}),
	}
	if reg != nil {
		reg.MustRegister(m.attempts, m.attemptDuration, m.e2e, m.preemptionAttempts, m.pending)
	}
	return m
}

func (m *Metrics) attempt(profile, result string, d time.Duration) {
	m.attempts.WithLabelValues(result, profile).Inc()
	m.attemptDuration.WithLabelValues(result, profile).Observe(d.Seconds())
}

func (m *Metrics) scheduled(qp *framework.QueuedPodInfo) {
	m.e2e.Observe(time.Since(qp.InitialAttemptTimestamp).Seconds())
}

// refresh sets the pending-pod gauges from the queue.
func (m *Metrics) refresh(q *queue.Queue) {
	active, backoff, unschedulable, gated := q.Counts()
	m.pending.WithLabelValues("active").Set(float64(active))
	m.pending.WithLabelValues("backoff").Set(float64(backoff))
	m.pending.WithLabelValues("unschedulable").Set(float64(unschedulable))
	m.pending.WithLabelValues("gated").Set(float64(gated))
}
