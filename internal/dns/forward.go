package dns

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sync/singleflight"
)

// Cache bounds, as the `cache 30` of upstream's default Corefile.
const (
	maxCacheTTL     = 30 * time.Second
	defaultNegative = 5 * time.Second
	maxCacheEntries = 10000
)

// Forwarder resolves names outside the cluster through the node's
// resolvers, caching answers (negative ones too) for their TTL.
type Forwarder struct {
	servers []string
	udp     *dns.Client
	tcp     *dns.Client
	now     func() time.Time

	mu    sync.Mutex
	cache map[cacheKey]cacheEntry
	// flight joins concurrent misses for one question into one upstream
	// query (a burst of pods asking for the same name).
	flight singleflight.Group
}

type cacheKey struct {
	name        string
	qtype, cls  uint16
	dnssecOK    bool
	checkingOff bool
}

type cacheEntry struct {
	msg    *dns.Msg
	stored time.Time
	ttl    time.Duration
}

// NewForwarder forwards to servers ("ip:port"), tried in order.
func NewForwarder(servers []string) *Forwarder {
	return &Forwarder{
		servers: servers,
		udp:     &dns.Client{Net: "udp", Timeout: 2 * time.Second},
		tcp:     &dns.Client{Net: "tcp", Timeout: 2 * time.Second},
		now:     time.Now,
		cache:   map[cacheKey]cacheEntry{},
	}
}

// Resolve answers q from the cache or the first resolver that replies.
// The reply's ID and question are the caller's to set.
func (f *Forwarder) Resolve(req *dns.Msg) (*dns.Msg, error) {
	q := req.Question[0]
	key := cacheKey{name: strings.ToLower(q.Name), qtype: q.Qtype, cls: q.Qclass, checkingOff: req.CheckingDisabled}
	if o := req.IsEdns0(); o != nil {
		key.dnssecOK = o.Do()
	}
	if m := f.cached(key); m != nil {
		return m, nil
	}
	if len(f.servers) == 0 {
		return nil, errors.New("no upstream resolvers")
	}
	v, err, _ := f.flight.Do(fmt.Sprintf("%s|%d|%d|%v|%v", key.name, key.qtype, key.cls, key.dnssecOK, key.checkingOff), func() (any, error) {
		return f.exchange(req, key)
	})
	if err != nil {
		return nil, err
	}
	// Each caller gets its own copy: the handler sets the ID and question.
	return v.(*dns.Msg).Copy(), nil
}

// exchange asks the resolvers in order and caches the answer.
func (f *Forwarder) exchange(req *dns.Msg, key cacheKey) (*dns.Msg, error) {
	q := req.Question[0]
	out := new(dns.Msg)
	out.SetQuestion(q.Name, q.Qtype)
	out.Question[0].Qclass = q.Qclass
	out.RecursionDesired = true
	out.CheckingDisabled = req.CheckingDisabled
	out.SetEdns0(4096, key.dnssecOK)
	var lastErr error
	for _, s := range f.servers {
		r, _, err := f.udp.Exchange(out, s)
		if err == nil && r.Truncated {
			r, _, err = f.tcp.Exchange(out, s)
		}
		if err != nil {
			lastErr = err
			continue
		}
		if r.Rcode == dns.RcodeServerFailure || r.Rcode == dns.RcodeRefused {
			lastErr = fmt.Errorf("%s: %s", s, dns.RcodeToString[r.Rcode])
			continue
		}
		f.store(key, r)
		return r, nil
	}
	return nil, fmt.Errorf("forward %s: %w", q.Name, lastErr)
}

// cached returns a copy of a live entry with its TTLs aged.
func (f *Forwarder) cached(k cacheKey) *dns.Msg {
	f.mu.Lock()
	e, ok := f.cache[k]
	f.mu.Unlock()
	if !ok {
		return nil
	}
	age := f.now().Sub(e.stored)
	if age >= e.ttl {
		f.mu.Lock()
		delete(f.cache, k)
		f.mu.Unlock()
		return nil
	}
	m := e.msg.Copy()
	dec := uint32(age / time.Second)
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			h := rr.Header()
			if h.Rrtype == dns.TypeOPT {
				continue
			}
			if h.Ttl > dec {
				h.Ttl -= dec
			} else {
				h.Ttl = 0
			}
		}
	}
	return m
}

func (f *Forwarder) store(k cacheKey, m *dns.Msg) {
	ttl := cacheTTL(m)
	if ttl <= 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.cache) >= maxCacheEntries {
		// Full: drop an arbitrary tenth rather than track recency.
		n := 0
		for key := range f.cache {
			delete(f.cache, key)
			if n++; n >= maxCacheEntries/10 {
				break
			}
		}
	}
	f.cache[k] = cacheEntry{msg: m.Copy(), stored: f.now(), ttl: ttl}
}

// cacheTTL: the smallest answer TTL; for a negative answer the SOA's
// minimum (RFC 2308); capped.
func cacheTTL(m *dns.Msg) time.Duration {
	if m.Rcode != dns.RcodeSuccess && m.Rcode != dns.RcodeNameError {
		return 0
	}
	var ttl time.Duration = -1
	if m.Rcode == dns.RcodeSuccess && len(m.Answer) > 0 {
		for _, rr := range m.Answer {
			if t := time.Duration(rr.Header().Ttl) * time.Second; ttl < 0 || t < ttl {
				ttl = t
			}
		}
	} else {
		ttl = defaultNegative
		for _, rr := range m.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				ttl = time.Duration(min(soa.Minttl, soa.Hdr.Ttl)) * time.Second
			}
		}
	}
	return min(ttl, maxCacheTTL)
}

// Resolvers reads the nameservers of a resolv.conf as "ip:53".
func Resolvers(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "nameserver" && net.ParseIP(fields[1]) != nil {
			out = append(out, net.JoinHostPort(fields[1], "53"))
		}
	}
	return out, sc.Err()
}
