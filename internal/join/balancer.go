package join

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// BalancedHost is the host a node's API clients name when a Balancer
// dials for them: every server's serving certificate carries it, so TLS
// verifies whichever server the connection reaches.
const BalancedHost = "https://kubernetes"

// Balancer is a node's client-side load balancer over the API servers:
// each new connection goes to the server that answered last, else to the
// next one that accepts it; the servers are those given (--server) and
// those the kubernetes Service lists (Learn). Connections open already
// stay where they are until they break; clients then dial again.
type Balancer struct {
	mu      sync.Mutex
	given   []string // host:port, from the flags: never forgotten
	learned []string // host:port, from the kubernetes endpoints
	good    string
}

// dialTimeout bounds one attempt to reach one server.
const dialTimeout = 3 * time.Second

// NewBalancer balances over the servers' URLs (https://host:port).
func NewBalancer(servers []string) (*Balancer, error) {
	b := &Balancer{}
	for _, s := range servers {
		u, err := url.Parse(s)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("server %q: want https://HOST:PORT", s)
		}
		host := u.Host
		if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), "443")
		}
		b.given = append(b.given, host)
	}
	if len(b.given) == 0 {
		return nil, fmt.Errorf("no server to join")
	}
	b.good = b.given[0]
	return b, nil
}

// Servers lists the servers in the order a dial tries them.
func (b *Balancer) Servers() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return dialOrder(b.good, b.given, b.learned)
}

// dialOrder is the last good server first, then the given ones, then the
// learned ones, each once.
func dialOrder(good string, given, learned []string) []string {
	out := []string{good}
	for _, s := range append(slices.Clone(given), learned...) {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// Dial connects to a server, ignoring the address asked for (always
// BalancedHost).
func (b *Balancer) Dial(ctx context.Context, network, _ string) (net.Conn, error) {
	var last error
	for _, s := range b.Servers() {
		d := net.Dialer{Timeout: dialTimeout, KeepAlive: 15 * time.Second}
		conn, err := d.DialContext(ctx, network, s)
		if err == nil {
			b.mu.Lock()
			b.good = s
			b.mu.Unlock()
			return conn, nil
		}
		last = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("no API server answers (tried %v): %w", b.Servers(), last)
}

// Learn keeps the learned servers to the kubernetes Service's endpoints,
// every interval until ctx ends.
func (b *Balancer) Learn(ctx context.Context, cs kubernetes.Interface, interval time.Duration) {
	for {
		ep, err := cs.CoreV1().Endpoints("default").Get(ctx, "kubernetes", metav1.GetOptions{})
		if err == nil {
			b.setLearned(endpointAddresses(ep))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

func (b *Balancer) setLearned(addrs []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.learned = addrs
}

// endpointAddresses are the host:port of every address of the https port.
func endpointAddresses(ep *corev1.Endpoints) []string {
	var out []string
	for _, sub := range ep.Subsets {
		for _, p := range sub.Ports {
			if p.Name != "https" {
				continue
			}
			for _, a := range sub.Addresses {
				out = append(out, net.JoinHostPort(a.IP, strconv.Itoa(int(p.Port))))
			}
		}
	}
	sort.Strings(out)
	return out
}
