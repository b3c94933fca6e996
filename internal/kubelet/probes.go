package kubelet

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-sh/skiff/internal/kubelet/plan"
)

// probeClient is shared by HTTP probes and hooks: no keep-alive (each probe
// is a fresh connection, as upstream), no certificate checks, redirects
// followed as net/http does.
var probeClient = &http.Client{Transport: &http.Transport{
	DisableKeepAlives: true,
	TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // probes do not verify, as upstream
	Proxy:             nil,
}}

type probeKind string

const (
	liveness  probeKind = "Liveness"
	readiness probeKind = "Readiness"
	startup   probeKind = "Startup"
)

// probeKey names one probe of one container instance.
type probeKey struct {
	uid         types.UID
	container   string
	containerID string
	kind        probeKind
}

// probeManager runs a goroutine per probe of each running container and
// keeps the latest verdicts.
type probeManager struct {
	k       *Kubelet
	mu      sync.Mutex
	workers map[probeKey]context.CancelFunc
	results map[probeKey]bool
	// notify is told of a changed verdict or a container killed by its
	// probe: the pod's worker syncs it (tests watch it instead).
	notify func(types.UID)
}

func newProbeManager(k *Kubelet) *probeManager {
	return &probeManager{k: k, workers: map[probeKey]context.CancelFunc{}, results: map[probeKey]bool{}, notify: k.wake}
}

