package webhook

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
)

// maxResponseBytes bounds a webhook's reply (upstream reads at most 3 MiB
// more than the largest request body).
const maxResponseBytes = 6 << 20

// Resolver finds where a Service's port is served: "host:port".
type Resolver func(ctx context.Context, namespace, name string, port int32) (string, error)

// Client calls webhooks over HTTPS, trusting each configuration's caBundle
// (the system's roots when it has none).
type Client struct {
	Resolve Resolver

	mu      sync.Mutex
	clients map[[32]byte]*http.Client // by caBundle
}

// Target is where a webhook is called and the name its certificate must
// carry.
func (c *Client) Target(ctx context.Context, cc admissionregistrationv1.WebhookClientConfig, timeout time.Duration) (*url.URL, string, error) {
	q := url.Values{"timeout": {strconv.Itoa(int(timeout.Seconds())) + "s"}}
	if cc.URL != nil {
		u, err := url.Parse(*cc.URL)
		if err != nil {
			return nil, "", fmt.Errorf("invalid webhook URL: %w", err)
		}
		u.RawQuery = q.Encode()
		return u, u.Hostname(), nil
	}
	if cc.Service == nil {
		return nil, "", fmt.Errorf("webhook has neither url nor service")
	}
	s := cc.Service
	port := deref(s.Port, 443)
	host := s.Name + "." + s.Namespace + ".svc"
	u := &url.URL{Scheme: "https", Host: net.JoinHostPort(host, strconv.Itoa(int(port))), Path: deref(s.Path, ""), RawQuery: q.Encode()}
	return u, host, nil
}

// Post sends body to the webhook and returns its reply, within timeout.
func (c *Client) Post(ctx context.Context, cc admissionregistrationv1.WebhookClientConfig, timeout time.Duration, body []byte) ([]byte, error) {
	u, serverName, err := c.Target(ctx, cc, timeout)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	dial := u.Host
	if cc.Service != nil {
		if c.Resolve == nil {
			return nil, fmt.Errorf("no service resolver")
		}
		if dial, err = c.Resolve(ctx, cc.Service.Namespace, cc.Service.Name, deref(cc.Service.Port, 443)); err != nil {
			return nil, fmt.Errorf("failed to call webhook: %w", err)
		}
	}
	hc, err := c.client(cc.CABundle)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(withDial(ctx, dial, serverName), http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("failed to call webhook: %w", err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("failed to call webhook: %w", err)
	}
	if len(out) > maxResponseBytes {
		return nil, fmt.Errorf("webhook response is larger than %d bytes", maxResponseBytes)
	}
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return nil, fmt.Errorf("received unsuccessful response from webhook: HTTP %d: %s", resp.StatusCode, truncate(out))
	}
	return out, nil
}

func truncate(b []byte) string {
	if len(b) > 256 {
		return string(b[:256]) + "..."
	}
	return string(b)
}

type dialKey struct{}

type dialTarget struct{ addr, serverName string }

// withDial makes the request connect to addr while naming serverName (a
// Service's DNS name, served at its cluster IP).
func withDial(ctx context.Context, addr, serverName string) context.Context {
	return context.WithValue(ctx, dialKey{}, dialTarget{addr: addr, serverName: serverName})
}

// client is the HTTP client trusting caBundle, made once per bundle.
func (c *Client) client(caBundle []byte) (*http.Client, error) {
	key := sha256.Sum256(caBundle)
	c.mu.Lock()
	defer c.mu.Unlock()
	if hc, ok := c.clients[key]; ok {
		return hc, nil
	}
	var roots *x509.CertPool
	if len(caBundle) > 0 {
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(caBundle) {
			return nil, fmt.Errorf("invalid caBundle: no PEM certificates")
		}
	}
	var d net.Dialer
	tr := &http.Transport{
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			name, _, _ := net.SplitHostPort(addr)
			if t, ok := ctx.Value(dialKey{}).(dialTarget); ok {
				addr, name = t.addr, t.serverName
			}
			raw, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			conn := tls.Client(raw, &tls.Config{RootCAs: roots, ServerName: name, MinVersion: tls.VersionTLS12})
			if err := conn.HandshakeContext(ctx); err != nil {
				raw.Close()
				return nil, err
			}
			return conn, nil
		},
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
	}
	hc := &http.Client{Transport: tr}
	if c.clients == nil {
		c.clients = map[[32]byte]*http.Client{}
	}
	c.clients[key] = hc
	return hc, nil
}
