package dns

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// upstream is a real DNS server on loopback standing in for the node's
// resolver: example.com has an address, everything else does not exist.
func upstream(t *testing.T) (addr string, queries *atomic.Int32) {
	return slowUpstream(t, 0)
}

// slowUpstream is upstream answering after delay.
func slowUpstream(t *testing.T, delay time.Duration) (addr string, queries *atomic.Int32) {
	t.Helper()
	queries = &atomic.Int32{}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		queries.Add(1)
		time.Sleep(delay)
		m := new(dns.Msg)
		m.SetReply(r)
		if r.Question[0].Name == "example.com." && r.Question[0].Qtype == dns.TypeA {
			rr, _ := dns.NewRR("example.com. 300 IN A 192.0.2.80")
			m.Answer = append(m.Answer, rr)
		} else {
			m.Rcode = dns.RcodeNameError
			soa, _ := dns.NewRR("com. 900 IN SOA a.gtld. nstld. 1 1800 900 604800 20")
			m.Ns = append(m.Ns, soa)
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String(), queries
}

// serve starts the cluster DNS on loopback and returns its address.
func serve(t *testing.T, h *Handler) string {
	t.Helper()
	s, err := Listen(Config{Addr: "127.0.0.1:0"}, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s.udp.PacketConn.LocalAddr().String()
}

func query(t *testing.T, addr, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, addr)
	if err != nil {
		t.Fatalf("query %s: %v", name, err)
	}
	return r
}

func TestServerForwardsAndCaches(t *testing.T) {
	up, queries := upstream(t)
	fwd := NewForwarder([]string{up})
	// The clock is read by the server's goroutines: keep it atomic.
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	fwd.now = func() time.Time { return time.Unix(0, now.Load()) }
	addr := serve(t, NewHandler(testZone(), fwd, slog.New(slog.NewTextHandler(io.Discard, nil))))

	r := query(t, addr, "web.shop.svc.cluster.local.", dns.TypeA)
	if r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "10.43.0.20" {
		t.Fatalf("cluster name: %v", r)
	}
	if queries.Load() != 0 {
		t.Errorf("a cluster name reached the upstream")
	}

	r = query(t, addr, "example.com.", dns.TypeA)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].Header().Ttl != 300 {
		t.Fatalf("forwarded: %v", r)
	}
	now.Add(int64(10 * time.Second))
	r = query(t, addr, "example.com.", dns.TypeA)
	if queries.Load() != 1 {
		t.Errorf("second query reached the upstream (%d queries)", queries.Load())
	}
	// Cached for at most 30 s, and the TTL handed out ages.
	if ttl := r.Answer[0].Header().Ttl; ttl != 290 {
		t.Errorf("cached TTL %d, want 290", ttl)
	}
	now.Add(int64(25 * time.Second))
	query(t, addr, "example.com.", dns.TypeA)
	if queries.Load() != 2 {
		t.Errorf("entry outlived the 30 s cap (%d queries)", queries.Load())
	}

	// Negative answers are cached for the SOA minimum.
	for i := 0; i < 3; i++ {
		if r := query(t, addr, "missing.example.", dns.TypeA); r.Rcode != dns.RcodeNameError {
			t.Fatalf("missing name: %v", r)
		}
	}
	if queries.Load() != 3 {
		t.Errorf("NXDOMAIN not cached (%d queries)", queries.Load())
	}

	// An ExternalName answers with its CNAME and the target's address.
	r = query(t, addr, "ext.shop.svc.cluster.local.", dns.TypeA)
	if len(r.Answer) != 2 || r.Answer[0].(*dns.CNAME).Target != "example.com." || r.Answer[1].(*dns.A).A.String() != "192.0.2.80" {
		t.Errorf("ExternalName: %v", r.Answer)
	}
}

// Concurrent misses for one name are one upstream query.
func TestForwarderJoinsConcurrentMisses(t *testing.T) {
	up, queries := slowUpstream(t, 200*time.Millisecond)
	fwd := NewForwarder([]string{up})
	req := new(dns.Msg)
	req.SetQuestion("example.com.", dns.TypeA)
	done := make(chan *dns.Msg, 8)
	for i := 0; i < 8; i++ {
		go func() {
			m, err := fwd.Resolve(req)
			if err != nil {
				t.Error(err)
			}
			done <- m
		}()
	}
	for i := 0; i < 8; i++ {
		if m := <-done; m == nil || len(m.Answer) != 1 {
			t.Fatalf("answer %v", m)
		}
	}
	if n := queries.Load(); n != 1 {
		t.Errorf("8 concurrent misses made %d upstream queries, want 1", n)
	}
}

func TestServerWithoutUpstreamFailsForOtherNames(t *testing.T) {
	addr := serve(t, NewHandler(testZone(), NewForwarder(nil), slog.New(slog.NewTextHandler(io.Discard, nil))))
	if r := query(t, addr, "example.com.", dns.TypeA); r.Rcode != dns.RcodeServerFailure {
		t.Errorf("no resolvers: %s", dns.RcodeToString[r.Rcode])
	}
	if r := query(t, addr, "nope.shop.svc.cluster.local.", dns.TypeA); r.Rcode != dns.RcodeNameError {
		t.Errorf("cluster NXDOMAIN: %s", dns.RcodeToString[r.Rcode])
	}
}

// BenchmarkServe measures cluster-name queries through the handler
// (packing included, no socket): the work per query the server does.
func BenchmarkAnswer(b *testing.B) {
	h := NewHandler(testZone(), NewForwarder(nil), slog.New(slog.NewTextHandler(io.Discard, nil)))
	req := new(dns.Msg)
	req.SetQuestion("web.shop.svc.cluster.local.", dns.TypeA)
	b.ReportAllocs()
	for b.Loop() {
		m := h.Answer(req)
		if _, err := m.Pack(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServeUDP is the server's throughput for cluster names over real
// UDP sockets on loopback: four clients with a query each in flight, the
// machine's cores shared by clients and server. Reports queries/s.
func BenchmarkServeUDP(b *testing.B) {
	h := NewHandler(testZone(), NewForwarder(nil), slog.New(slog.NewTextHandler(io.Discard, nil)))
	s, err := Listen(Config{Addr: "127.0.0.1:0"}, h)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Serve(ctx)
	addr := s.udp.PacketConn.LocalAddr().String()
	q := new(dns.Msg)
	q.SetQuestion("web.shop.svc.cluster.local.", dns.TypeA)
	wire, _ := q.Pack()
	const clients = 4
	b.ResetTimer()
	start := time.Now()
	var total atomic.Int64
	done := make(chan error, clients)
	per := b.N/clients + 1
	for c := 0; c < clients; c++ {
		go func() {
			conn, err := net.Dial("udp", addr)
			if err != nil {
				done <- err
				return
			}
			defer conn.Close()
			buf := make([]byte, 512)
			for i := 0; i < per; i++ {
				if _, err := conn.Write(wire); err != nil {
					done <- err
					return
				}
				_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
				if _, err := conn.Read(buf); err != nil {
					done <- err
					return
				}
				total.Add(1)
			}
			done <- nil
		}()
	}
	for c := 0; c < clients; c++ {
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(total.Load())/time.Since(start).Seconds(), "queries/s")
}
