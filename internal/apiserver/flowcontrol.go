package apiserver

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-sh/skiff/internal/auth"
	"github.com/skiff-sh/skiff/internal/flowcontrol"
)

// Response headers naming how a request was classified, as upstream's.
const (
	headerFlowSchemaUID    = "X-Kubernetes-PF-FlowSchema-UID"
	headerPriorityLevelUID = "X-Kubernetes-PF-PriorityLevel-UID"
)

// retryAfterSeconds is what a 429 asks the client to wait.
const retryAfterSeconds = 1

// flowMetrics are the apiserver_flowcontrol_* series.
type flowMetrics struct {
	dispatched, rejected *prometheus.CounterVec
}

func newFlowMetrics(reg *prometheus.Registry, fc *flowcontrol.Controller) *flowMetrics {
	m := &flowMetrics{
		dispatched: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "apiserver_flowcontrol_dispatched_requests_total", Help: "Number of requests executed by API Priority and Fairness subsystem"}, []string{"flow_schema", "priority_level"}),
		rejected:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "apiserver_flowcontrol_rejected_requests_total", Help: "Number of requests rejected by API Priority and Fairness subsystem"}, []string{"flow_schema", "priority_level", "reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.dispatched, m.rejected, levelCollector{fc})
	}
	return m
}

// levelCollector reports each limited level's seats, executing and
// waiting requests when scraped.
type levelCollector struct{ fc *flowcontrol.Controller }

var (
	descSeats     = prometheus.NewDesc("apiserver_flowcontrol_nominal_limit_seats", "Nominal number of execution seats configured for each priority level", []string{"priority_level"}, nil)
	descExecuting = prometheus.NewDesc("apiserver_flowcontrol_current_executing_seats", "Concurrency (number of seats) occupied by the currently executing (initial stage for a WATCH, any stage otherwise) requests in the API Priority and Fairness subsystem", []string{"priority_level"}, nil)
	descInQueue   = prometheus.NewDesc("apiserver_flowcontrol_current_inqueue_requests", "Number of requests currently pending in queues of the API Priority and Fairness subsystem", []string{"priority_level"}, nil)
)

func (levelCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descSeats
	ch <- descExecuting
	ch <- descInQueue
}

func (c levelCollector) Collect(ch chan<- prometheus.Metric) {
	for name, st := range c.fc.LevelStats() {
		ch <- prometheus.MustNewConstMetric(descSeats, prometheus.GaugeValue, float64(st.Seats), name)
		ch <- prometheus.MustNewConstMetric(descExecuting, prometheus.GaugeValue, float64(st.Executing), name)
		ch <- prometheus.MustNewConstMetric(descInQueue, prometheus.GaugeValue, float64(st.Waiting), name)
	}
}

// withPriorityAndFairness classifies every request after authorization,
// names its FlowSchema and priority level in the response headers, and
// holds it until its level has the seats it takes (one; a list's or a
// watch's by the objects it goes through, see flowcontrol.Width), 429
// when the level's queues are full or the wait runs out. Exempt levels
// (system:masters, probes) take no seat. As upstream's: long-running requests other than watches
// (exec, attach, port-forward, proxy, followed logs) bypass the filter
// altogether, and a watch holds its seat only until it is initialized
// (its initial events sent), not for its whole life.
func (s *Server) withPriorityAndFairness(next http.Handler) http.Handler {
	if s.flow == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ri := requestInfoFrom(r.Context())
		watching := ri.Verb == "watch"
		if longRunning(ri, r) && !watching {
			next.ServeHTTP(w, r)
			return
		}
		u, _ := auth.UserFrom(r.Context())
		req := flowcontrol.Request{User: u.Name, Groups: u.Groups, Verb: ri.Verb, IsResource: ri.IsResource, APIGroup: ri.Group,
			Resource: ri.Resource, Subresource: ri.Subresource, Namespace: ri.Namespace, Path: r.URL.Path}
		if !ri.IsResource {
			req.Verb = nonResourceVerb(r.Method)
		}
		d, flow := s.flow.Classify(req)
		if d.Schema != nil {
			w.Header().Set(headerFlowSchemaUID, string(d.Schema.UID))
			w.Header().Set(headerPriorityLevelUID, string(d.Level.UID))
		}
		if d.Exempt {
			next.ServeHTTP(w, r)
			return
		}
		done, err := s.flow.Admit(r.Context(), d, flow, flowcontrol.Width(ri.Verb, s.storedObjects(ri)))
		if errors.Is(err, flowcontrol.ErrRejected) {
			s.flowMetrics.rejected.WithLabelValues(d.Schema.Name, d.Level.Name, "queue-full").Inc()
			w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
			st := apierrors.NewTooManyRequests("Too many requests, please try again later.", retryAfterSeconds)
			st.ErrStatus.Details = &metav1.StatusDetails{RetryAfterSeconds: retryAfterSeconds}
			s.writeError(w, r, st)
			return
		}
		release := sync.OnceFunc(done)
		defer release()
		s.flowMetrics.dispatched.WithLabelValues(d.Schema.Name, d.Level.Name).Inc()
		if watching {
			r = r.WithContext(context.WithValue(r.Context(), watchInitKey{}, release))
		}
		next.ServeHTTP(w, r)
	})
}

// watchInitKey holds, in a watch's context, what gives its priority
// level seat back once the watch is initialized.
type watchInitKey struct{}

// watchInitialized tells priority and fairness that the watch of ctx has
// sent its initial events; from then on it holds no seat.
func watchInitialized(ctx context.Context) {
	if release, ok := ctx.Value(watchInitKey{}).(func()); ok {
		release()
	}
}

// storedObjects is how many objects of the request's resource the server
// holds (0 when it is not a resource the registry serves), for the width
// of a list or watch.
func (s *Server) storedObjects(ri RequestInfo) int {
	if !ri.IsResource || ri.Verb != "list" && ri.Verb != "watch" {
		return 0
	}
	res := s.reg.Lookup(schema.GroupVersionResource{Group: ri.Group, Version: ri.Version, Resource: ri.Resource})
	if res == nil {
		return 0
	}
	return s.reg.Cache(res).Len()
}
