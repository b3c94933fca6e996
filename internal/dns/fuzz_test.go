package dns

import (
	"io"
	"log/slog"
	"testing"

	"github.com/miekg/dns"
)

// FuzzAnswer: whatever a client sends that parses as a DNS message gets an
// answer that packs, and never a panic. `go test` runs the seeds; `go test
// -fuzz FuzzAnswer ./internal/dns/` explores.
func FuzzAnswer(f *testing.F) {
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"web.shop.svc.cluster.local.", dns.TypeA},
		{"_pg._tcp.db.shop.svc.cluster.local.", dns.TypeSRV},
		{"10-42-3-4.shop.pod.cluster.local.", dns.TypeAAAA},
		{"1-2.shop.pod.cluster.local.", dns.TypeA},
		{"ext.shop.svc.cluster.local.", dns.TypeCNAME},
		{"20.0.43.10.in-addr.arpa.", dns.TypePTR},
		{"cluster.local.", dns.TypeSOA},
		{".", dns.TypeNS},
	} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		b, _ := m.Pack()
		f.Add(b)
	}
	h := NewHandler(testZone(), NewForwarder(nil), slog.New(slog.NewTextHandler(io.Discard, nil)))
	f.Fuzz(func(t *testing.T, wire []byte) {
		req := new(dns.Msg)
		if req.Unpack(wire) != nil {
			return
		}
		m := h.Answer(req)
		if _, err := m.Pack(); err != nil {
			t.Fatalf("answer to %v does not pack: %v", req.Question, err)
		}
	})
}
