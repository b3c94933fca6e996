package join

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-sh/skiff/internal/pki"
)

// Credentials are a node's identity toward the API and its kubelet
// serving certificate. Both are renewed in place by Renew: the client
// certificate in the files Rest names (client-go reloads them), the serving
// one behind ServingTLS.GetCertificate.
type Credentials struct {
	Rest       *rest.Config
	ServingTLS *tls.Config

	req     Request
	base    *rest.Config
	serving atomic.Pointer[tls.Certificate]
}

// Request describes the node asking to join.
type Request struct {
	Server string // https://host:port of the API
	// Balancer, when set, carries every connection to one of several
	// servers (Server is then only the first of them).
	Balancer *Balancer
	Token    Token
	NodeName string
	NodeIPs  []net.IP
	// Dir keeps the CA, keys and certificates across restarts.
	Dir string
}

// Obtain returns the node's credentials: from Dir when an earlier join
// left valid ones, otherwise by joining: fetch the CA and check it against
// the token, then have the node's client and serving certificates signed
// through CertificateSigningRequests. Certificates due for renewal are
// renewed on the way.
func Obtain(ctx context.Context, r Request) (*Credentials, error) {
	if err := os.MkdirAll(r.Dir, 0o700); err != nil {
		return nil, err
	}
	caPath := filepath.Join(r.Dir, "ca.crt")
	caPEM, err := os.ReadFile(caPath)
	if err != nil {
		if caPEM, err = r.fetchCA(ctx); err != nil {
			return nil, err
		}
		if err := os.WriteFile(caPath, caPEM, 0o600); err != nil {
			return nil, err
		}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s: no certificate", caPath)
	}
	c := &Credentials{req: r, base: &rest.Config{Host: r.Server, TLSClientConfig: rest.TLSClientConfig{CAData: caPEM}, UserAgent: "skiff-agent/" + r.NodeName}}
	if r.Balancer != nil {
		c.base.Host, c.base.Dial = BalancedHost, r.Balancer.Dial
	}
	if _, _, state := loadPair(c.clientBase()); state == pairMissing {
		boot := rest.CopyConfig(c.base)
		boot.BearerToken = r.Token.Bearer()
		cert, key, err := requestCertificate(ctx, boot, c.clientTemplate(), certificatesv1.KubeAPIServerClientKubeletSignerName, clientUsages)
		if err != nil {
			return nil, fmt.Errorf("node client certificate: %w", err)
		}
		if err := savePair(c.clientBase(), cert, key); err != nil {
			return nil, err
		}
	}
	c.Rest = rest.CopyConfig(c.base)
	c.Rest.TLSClientConfig.CertFile, c.Rest.TLSClientConfig.KeyFile = c.clientBase()+".crt", c.clientBase()+".key"
	if err := c.Renew(ctx); err != nil {
		return nil, err
	}
	c.ServingTLS = &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.serving.Load(), nil },
		ClientCAs: pool, MinVersion: tls.VersionTLS12, CipherSuites: pki.CipherSuites}
	return c, nil
}

var clientUsages = []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}

func (c *Credentials) clientBase() string  { return filepath.Join(c.req.Dir, "kubelet-client") }
func (c *Credentials) servingBase() string { return filepath.Join(c.req.Dir, "kubelet-serving") }

func (c *Credentials) clientTemplate() *x509.CertificateRequest {
	return &x509.CertificateRequest{Subject: pkix.Name{CommonName: "system:node:" + c.req.NodeName, Organization: []string{"system:nodes"}}}
}

// Renew has the node's certificates that are due signed again, by the node
// itself while its client certificate still works (approved as
// selfnodeclient); on failure the old ones serve on. Only a serving
// certificate that is missing altogether is an error.
func (c *Credentials) Renew(ctx context.Context) error {
	if cert, key, state := loadPair(c.clientBase()); state == pairExpiring {
		self := rest.CopyConfig(c.base)
		self.TLSClientConfig.CertData, self.TLSClientConfig.KeyData = cert, key
		if cert, key, err := requestCertificate(ctx, self, c.clientTemplate(), certificatesv1.KubeAPIServerClientKubeletSignerName, clientUsages); err == nil {
			_ = savePair(c.clientBase(), cert, key)
		}
	}
	cert, key, state := loadPair(c.servingBase())
	if state != pairFresh {
		tmpl := c.clientTemplate()
		tmpl.DNSNames, tmpl.IPAddresses = []string{c.req.NodeName}, c.req.NodeIPs
		nc, nk, err := requestCertificate(ctx, c.Rest, tmpl, certificatesv1.KubeletServingSignerName,
			[]certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment, certificatesv1.UsageServerAuth})
		switch {
		case err == nil:
			if err := savePair(c.servingBase(), nc, nk); err != nil {
				return err
			}
			cert, key = nc, nk
		case state == pairMissing:
			return fmt.Errorf("kubelet serving certificate: %w", err)
		}
	}
	pair, err := tls.X509KeyPair(cert, key)
	if err != nil {
		return err
	}
	c.serving.Store(&pair)
	return nil
}

