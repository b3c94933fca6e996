package ingress

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skiff-sh/skiff/internal/work"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	netlisters "k8s.io/client-go/listers/networking/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
)

// Settings are the ingress controller's flags.
type Settings struct {
	// HTTPAddr and HTTPSAddr are where it listens ("0.0.0.0:80").
	HTTPAddr, HTTPSAddr string
	// StatusIP is published as each served Ingress's address.
	StatusIP string
}

// defaultClassAnnotation marks the IngressClass used when an Ingress
// names none.
const defaultClassAnnotation = "ingressclass.kubernetes.io/is-default-class"

// Class is skiff's IngressClass, the cluster default.
func Class() *networkingv1.IngressClass {
	return &networkingv1.IngressClass{
		ObjectMeta: metav1.ObjectMeta{Name: ClassName, Annotations: map[string]string{defaultClassAnnotation: "true"}},
		Spec:       networkingv1.IngressClassSpec{Controller: ControllerName},
	}
}

// Controller serves the Ingresses of class skiff and writes their status.
type Controller struct {
	settings  Settings
	cc        *controller.Context
	ingresses netlisters.IngressLister
	classes   netlisters.IngressClassLister
	services  corelisters.ServiceLister
	slices    discoverylisters.EndpointSliceLister
	secrets   corelisters.SecretLister
	synced    []cache.InformerSynced
	queue     workqueue.TypedRateLimitingInterface[string]
	log       *slog.Logger

	table    atomic.Pointer[Table]
	next     atomic.Uint64
	fallback *tls.Certificate
	certMu   sync.Mutex
	certs    map[string]cachedCert // ns/name → parsed at a resourceVersion
}

type cachedCert struct {
	rv   string
	cert *tls.Certificate
}

// Factory builds the controller with settings.
func Factory(s Settings) controller.Factory {
	return func(cc *controller.Context) (controller.Controller, error) { return newController(cc, s) }
}

func newController(cc *controller.Context, s Settings) (*Controller, error) {
	f := cc.Informers
	ing, cls := f.Networking().V1().Ingresses(), f.Networking().V1().IngressClasses()
	svc, sl, sec := f.Core().V1().Services(), f.Discovery().V1().EndpointSlices(), f.Core().V1().Secrets()
	c := &Controller{settings: s, cc: cc, ingresses: ing.Lister(), classes: cls.Lister(), services: svc.Lister(), slices: sl.Lister(), secrets: sec.Lister(),
		synced: []cache.InformerSynced{ing.Informer().HasSynced, cls.Informer().HasSynced, svc.Informer().HasSynced, sl.Informer().HasSynced, sec.Informer().HasSynced},
		queue:  work.NewQueue[string]("ingress"), log: cc.Log.With("controller", "ingress"), certs: map[string]cachedCert{}}
	c.table.Store(BuildTable(nil, nil))
	// Every Ingress or class change rebuilds the one table (key "").
	rebuild := work.OnChange(func(any) { c.queue.Add("") })
	if _, err := ing.Informer().AddEventHandler(rebuild); err != nil {
		return nil, err
	}
	if _, err := cls.Informer().AddEventHandler(rebuild); err != nil {
		return nil, err
	}
	_ = svc.Informer()
	_ = sl.Informer()
	_ = sec.Informer()
	fb, err := selfSigned()
	if err != nil {
		return nil, err
	}
	c.fallback = fb
	return c, nil
}

// Run listens, then keeps the table and the status current.
func (c *Controller) Run(ctx context.Context, workers int) {
	if !work.WaitForSync(ctx, c.synced...) {
		return
	}
	var servers []*http.Server
	for _, l := range []struct {
		addr string
		tls  bool
	}{{c.settings.HTTPAddr, false}, {c.settings.HTTPSAddr, true}} {
		if l.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			c.log.Error("ingress listener", "addr", l.addr, "err", err)
			continue
		}
		srv := &http.Server{Handler: c, ReadHeaderTimeout: 30 * time.Second}
		if l.tls {
			srv.TLSConfig = &tls.Config{GetCertificate: c.certificate, MinVersion: tls.VersionTLS12}
			ln = tls.NewListener(ln, srv.TLSConfig)
		}
		servers = append(servers, srv)
		go func() { _ = srv.Serve(ln) }()
		c.log.Info("ingress serving", "addr", l.addr, "tls", l.tls)
	}
	defer func() {
		for _, s := range servers {
			_ = s.Close()
		}
	}()
	c.queue.Add("")
	work.Work(ctx, c.log, c.queue, 1, c.sync)
}

// ours: class skiff by name, or no class while skiff's is the default.
func (c *Controller) ours(ing *networkingv1.Ingress) bool {
	if n := ing.Spec.IngressClassName; n != nil {
		return *n == ClassName
	}
	if v, ok := ing.Annotations["kubernetes.io/ingress.class"]; ok {
		return v == ClassName
	}
	cls, err := c.classes.Get(ClassName)
	return err == nil && cls.Annotations[defaultClassAnnotation] == "true"
}

