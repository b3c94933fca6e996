package kubelet

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Serve runs the kubelet's HTTPS server on addr until ctx ends. Clients
// present a certificate of the cluster CA or a bearer token; the API server
// decides what they may do (authz.go).
func (k *Kubelet) Serve(ctx context.Context, addr string, tlsCfg *tls.Config) error {
	tlsCfg = tlsCfg.Clone()
	tlsCfg.ClientAuth = tls.VerifyClientCertIfGiven
	tlsCfg.NextProtos = []string{"http/1.1"} // upgrades (SPDY) need HTTP/1.1
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("kubelet server: %w", err)
	}
	srv := &http.Server{Handler: k.authorize(k.routes()), TLSConfig: tlsCfg, ReadHeaderTimeout: 30 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	k.log.Info("kubelet server listening", "address", ln.Addr().String())
	if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("kubelet server: %w", err)
	}
	return nil
}

func (k *Kubelet) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	mux.HandleFunc("GET /containerLogs/{ns}/{pod}/{container}", k.serveLogs)
	for _, verb := range []string{"exec", "attach"} {
		mux.HandleFunc("/"+verb+"/{ns}/{pod}/{container}", k.serveStream(verb))
	}
	mux.HandleFunc("/portForward/{ns}/{pod}", k.serveStream("portforward"))
	mux.HandleFunc("GET /pods", k.servePods)
	mux.HandleFunc("GET /stats/summary", k.serveSummary)
	mux.Handle("GET /metrics", k.metrics.handler())
	return mux
}

// podByName finds one of this node's pods.
func (k *Kubelet) podByName(ns, name string) *v1.Pod {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, p := range k.static {
		if p.Namespace == ns && p.Name == name {
			return p
		}
	}
	for _, p := range k.pods {
		if p.Namespace == ns && p.Name == name {
			return p
		}
	}
	return nil
}

func (k *Kubelet) servePods(w http.ResponseWriter, _ *http.Request) {
	list := v1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}}
	k.mu.Lock()
	for _, p := range k.pods {
		list.Items = append(list.Items, *p)
	}
	for _, p := range k.static {
		list.Items = append(list.Items, *p)
	}
	k.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(list)
}

// serveStream asks the runtime for a streaming URL for exec, attach or
// port-forward and proxies the client's upgraded connection to it.
func (k *Kubelet) serveStream(verb string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		pod := k.podByName(r.PathValue("ns"), r.PathValue("pod"))
		if pod == nil {
			http.Error(w, "pod not found", http.StatusNotFound)
			return
		}
		st, err := k.runtimeState(r.Context(), pod.UID)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		q := r.URL.Query()
		flag := func(name string) bool { v := q.Get(name); return v == "1" || v == "true" }
		var streamURL string
		switch verb {
		case "portforward":
			sb := st.Current()
			if sb == nil || !st.SandboxOK {
				http.Error(w, "pod sandbox is not running", http.StatusBadRequest)
				return
			}
			resp, err := k.rt.PortForward(r.Context(), &cri.PortForwardRequest{PodSandboxId: sb.Id})
			if err != nil {
				http.Error(w, criMessage(err), http.StatusInternalServerError)
				return
			}
			streamURL = resp.Url
		default:
			cs := st.Latest(r.PathValue("container"))
			if cs == nil || !cs.Running() {
				http.Error(w, fmt.Sprintf("container %s is not running", r.PathValue("container")), http.StatusBadRequest)
				return
			}
			if verb == "exec" {
				resp, err := k.rt.Exec(r.Context(), &cri.ExecRequest{ContainerId: cs.ID, Cmd: q["command"], Tty: flag("tty"), Stdin: flag("stdin"), Stdout: flag("stdout"), Stderr: flag("stderr")})
				if err != nil {
					http.Error(w, criMessage(err), http.StatusInternalServerError)
					return
				}
				streamURL = resp.Url
			} else {
				resp, err := k.rt.Attach(r.Context(), &cri.AttachRequest{ContainerId: cs.ID, Tty: flag("tty"), Stdin: flag("stdin"), Stdout: flag("stdout"), Stderr: flag("stderr")})
				if err != nil {
					http.Error(w, criMessage(err), http.StatusInternalServerError)
					return
				}
				streamURL = resp.Url
			}
		}
		target, err := url.Parse(streamURL)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		proxy := &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.Out.URL = target
				pr.Out.Host = target.Host
			},
			FlushInterval: -1,
		}
		proxy.ServeHTTP(w, r)
	}
}

// logOptions are the query parameters of /containerLogs.
type logOptions struct {
	follow, previous, timestamps bool
	tail                         int64 // -1: all
	limitBytes                   int64 // 0: no limit
	since                        time.Time
}

func parseLogOptions(q url.Values, now time.Time) logOptions {
	o := logOptions{tail: -1}
	flag := func(name string) bool { v := q.Get(name); return v == "1" || v == "true" }
	o.follow, o.previous, o.timestamps = flag("follow"), flag("previous"), flag("timestamps")
	if n, err := strconv.ParseInt(q.Get("tailLines"), 10, 64); err == nil && n >= 0 {
		o.tail = n
	}
	if n, err := strconv.ParseInt(q.Get("limitBytes"), 10, 64); err == nil && n > 0 {
		o.limitBytes = n
	}
	if n, err := strconv.ParseInt(q.Get("sinceSeconds"), 10, 64); err == nil && n > 0 {
		o.since = now.Add(-time.Duration(n) * time.Second)
	}
	if t, err := time.Parse(time.RFC3339, q.Get("sinceTime")); err == nil {
		o.since = t
	}
	return o
}