// RenewInterval is how often a running node looks at its certificates'
// expiry, as the server does for its own.
const RenewInterval = 12 * time.Hour

// KeepRenewed runs Renew every interval until ctx ends, so a node that runs
// for more than a year keeps working.
func (c *Credentials) KeepRenewed(ctx context.Context, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := c.Renew(ctx); err != nil {
				log.Warn("renew the node's certificates", "err", err)
			}
		}
	}
}

// fetchCA downloads the server's CA without trusting the connection and
// accepts it only if it is the one the token names.
func fetchCA(ctx context.Context, server string, tok Token) ([]byte, error) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // verified by hash below
	}}
	var lastErr error
	for attempt := 0; attempt < 30; attempt++ {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(server, "/")+"/cacerts", nil)
		resp, err := client.Do(req)
		if err == nil {
			body, rerr := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if rerr != nil || resp.StatusCode != http.StatusOK {
				return nil, fmt.Errorf("get %s/cacerts: %s %v", server, resp.Status, rerr)
			}
			block, _ := pem.Decode(body)
			if block == nil || block.Type != "CERTIFICATE" {
				return nil, fmt.Errorf("%s/cacerts: not a PEM certificate", server)
			}
			if !tok.MatchesCA(block.Bytes) {
				return nil, errors.New("the server's CA does not match the join token's hash: refusing to join")
			}
			return body, nil
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return nil, fmt.Errorf("reach %s: %w", server, lastErr)
}

// requestCertificate creates a CertificateSigningRequest for a fresh key
// and waits until it is signed (or denied).
func requestCertificate(ctx context.Context, cfg *rest.Config, tmpl *x509.CertificateRequest, signer string, usages []certificatesv1.KeyUsage) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	csrs := client.CertificatesV1().CertificateSigningRequests()
	created, err := csrs.Create(ctx, &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "node-csr-"},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
			SignerName: signer, Usages: usages,
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("create CertificateSigningRequest: %w", err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		got, err := csrs.Get(ctx, created.Name, metav1.GetOptions{})
		if err == nil {
			for _, c := range got.Status.Conditions {
				if c.Type == certificatesv1.CertificateDenied || c.Type == certificatesv1.CertificateFailed {
					return nil, nil, fmt.Errorf("CertificateSigningRequest %s %s: %s", got.Name, c.Type, c.Message)
				}
			}
			if len(got.Status.Certificate) > 0 {
				return got.Status.Certificate, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
	return nil, nil, fmt.Errorf("CertificateSigningRequest %s not signed within 2 minutes (kubectl certificate approve %s)", created.Name, created.Name)
}

// pairState is what loadPair found.
type pairState int

const (
	pairFresh    pairState = iota // valid for more than pki.RenewBefore
	pairExpiring                  // still valid, but due for renewal
	pairMissing                   // absent, unreadable or expired
)

// loadPair reads base.crt/base.key and says whether they are fresh, due
// for renewal or unusable.
func loadPair(base string) ([]byte, []byte, pairState) {
	c, err := os.ReadFile(base + ".crt")
	if err != nil {
		return nil, nil, pairMissing
	}
	k, err := os.ReadFile(base + ".key")
	if err != nil {
		return nil, nil, pairMissing
	}
	pair, err := tls.X509KeyPair(c, k)
	if err != nil {
		return nil, nil, pairMissing
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	switch {
	case err != nil || time.Until(leaf.NotAfter) < time.Hour:
		return nil, nil, pairMissing
	case time.Until(leaf.NotAfter) < pki.RenewBefore:
		return c, k, pairExpiring
	}
	return c, k, pairFresh
}

func savePair(base string, cert, key []byte) error {
	if err := os.WriteFile(base+".key", key, 0o600); err != nil {
		return err
	}
	return os.WriteFile(base+".crt", cert, 0o600)
}

// fetchCA gets the CA from the first server that gives one.
func (r Request) fetchCA(ctx context.Context) ([]byte, error) {
	if r.Balancer == nil {
		return fetchCA(ctx, r.Server, r.Token)
	}
	var last error
	for _, s := range r.Balancer.Servers() {
		ca, err := fetchCA(ctx, "https://"+s, r.Token)
		if err == nil {
			return ca, nil
		}
		last = err
	}
	return nil, last
}

// FetchCA gets the server's CA certificate (PEM) and checks it against
// the token's hash, as a joining node or server does before trusting it.
func FetchCA(ctx context.Context, server string, tok Token) ([]byte, error) {
	return fetchCA(ctx, server, tok)
}