func (c *Controller) sync(ctx context.Context, _ string) error {
	all, err := c.ingresses.List(labels.Everything())
	if err != nil {
		return err
	}
	t := BuildTable(all, c.ours)
	c.table.Store(t)
	want := []networkingv1.IngressLoadBalancerIngress{{IP: c.settings.StatusIP}}
	var errs []error
	for _, ing := range t.Served {
		if c.settings.StatusIP == "" || len(ing.Status.LoadBalancer.Ingress) == 1 && ing.Status.LoadBalancer.Ingress[0].IP == c.settings.StatusIP {
			continue
		}
		up := ing.DeepCopy()
		up.Status.LoadBalancer.Ingress = want
		if _, err := c.cc.Client.NetworkingV1().Ingresses(ing.Namespace).UpdateStatus(ctx, up, metav1.UpdateOptions{}); err != nil {
			errs = append(errs, fmt.Errorf("status of ingress %s/%s: %w", ing.Namespace, ing.Name, err))
		}
	}
	return errors.Join(errs...)
}

// ServeHTTP routes one request.
func (c *Controller) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	b, ok := c.table.Load().Match(host, r.URL.Path)
	if !ok {
		http.Error(w, "default backend - 404", http.StatusNotFound)
		return
	}
	target, err := c.endpoint(b)
	if err != nil {
		c.log.Debug("no backend", "host", host, "path", r.URL.Path, "err", err)
		http.Error(w, "503 Service Temporarily Unavailable", http.StatusServiceUnavailable)
		return
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(&url.URL{Scheme: "http", Host: target})
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			c.log.Debug("backend failed", "target", target, "err", err)
			http.Error(w, "502 Bad Gateway", http.StatusBadGateway)
		},
	}
	proxy.ServeHTTP(w, r)
}

// endpoint picks a ready endpoint of the backend's Service port, in turn.
func (c *Controller) endpoint(b Backend) (string, error) {
	svc, err := c.services.Services(b.Namespace).Get(b.Service)
	if err != nil {
		return "", err
	}
	var sp *corev1.ServicePort
	for i := range svc.Spec.Ports {
		p := &svc.Spec.Ports[i]
		if b.Port.Name != "" && p.Name == b.Port.Name || b.Port.Name == "" && p.Port == b.Port.Number {
			sp = p
		}
	}
	if sp == nil {
		return "", fmt.Errorf("service %s/%s has no port %v", b.Namespace, b.Service, b.Port)
	}
	slices, err := c.slices.EndpointSlices(b.Namespace).List(labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: b.Service}))
	if err != nil {
		return "", err
	}
	var ready []string
	for _, s := range slices {
		if s.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		var port int32
		for _, p := range s.Ports {
			if p.Port != nil && (p.Name == nil && sp.Name == "" || p.Name != nil && *p.Name == sp.Name) {
				port = *p.Port
			}
		}
		if port == 0 {
			continue
		}
		for _, e := range s.Endpoints {
			if len(e.Addresses) > 0 && (e.Conditions.Ready == nil || *e.Conditions.Ready) {
				ready = append(ready, net.JoinHostPort(e.Addresses[0], strconv.Itoa(int(port))))
			}
		}
	}
	if len(ready) == 0 {
		return "", fmt.Errorf("service %s/%s has no ready endpoints", b.Namespace, b.Service)
	}
	return ready[c.next.Add(1)%uint64(len(ready))], nil
}

// certificate serves the TLS Secret an Ingress names for the SNI host, or
// a self-signed fallback.
func (c *Controller) certificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	ref, ok := c.table.Load().cert(hello.ServerName)
	if !ok {
		return c.fallback, nil
	}
	s, err := c.secrets.Secrets(ref.Namespace).Get(ref.Secret)
	if err != nil {
		c.log.Debug("TLS secret", "secret", ref.Namespace+"/"+ref.Secret, "err", err)
		return c.fallback, nil
	}
	key := ref.Namespace + "/" + ref.Secret
	c.certMu.Lock()
	defer c.certMu.Unlock()
	if cc, ok := c.certs[key]; ok && cc.rv == s.ResourceVersion {
		return cc.cert, nil
	}
	cert, err := tls.X509KeyPair(s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		c.log.Warn("TLS secret is not a key pair", "secret", key, "err", err)
		return c.fallback, nil
	}
	c.certs[key] = cachedCert{rv: s.ResourceVersion, cert: &cert}
	return &cert, nil
}

// selfSigned is the certificate for names no Ingress has one for.
func selfSigned() (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "skiff ingress default certificate"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(10, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