// serveLogs streams a container's log file in the format kubectl expects.
func (k *Kubelet) serveLogs(w http.ResponseWriter, r *http.Request) {
	pod := k.podByName(r.PathValue("ns"), r.PathValue("pod"))
	name := r.PathValue("container")
	if pod == nil {
		http.Error(w, "pod not found", http.StatusNotFound)
		return
	}
	st, err := k.runtimeState(r.Context(), pod.UID)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	o := parseLogOptions(r.URL.Query(), k.clock.Now())
	cs := st.Latest(name)
	if cs == nil && len(st.Containers[name]) > 0 {
		cs = st.Containers[name][0]
	}
	if o.previous {
		cs = st.Previous(name)
		if cs == nil {
			http.Error(w, fmt.Sprintf("previous terminated container %q in pod %q not found", name, pod.Name), http.StatusBadRequest)
			return
		}
	}
	if cs == nil {
		http.Error(w, fmt.Sprintf("container %q in pod %q is waiting to start: ContainerCreating", name, pod.Name), http.StatusBadRequest)
		return
	}
	f, err := os.Open(k.containerLogPath(pod, name, cs.RestartCount))
	if err != nil {
		http.Error(w, fmt.Sprintf("open log of container %q: %v", name, err), http.StatusNotFound)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "text/plain")
	out := &limitWriter{w: w, left: o.limitBytes}
	if err := k.copyLogs(r.Context(), out, f, o, pod.UID, cs.ID); err != nil && !errors.Is(err, errLimit) {
		k.log.Debug("stream logs", "pod", pod.Namespace+"/"+pod.Name, "err", err)
	}
}

var errLimit = errors.New("limit reached")

type limitWriter struct {
	w    http.ResponseWriter
	left int64
}

func (l *limitWriter) Write(b []byte) (int, error) {
	if l.left == 0 {
		return l.w.Write(b)
	}
	if int64(len(b)) >= l.left {
		b = b[:l.left]
		n, _ := l.w.Write(b)
		l.left = -1
		return n, errLimit
	}
	if l.left < 0 {
		return 0, errLimit
	}
	l.left -= int64(len(b))
	return l.w.Write(b)
}

func (l *limitWriter) flush() {
	if f, ok := l.w.(http.Flusher); ok {
		f.Flush()
	}
}

// copyLogs writes the log's entries (after tail and since filtering) and,
// with follow, keeps writing new ones until the container stops.
func (k *Kubelet) copyLogs(ctx context.Context, out *limitWriter, f *os.File, o logOptions, uid any, containerID string) error {
	var lines []string
	rd := bufio.NewReaderSize(f, 64<<10)
	var pending strings.Builder
	emit := func(e criLogEntry) string {
		pending.Write(e.content)
		if e.partial {
			return ""
		}
		line := pending.String() + "\n"
		pending.Reset()
		if o.timestamps {
			line = e.timestamp + " " + line
		}
		return line
	}
	keep := func(e criLogEntry) bool {
		if o.since.IsZero() {
			return true
		}
		t, err := time.Parse(time.RFC3339Nano, e.timestamp)
		return err != nil || !t.Before(o.since)
	}
	// Catch up: read what is there, applying tailLines.
	for {
		raw, err := rd.ReadString('\n')
		if len(raw) > 0 && strings.HasSuffix(raw, "\n") {
			if e, ok := parseCRILog([]byte(strings.TrimSuffix(raw, "\n"))); ok && keep(e) {
				if line := emit(e); line != "" {
					lines = append(lines, line)
					if o.tail >= 0 && int64(len(lines)) > o.tail {
						lines = lines[1:]
					}
				}
			}
		} else if len(raw) > 0 {
			// A half-written line: read it again with the rest.
			if _, serr := f.Seek(-int64(len(raw))-int64(rd.Buffered()), io.SeekCurrent); serr == nil {
				rd.Reset(f)
			}
		}
		if err != nil {
			break
		}
	}
	if pending.Len() > 0 {
		// The log ends in a partial entry (output without a final
		// newline): it is shown as it is, as upstream's kubelet does; a
		// later entry that completes it adds only the rest.
		lines = append(lines, pending.String())
		pending.Reset()
	}
	for _, l := range lines {
		if _, err := io.WriteString(out, l); err != nil {
			return err
		}
	}
	out.flush()
	if !o.follow {
		return nil
	}
	var partial string
	for {
		raw, err := rd.ReadString('\n')
		raw = partial + raw
		partial = ""
		if err == nil {
			if e, ok := parseCRILog([]byte(strings.TrimSuffix(raw, "\n"))); ok {
				if line := emit(e); line != "" {
					if _, werr := io.WriteString(out, line); werr != nil {
						return werr
					}
					out.flush()
				}
			}
			continue
		}
		partial = raw
		if !k.containerRunning(ctx, containerID) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (k *Kubelet) containerRunning(ctx context.Context, id string) bool {
	resp, err := k.rt.ContainerStatus(ctx, &cri.ContainerStatusRequest{ContainerId: id})
	return err == nil && resp.Status != nil && resp.Status.State == cri.ContainerState_CONTAINER_RUNNING
}
