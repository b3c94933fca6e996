package kubelet

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-sh/skiff/internal/kubelet/volume"
)

// podCertKey names one podCertificate source of one pod's volume.
type podCertKey struct {
	pod    types.UID
	volume string
	source int
}

// podCert is what the node holds for one source: the key and chain it
// projects, and a request in flight for the next ones.
type podCert struct {
	key       []byte // PEM "PRIVATE KEY" (PKCS#8) of the projected chain
	chain     string // PEM chain from the signer, leaf first
	refreshAt time.Time

	pendingKey []byte // the key of the request in flight
	request    string // name of the PodCertificateRequest in flight
	failure    string // a denied or failed request: the volume waits for a pod update
}

// podCerts is the node's memory of pod certificates: the keys never leave
// the node, so they live here and in the pod's tmpfs volume only.
type podCerts struct {
	mu sync.Mutex
	m  map[podCertKey]*podCert
}

func (c *podCerts) get(k podCertKey) *podCert {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[podCertKey]*podCert{}
	}
	pc, ok := c.m[k]
	if !ok {
		pc = &podCert{}
		c.m[k] = pc
	}
	return pc
}

// forget drops a removed pod's keys.
func (c *podCerts) forget(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.m {
		if k.pod == uid {
			delete(c.m, k)
		}
	}
}

// podCertificateFiles projects a podCertificate source: the node makes a
// key of the asked type, asks the signer by a PodCertificateRequest whose
// stub PKCS#10 request proves the key, and writes key and chain once the
// signer issued them. Until then the volume is not ready (the pod waits in
// ContainerCreating, as upstream). A certificate past its beginRefreshAt
// is requested anew while the current one stays projected.
func (k *Kubelet) podCertificateFiles(ctx context.Context, pod *v1.Pod, volName string, source int, p *v1.PodCertificateProjection, def os.FileMode, files map[string]volume.File) error {
	pc := k.podCerts.get(podCertKey{pod: pod.UID, volume: volName, source: source})
	// One sync of a pod runs at a time; the lock guards against a
	// concurrent forget only.
	if pc.failure != "" {
		return fmt.Errorf("podCertificate projection: %s", pc.failure)
	}
	if pc.chain == "" || !k.clock.Now().Before(pc.refreshAt) {
		if err := k.advancePodCert(ctx, pod, p, pc); err != nil {
			return err
		}
	}
	if pc.chain == "" {
		return fmt.Errorf("podCertificate projection: waiting for signer %q to issue PodCertificateRequest %s/%s", p.SignerName, pod.Namespace, pc.request)
	}
	if p.CredentialBundlePath != "" {
		files[path.Clean(p.CredentialBundlePath)] = volume.File{Data: append(append([]byte{}, pc.key...), pc.chain...), Mode: def}
	}
	if p.KeyPath != "" {
		files[path.Clean(p.KeyPath)] = volume.File{Data: pc.key, Mode: def}
	}
	if p.CertificateChainPath != "" {
		files[path.Clean(p.CertificateChainPath)] = volume.File{Data: []byte(pc.chain), Mode: def}
	}
	return nil
}

// advancePodCert moves a source's request one step: create it, or read
// what the signer answered.
func (k *Kubelet) advancePodCert(ctx context.Context, pod *v1.Pod, p *v1.PodCertificateProjection, pc *podCert) error {
	api := k.client.CertificatesV1().PodCertificateRequests(pod.Namespace)
	if pc.request != "" {
		req, err := api.Get(ctx, pc.request, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			pc.request, pc.pendingKey = "", nil
		case err != nil:
			return fmt.Errorf("podCertificate projection: get request %s: %w", pc.request, err)
		default:
			if done, failure := pcrOutcome(req); done {
				if failure != "" {
					pc.request, pc.pendingKey = "", nil
					if pc.chain == "" {
						pc.failure = failure
					}
					return nil
				}
				pc.key, pc.chain, pc.pendingKey, pc.request = pc.pendingKey, req.Status.CertificateChain, nil, ""
				pc.refreshAt = req.Status.BeginRefreshAt.Time
			}
			return nil
		}
	}
	return k.requestPodCert(ctx, pod, p, pc)
}

// pcrOutcome reads a request's conditions: done once Issued (with a
// chain), Denied or Failed; failure says why a request was refused.
func pcrOutcome(req *certificatesv1.PodCertificateRequest) (done bool, failure string) {
	for _, c := range req.Status.Conditions {
		if c.Status != metav1.ConditionTrue {
			continue
		}
		switch c.Type {
		case certificatesv1.PodCertificateRequestConditionTypeDenied, certificatesv1.PodCertificateRequestConditionTypeFailed:
			return true, fmt.Sprintf("request %s %s: %s: %s", req.Name, strings.ToLower(c.Type), c.Reason, c.Message)
		case certificatesv1.PodCertificateRequestConditionTypeIssued:
			return req.Status.CertificateChain != "" && req.Status.BeginRefreshAt != nil, ""
		}
	}
	return false, ""
}

func (k *Kubelet) requestPodCert(ctx context.Context, pod *v1.Pod, p *v1.PodCertificateProjection, pc *podCert) error {
	saName := pod.Spec.ServiceAccountName
	if saName == "" {
		saName = "default"
	}
	sa, err := k.client.CoreV1().ServiceAccounts(pod.Namespace).Get(ctx, saName, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("podCertificate projection: service account %q: %w", saName, err)
	}
	node := k.getNode()
	if node == nil {
		return fmt.Errorf("podCertificate projection: node %s not registered yet", k.cfg.NodeName)
	}
	keyPEM, csr, err := newPodCertKey(p.KeyType)
	if err != nil {
		return fmt.Errorf("podCertificate projection: %w", err)
	}
	req, err := k.client.CertificatesV1().PodCertificateRequests(pod.Namespace).Create(ctx, &certificatesv1.PodCertificateRequest{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "req-" + pod.Name + "-",
			// The request goes with its pod.
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID}},
		},
		Spec: certificatesv1.PodCertificateRequestSpec{
			SignerName: p.SignerName, PodName: pod.Name, PodUID: pod.UID,
			ServiceAccountName: sa.Name, ServiceAccountUID: sa.UID,
			NodeName: types.NodeName(node.Name), NodeUID: node.UID,
			MaxExpirationSeconds: p.MaxExpirationSeconds, StubPKCS10Request: csr,
			UnverifiedUserAnnotations: p.UserAnnotations,
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("podCertificate projection: create request: %w", err)
	}
	pc.request, pc.pendingKey = req.Name, keyPEM
	return nil
}

// newPodCertKey makes a private key of a projection's key type and the
// stub certificate request that proves it.
func newPodCertKey(keyType string) (keyPEM, csr []byte, err error) {
	var key crypto.Signer
	switch keyType {
	case "RSA3072":
		key, err = rsa.GenerateKey(rand.Reader, 3072)
	case "RSA4096":
		key, err = rsa.GenerateKey(rand.Reader, 4096)
	case "ECDSAP256":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ECDSAP384":
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ECDSAP521":
		key, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "ED25519":
		_, key, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, nil, fmt.Errorf("unsupported key type %q", keyType)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("generate %s key: %w", keyType, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	csr, err = x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("stub certificate request: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), csr, nil
}
