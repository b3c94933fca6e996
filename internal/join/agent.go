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
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-sh/skiff/internal/pki"
)

// Credentials are a node's identity toward the API and its kubelet
// serving certificate.
type Credentials struct {
	Rest       *rest.Config
	ServingTLS *tls.Config
}

// Request describes the node asking to join.
type Request struct {
	Server   string // https://host:port of the API
	Token    Token
	NodeName string
	NodeIPs  []net.IP
	// Dir keeps the CA, keys and certificates across restarts.
	Dir string
}

// Obtain returns the node's credentials: from Dir when an earlier join
// left valid ones, otherwise by joining: fetch the CA and check it against
// the token, then have the node's client and serving certificates signed
// through CertificateSigningRequests.
func Obtain(ctx context.Context, r Request) (Credentials, error) {
	if err := os.MkdirAll(r.Dir, 0o700); err != nil {
		return Credentials{}, err
	}
	caPath := filepath.Join(r.Dir, "ca.crt")
	caPEM, err := os.ReadFile(caPath)
	if err != nil {
		if caPEM, err = fetchCA(ctx, r.Server, r.Token); err != nil {
			return Credentials{}, err
		}
		if err := os.WriteFile(caPath, caPEM, 0o600); err != nil {
			return Credentials{}, err
		}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return Credentials{}, fmt.Errorf("%s: no certificate", caPath)
	}
	base := &rest.Config{Host: r.Server, TLSClientConfig: rest.TLSClientConfig{CAData: caPEM}, UserAgent: "skiff-agent/" + r.NodeName}
	user := "system:node:" + r.NodeName

	clientTmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: user, Organization: []string{"system:nodes"}}}
	clientUsages := []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}
	clientCert, clientKey, state := loadPair(filepath.Join(r.Dir, "kubelet-client"))
	switch state {
	case pairMissing:
		boot := rest.CopyConfig(base)
		boot.BearerToken = r.Token.Bearer()
		clientCert, clientKey, err = requestCertificate(ctx, boot, clientTmpl, certificatesv1.KubeAPIServerClientKubeletSignerName, clientUsages)
		if err != nil {
			return Credentials{}, fmt.Errorf("node client certificate: %w", err)
		}
		if err := savePair(filepath.Join(r.Dir, "kubelet-client"), clientCert, clientKey); err != nil {
			return Credentials{}, err
		}
	case pairExpiring:
		// Renewed by the node itself while its certificate still works
		// (approved as selfnodeclient); on failure the old one serves on.
		self := rest.CopyConfig(base)
		self.TLSClientConfig.CertData, self.TLSClientConfig.KeyData = clientCert, clientKey
		if c, k, err := requestCertificate(ctx, self, clientTmpl, certificatesv1.KubeAPIServerClientKubeletSignerName, clientUsages); err == nil {
			if err := savePair(filepath.Join(r.Dir, "kubelet-client"), c, k); err == nil {
				clientCert, clientKey = c, k
			}
		}
	}
	node := rest.CopyConfig(base)
	node.TLSClientConfig.CertData, node.TLSClientConfig.KeyData = clientCert, clientKey

	servingCert, servingKey, state := loadPair(filepath.Join(r.Dir, "kubelet-serving"))
	if state != pairFresh {
		tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: user, Organization: []string{"system:nodes"}}, DNSNames: []string{r.NodeName}, IPAddresses: r.NodeIPs}
		c, k, err := requestCertificate(ctx, node, tmpl, certificatesv1.KubeletServingSignerName,
			[]certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment, certificatesv1.UsageServerAuth})
		switch {
		case err == nil:
			if err := savePair(filepath.Join(r.Dir, "kubelet-serving"), c, k); err != nil {
				return Credentials{}, err
			}
			servingCert, servingKey = c, k
		case state == pairMissing:
			return Credentials{}, fmt.Errorf("kubelet serving certificate: %w", err)
		}
	}
	pair, err := tls.X509KeyPair(servingCert, servingKey)
	if err != nil {
		return Credentials{}, err
	}
	return Credentials{Rest: node, ServingTLS: &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, MinVersion: tls.VersionTLS12, CipherSuites: pki.CipherSuites}}, nil
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
