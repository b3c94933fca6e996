package dns

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/skiff-sh/skiff/internal/work"

	"github.com/miekg/dns"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
)

// maxCNAMEChase bounds following ExternalName targets.
const maxCNAMEChase = 8

// Handler answers queries: the cluster zone first, then the forwarder.
type Handler struct {
	zone atomic.Pointer[Zone]
	fwd  *Forwarder
	log  *slog.Logger
}

// NewHandler answers from zone (replaced with SetZone) and forwards the
// rest through fwd.
func NewHandler(zone *Zone, fwd *Forwarder, log *slog.Logger) *Handler {
	h := &Handler{fwd: fwd, log: log}
	h.zone.Store(zone)
	return h
}

// SetZone swaps in a newly built zone.
func (h *Handler) SetZone(z *Zone) { h.zone.Store(z) }

// ServeDNS implements dns.Handler.
func (h *Handler) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := h.Answer(req)
	size := dns.MinMsgSize
	if _, udp := w.RemoteAddr().(*net.UDPAddr); !udp {
		size = dns.MaxMsgSize
	} else if o := req.IsEdns0(); o != nil {
		size = max(int(o.UDPSize()), dns.MinMsgSize)
	}
	m.Truncate(size)
	_ = w.WriteMsg(m)
}

// Answer builds the reply to req.
func (h *Handler) Answer(req *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	if len(req.Question) != 1 || req.Opcode != dns.OpcodeQuery {
		m.SetRcode(req, dns.RcodeFormatError)
		return m
	}
	q := req.Question[0]
	a := h.zone.Load().Lookup(q)
	if !a.Mine {
		r, err := h.fwd.Resolve(req)
		if err != nil {
			h.log.Debug("forward failed", "name", q.Name, "err", err)
			m.SetRcode(req, dns.RcodeServerFailure)
			m.RecursionAvailable = true
			return m
		}
		r.Id = req.Id
		r.Question = req.Question
		r.Response = true
		r.RecursionAvailable = true
		return r
	}
	m.SetReply(req)
	m.Authoritative = true
	m.RecursionAvailable = true
	m.Rcode = a.Rcode
	m.Answer, m.Ns, m.Extra = a.Answer, a.Ns, a.Extra
	if a.CNAME != "" && q.Qtype != dns.TypeCNAME {
		h.chase(m, a.CNAME, q, req)
	}
	return m
}

// chase appends the records an ExternalName's target resolves to, so a
// stub resolver gets an address in one round trip.
func (h *Handler) chase(m *dns.Msg, target string, q dns.Question, req *dns.Msg) {
	for i := 0; i < maxCNAMEChase && target != ""; i++ {
		sub := new(dns.Msg)
		sub.SetQuestion(target, q.Qtype)
		sub.RecursionDesired = true
		if o := req.IsEdns0(); o != nil {
			sub.SetEdns0(o.UDPSize(), o.Do())
		}
		a := h.zone.Load().Lookup(sub.Question[0])
		if a.Mine {
			m.Answer = append(m.Answer, a.Answer...)
			target = a.CNAME
			continue
		}
		r, err := h.fwd.Resolve(sub)
		if err != nil {
			return
		}
		m.Answer = append(m.Answer, r.Answer...)
		if len(r.Answer) == 0 {
			m.Ns = r.Ns
		}
		return
	}
}

// Config is one node's DNS server.
type Config struct {
	// Domain is the cluster domain ("cluster.local").
	Domain string
	// Addr is where it listens, UDP and TCP ("10.77.0.1:53").
	Addr string
	// Upstreams are the node's resolvers for other names.
	Upstreams []string
}

// Server serves one Handler on UDP and TCP.
type Server struct {
	Handler *Handler
	udp     *dns.Server
	tcp     *dns.Server
}

// Listen binds both sockets now, so a taken port is reported at start.
func Listen(cfg Config, h *Handler) (*Server, error) {
	pc, err := net.ListenPacket("udp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("cluster DNS: %w", err)
	}
	l, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("cluster DNS: %w", err)
	}
	return &Server{Handler: h, udp: &dns.Server{PacketConn: pc, Handler: h}, tcp: &dns.Server{Listener: l, Handler: h}}, nil
}

// Serve runs until ctx ends.
func (s *Server) Serve(ctx context.Context) {
	go func() { _ = s.udp.ActivateAndServe() }()
	go func() { _ = s.tcp.ActivateAndServe() }()
	<-ctx.Done()
	_ = s.udp.Shutdown()
	_ = s.tcp.Shutdown()
}

// Run keeps the handler's zone built from the Services and EndpointSlices
// in factory until ctx ends; changes during a build fold into the next.
func Run(ctx context.Context, cfg Config, factory informers.SharedInformerFactory, h *Handler, log *slog.Logger) error {
	svcs := factory.Core().V1().Services()
	slices := factory.Discovery().V1().EndpointSlices()
	kick := work.NewSignal()
	_, _ = svcs.Informer().AddEventHandler(kick.OnAny())
	_, _ = slices.Informer().AddEventHandler(kick.OnAny())
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), svcs.Informer().HasSynced, slices.Informer().HasSynced) {
		return ctx.Err()
	}
	for {
		start := time.Now()
		s, _ := svcs.Lister().List(labels.Everything())
		e, _ := slices.Lister().List(labels.Everything())
		h.SetZone(BuildZone(cfg.Domain, s, e))
		log.Debug("dns zone built", "services", len(s), "took", time.Since(start).String())
		select {
		case <-ctx.Done():
			return nil
		case <-kick.C:
		}
	}
}