// sync starts probes for running containers and stops those of containers
// that are gone.
func (m *probeManager) sync(pod *v1.Pod, st *plan.PodState) {
	want := map[probeKey]*v1.Probe{}
	containers := map[string]*v1.Container{}
	add := func(c *v1.Container) {
		cs := st.Latest(c.Name)
		if cs == nil || !cs.Running() || pod.DeletionTimestamp != nil {
			return
		}
		containers[c.Name] = c
		for kind, p := range map[probeKind]*v1.Probe{liveness: c.LivenessProbe, readiness: c.ReadinessProbe, startup: c.StartupProbe} {
			if p != nil {
				want[probeKey{pod.UID, c.Name, cs.ID, kind}] = p
			}
		}
	}
	for i := range pod.Spec.Containers {
		add(&pod.Spec.Containers[i])
	}
	for i := range pod.Spec.InitContainers {
		if plan.IsSidecar(&pod.Spec.InitContainers[i]) {
			add(&pod.Spec.InitContainers[i])
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for key, cancel := range m.workers {
		if key.uid == pod.UID {
			if _, ok := want[key]; !ok {
				cancel()
				delete(m.workers, key)
				delete(m.results, key)
			}
		}
	}
	for key, p := range want {
		if _, ok := m.workers[key]; ok {
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		m.workers[key] = cancel
		go m.run(ctx, key, pod, containers[key.container], p, st.Latest(key.container).Started, st.PodIP)
	}
}

// forget stops every probe of the pod.
func (m *probeManager) forget(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for key, cancel := range m.workers {
		if key.uid == uid {
			cancel()
			delete(m.workers, key)
			delete(m.results, key)
		}
	}
}

// result is the probe's verdict: (value, known).
func (m *probeManager) result(key probeKey) (bool, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.results[key]
	return v, ok
}

func (m *probeManager) set(key probeKey, v bool) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	old, ok := m.results[key]
	m.results[key] = v
	return !ok || old != v
}

// started reports whether the container passed its startup probe (true
// when it has none).
func (m *probeManager) started(uid types.UID, c *v1.Container, cs *plan.ContainerState) bool {
	if c.StartupProbe == nil {
		return true
	}
	v, _ := m.result(probeKey{uid, c.Name, cs.ID, startup})
	return v
}

// run probes every period after the initial delay, applying the success
// and failure thresholds; a changed verdict wakes the pod's worker.
func (m *probeManager) run(ctx context.Context, key probeKey, pod *v1.Pod, c *v1.Container, p *v1.Probe, started time.Time, podIP string) {
	k := m.k
	period := time.Duration(max(p.PeriodSeconds, 1)) * time.Second
	timeout := time.Duration(max(p.TimeoutSeconds, 1)) * time.Second
	success, failure := int(max(p.SuccessThreshold, 1)), int(max(p.FailureThreshold, 1))
	if key.kind == readiness {
		m.set(key, false)
	}
	delay := started.Add(time.Duration(p.InitialDelaySeconds) * time.Second).Sub(k.clock.Now())
	if delay > 0 {
		select {
		case <-ctx.Done():
			return
		case <-k.clock.After(delay):
		}
	}
	ticker := k.clock.NewTicker(period)
	defer ticker.Stop()
	var okRun, failRun int
	for {
		// A probe stopped while its tick was pending does not run again.
		if ctx.Err() != nil {
			return
		}
		// Liveness and readiness wait for the startup probe.
		if key.kind == startup || m.started(key.uid, c, &plan.ContainerState{ID: key.containerID}) {
			out, err := k.probe(ctx, c, key.containerID, podIP, p, timeout)
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				okRun, failRun = okRun+1, 0
			} else {
				okRun, failRun = 0, failRun+1
				k.events.Eventf(pod, v1.EventTypeWarning, "Unhealthy", "%s probe failed: %s", key.kind, trimProbeOutput(out, err))
			}
			switch {
			case okRun >= success:
				if m.set(key, true) {
					m.notify(key.uid)
				}
				if key.kind == startup {
					return // a passed startup probe is never run again
				}
			case failRun >= failure:
				changed := m.set(key, false)
				if key.kind == readiness && changed {
					m.notify(key.uid)
				}
				if key.kind == liveness || key.kind == startup {
					k.events.Eventf(pod, v1.EventTypeNormal, "Killing", "Container %s failed %s probe, will be restarted", c.Name, lower(key.kind))
					grace := gracePeriod(pod)
					if p.TerminationGracePeriodSeconds != nil {
						grace = *p.TerminationGracePeriodSeconds
					}
					k.killContainer(ctx, pod, &plan.ContainerState{ID: key.containerID, Name: c.Name, State: cri.ContainerState_CONTAINER_RUNNING}, grace)
					m.notify(key.uid)
					return
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C():
		}
	}
}

func lower(k probeKind) string {
	switch k {
	case liveness:
		return "liveness"
	case startup:
		return "startup"
	}
	return "readiness"
}

func trimProbeOutput(out string, err error) string {
	if out != "" && len(out) < 1024 {
		return out
	}
	return err.Error()
}

// probe runs one check: exec in the container, HTTP GET, TCP connect or
// the gRPC health protocol.
func (k *Kubelet) probe(ctx context.Context, c *v1.Container, containerID, podIP string, p *v1.Probe, timeout time.Duration) (string, error) {
	switch {
	case p.Exec != nil:
		resp, err := k.rt.ExecSync(ctx, &cri.ExecSyncRequest{ContainerId: containerID, Cmd: p.Exec.Command, Timeout: int64(timeout / time.Second)})
		if err != nil {
			return "", err
		}
		out := string(resp.Stdout) + string(resp.Stderr)
		if resp.ExitCode != 0 {
			return out, fmt.Errorf("command exited with %d", resp.ExitCode)
		}
		return out, nil
	case p.HTTPGet != nil:
		return httpGet(ctx, podIP, c, p.HTTPGet, timeout)
	case p.TCPSocket != nil:
		host := p.TCPSocket.Host
		if host == "" {
			host = podIP
		}
		port, err := resolvePort(p.TCPSocket.Port, c)
		if err != nil {
			return "", err
		}
		addr := net.JoinHostPort(host, strconv.Itoa(port))
		conn, err := (&net.Dialer{Timeout: timeout}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return "", fmt.Errorf("dial tcp %s: %w", addr, err)
		}
		return "", conn.Close()
	case p.GRPC != nil:
		addr := net.JoinHostPort(podIP, strconv.Itoa(int(p.GRPC.Port)))
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return "", err
		}
		defer conn.Close()
		rctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		service := ""
		if p.GRPC.Service != nil {
			service = *p.GRPC.Service
		}
		resp, err := healthpb.NewHealthClient(conn).Check(rctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			return "", fmt.Errorf("failed to connect service %q within %s: %w", addr, timeout, err)
		}
		if resp.Status != healthpb.HealthCheckResponse_SERVING {
			return "", fmt.Errorf("service unhealthy (responded with %q)", resp.Status)
		}
		return "", nil
	}
	return "", fmt.Errorf("probe has no handler")
}

// containerReady is the Ready of a running container: started, and its
// readiness probe (if any) passing.
func (k *Kubelet) containerReady(pod *v1.Pod, c *v1.Container, cs *plan.ContainerState) bool {
	if !k.probes.started(pod.UID, c, cs) {
		return false
	}
	if c.ReadinessProbe == nil {
		return true
	}
	v, _ := k.probes.result(probeKey{pod.UID, c.Name, cs.ID, readiness})
	return v
}
