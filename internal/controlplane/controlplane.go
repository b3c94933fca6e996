// Package controlplane assembles skiff server: certificates, etcd, the
// registry and its caches, bootstrap objects and the HTTPS API.
package controlplane

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/rest"

	"github.com/skiff-sh/skiff/internal/apiserver"
	"github.com/skiff-sh/skiff/internal/auth"
	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/ingress"
	"github.com/skiff-sh/skiff/internal/join"
	"github.com/skiff-sh/skiff/internal/openapi"
	"github.com/skiff-sh/skiff/internal/pki"
	"github.com/skiff-sh/skiff/internal/procmem"
	"github.com/skiff-sh/skiff/internal/registry"
	"github.com/skiff-sh/skiff/internal/scheduler"
	schedconfig "github.com/skiff-sh/skiff/internal/scheduler/config"
	"github.com/skiff-sh/skiff/internal/storage"
)

// KubernetesVersion is the API release skiff serves.
const KubernetesVersion = "v1.37.2"

// Config is skiff server's configuration.
type Config struct {
	DataDir        string
	BindAddress    string
	SecurePort     int
	AdvertiseIP    string
	TLSSANs        []string
	EtcdEndpoints  []string
	EtcdClientPort int
	EtcdPeerPort   int
	// EtcdDiskReserve is the embedded etcd's free-space floor (0: default).
	EtcdDiskReserve uint64
	ServiceCIDR     string
	// Ingress, when set, runs the built-in ingress controller.
	Ingress *ingress.Settings
	// ClusterDNS is the ClusterIP of the kube-dns Service the control
	// plane creates ("": none).
	ClusterDNS    string
	NodePortMin   int
	NodePortMax   int
	TokenAuthFile string
	Profiling     bool
	// Controllers are the controllers to run (see Controllers and Select).
	Controllers []string
	// ControllerSettings tune the controllers.
	ControllerSettings controller.Settings
	// Scheduler is the scheduler's configuration (nil: defaults).
	Scheduler *schedconfig.Config
	// DisableScheduler turns the scheduler off.
	DisableScheduler bool
	// Version is skiff's own version, shown in /version's gitVersion.
	Version string
	// NodeName and Agent run a node agent in the server process (nil: no
	// agent). Agent gets a client configuration for system:node:<NodeName>.
	NodeName string
	NodeIP   net.IP
	Agent    func(ctx context.Context, creds NodeCredentials) error
}

// NodeCredentials are what a node agent needs from the cluster's PKI.
type NodeCredentials struct {
	// Rest reaches the API as system:node:<name>.
	Rest *rest.Config
	// ServingTLS serves the kubelet's HTTPS endpoint; its client CAs are
	// the cluster CA.
	ServingTLS *tls.Config
}

// Run serves until ctx ends, then shuts down cleanly.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	started := time.Now()
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "pki"), 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	advertise, err := advertiseIP(cfg.AdvertiseIP)
	if err != nil {
		return err
	}
	tlsCfg, loopback, schedulerRest, err := certificates(cfg, advertise)
	if err != nil {
		return err
	}
	controllers, err := controller.Select(Controllers(), cfg.Controllers)
	if err != nil {
		return err
	}
	if cfg.Ingress != nil {
		settings := *cfg.Ingress
		if settings.StatusIP == "" {
			settings.StatusIP = advertise.String()
		}
		controllers = append(controllers, controller.Registration{Name: "ingress", New: ingress.Factory(settings), Workers: 1})
	}

	var client *clientv3.Client
	if endpoints := cfg.EtcdEndpoints; len(endpoints) > 0 {
		client, err = clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 10 * time.Second, Logger: zap.NewNop(), MaxCallSendMsgSize: 8 << 20, MaxCallRecvMsgSize: 512 << 20})
		if err != nil {
			return fmt.Errorf("connect to etcd %v: %w", endpoints, err)
		}
	} else {
		embedded, err := storage.StartEmbedded(storage.EmbeddedConfig{DataDir: filepath.Join(cfg.DataDir, "etcd"), ClientPort: cfg.EtcdClientPort, PeerPort: cfg.EtcdPeerPort, Name: "skiff", DiskReserve: cfg.EtcdDiskReserve}, log)
		if err != nil {
			return err
		}
		defer embedded.Close()
		client = embedded.Client()
		log.Debug("embedded etcd started", "since_start", time.Since(started).String())
	}
	defer client.Close()

	scheme, err := NewScheme()
	if err != nil {
		return err
	}
	reg, err := registry.New(client, scheme, newProtoCodec(scheme), registry.AllocatorConfig{ServiceCIDR: cfg.ServiceCIDR, NodePortMin: cfg.NodePortMin, NodePortMax: cfg.NodePortMax}, log)
	if err != nil {
		return err
	}
	// Before anything is served, so no Service is given an address an
	// older skiff's allocation record still holds.
	mctx, cancelMigrate := context.WithTimeout(ctx, 30*time.Second)
	moved, err := reg.MigrateClusterIPs(mctx, client)
	cancelMigrate()
	if err != nil {
		return err
	}
	if moved > 0 {
		log.Info("moved cluster IP allocations into IPAddress objects", "count", moved)
	}
	cacheCtx, stopCaches := context.WithCancel(context.Background())
	defer stopCaches()
	for _, c := range reg.Caches() {
		go c.Run(cacheCtx)
	}

	authn, err := auth.New(cfg.TokenAuthFile)
	if err != nil {
		return err
	}
	metrics := prometheus.NewRegistry()
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	schedMetrics := scheduler.NewMetrics(metrics)
	if cfg.Scheduler == nil {
		cfg.Scheduler = schedconfig.Default()
	}
	codecs := apiserver.NewCodecs(scheme)
	spec := openapi.New(reg)
	var bootstrapped atomic.Bool
	ready := func(ctx context.Context) error {
		for _, c := range reg.Caches() {
			if !c.Ready() {
				return errors.New("informer-sync: watch caches not yet synced")
			}
		}
		if !bootstrapped.Load() {
			return errors.New("poststarthook/bootstrap-controller: bootstrap objects not yet created")
		}
		if _, err := client.Get(ctx, "health", clientv3.WithSerializable()); err != nil {
			return fmt.Errorf("etcd: %v", err)
		}
		return nil
	}
	kubeletTLS, err := kubeletClientTLS(cfg.DataDir)
	if err != nil {
		return err
	}
	ca, err := pki.LoadOrCreateCA(filepath.Join(cfg.DataDir, "pki"), "skiff-ca")
	if err != nil {
		return err
	}
	// The node-join token: its bootstrap half may only ask for node
	// certificates (auto-approved by the csrsigning controller).
	token, err := join.LoadOrCreate(filepath.Join(cfg.DataDir, "node-token"), ca.Cert.Raw)
	if err != nil {
		return err
	}
	authn.AddToken(token.Bearer(), auth.User{Name: token.User(), Groups: token.Groups()})
	api := apiserver.New(apiserver.Config{
		KubeletTLS: kubeletTLS, CAPEM: ca.CertPEM,
		Registry: reg, Codecs: codecs, Authn: authn, Log: log, Ready: ready, Metrics: metrics,
		Version:   versionInfo(cfg.Version),
		Profiling: cfg.Profiling, OpenAPIV2: spec.V2, OpenAPIV2Proto: spec.V2Proto, OpenAPIV3: spec.V3,
	})

	baseCtx, cancelRequests := context.WithCancel(context.Background())
	defer cancelRequests()
	// Upstream's timeouts: an idle keep-alive connection goes after 90 s,
	// and a client that never finishes its TLS handshake or headers after
	// 32 s (the handshake is bounded by the same deadline).
	srv := &http.Server{
		Handler:           api,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 32 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    1 << 20,
		BaseContext:       func(net.Listener) context.Context { return baseCtx },
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	addr := net.JoinHostPort(cfg.BindAddress, strconv.Itoa(cfg.SecurePort))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	var nofile unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &nofile); err == nil {
		ln = apiserver.LimitListener(ln, apiserver.MaxConnections(nofile.Cur))
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.ServeTLS(ln, "", "") }()
	log.Info("serving the Kubernetes API", "address", "https://"+addr, "kubeconfig", filepath.Join(cfg.DataDir, "admin.kubeconfig"), "since_start", time.Since(started).String())

	controllersCtx, stopControllers := context.WithCancel(context.Background())
	defer stopControllers()
	controllersDone := make(chan struct{})
	schedulerDone := make(chan struct{})
	agentCtx, stopAgent := context.WithCancel(context.Background())
	defer stopAgent()
	agentDone := make(chan struct{})
	if cfg.Agent == nil {
		close(agentDone)
	} else {
		creds, err := nodeCredentials(cfg, loopback)
		if err != nil {
			return err
		}
		go func() {
			defer close(agentDone)
			if err := cfg.Agent(agentCtx, creds); err != nil {
				log.Error("node agent stopped", "err", err)
			}
		}()
	}
	go func() {
		for ctx.Err() == nil {
			bctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err := bootstrap(bctx, reg, bootstrapObjects(reg.IPs.First(), cfg.ServiceCIDR, cfg.ClusterDNS, cfg.Ingress != nil, advertise, int32(cfg.SecurePort), filepath.Join(cfg.DataDir, "storage")))
			cancel()
			if err == nil {
				bootstrapped.Store(true)
				log.Info("bootstrap objects ready", "since_start", time.Since(started).String())
				// Start-up parses schemas and primes caches, leaving garbage
				// that an idle server would hold for minutes: return it now,
				// with the executable's start-up pages (see procmem).
				debug.FreeOSMemory()
				log.Debug("released start-up memory", "executable_bytes_advised", procmem.ReleaseExecutablePages())
				if !cfg.DisableScheduler {
					go func() {
						defer close(schedulerDone)
						err := scheduler.RunLeader(controllersCtx, scheduler.RunConfig{Rest: schedulerRest, Config: cfg.Scheduler, Identity: identity(), Metrics: schedMetrics, Log: log})
						if err != nil {
							log.Error("scheduler stopped", "err", err)
						}
					}()
				} else {
					close(schedulerDone)
				}
				go func() {
					defer close(controllersDone)
					err := controller.RunManager(controllersCtx, controller.ManagerConfig{Rest: loopback, Controllers: controllers, Identity: identity(), RootCA: loopback.TLSClientConfig.CAData, CA: ca, Settings: cfg.ControllerSettings, Log: log})
					if err != nil {
						log.Error("controller manager stopped", "err", err)
					}
				}()
				return
			}
			log.Warn("bootstrap failed; retrying", "err", err)
			time.Sleep(time.Second)
		}
		close(controllersDone) // shut down before the controllers started
		close(schedulerDone)
	}()

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("shutting down")
	// Controllers and the node agent stop first, while the API still
	// serves their lease release and last status writes.
	stopControllers()
	stopAgent()
	deadline := time.After(5 * time.Second)
	for _, done := range []chan struct{}{controllersDone, schedulerDone} {
		select {
		case <-done:
		case <-deadline:
		}
	}
	select {
	case <-agentDone:
	case <-time.After(20 * time.Second):
	}
	api.ShuttingDown.Store(true)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cancelRequests()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		srv.Close()
	}
	stopCaches()
	log.Info("stopped")
	return nil
}

func versionInfo(skiff string) version.Info {
	return version.Info{
		Major: "1", Minor: "37", GitVersion: KubernetesVersion + "+skiff", GitCommit: skiff, GitTreeState: "clean",
		BuildDate: "", GoVersion: runtime.Version(), Compiler: runtime.Compiler, Platform: runtime.GOOS + "/" + runtime.GOARCH,
	}
}

// advertiseIP picks the node address: the flag, else the first non-loopback
// IPv4 address, else 127.0.0.1.
func advertiseIP(flag string) (net.IP, error) {
	if flag != "" {
		ip := net.ParseIP(flag)
		if ip == nil {
			return nil, fmt.Errorf("--advertise-address %q is not an IP address", flag)
		}
		return ip, nil
	}
	for _, a := range localIPs() {
		if a.To4() != nil && !a.IsLoopback() {
			return a, nil
		}
	}
	return net.ParseIP("127.0.0.1"), nil
}

func localIPs() []net.IP {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []net.IP
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLinkLocalUnicast() {
			out = append(out, n.IP)
		}
	}
	return out
}

// identity names this server in leader-election Leases.
func identity() string {
	host, _ := os.Hostname()
	return host + "_" + string(uuid.NewUUID())
}

// loopbackHost is where the server's own components reach its API.
func loopbackHost(bind string) string {
	if ip := net.ParseIP(bind); ip != nil && !ip.IsUnspecified() {
		return bind
	}
	return "127.0.0.1"
}

// certificates ensures the CA, the serving and admin certificates and the
// admin kubeconfig, and returns the server's TLS configuration.
func certificates(cfg Config, advertise net.IP) (*tls.Config, *rest.Config, *rest.Config, error) {
	dir := filepath.Join(cfg.DataDir, "pki")
	ca, err := pki.LoadOrCreateCA(dir, "skiff-ca")
	if err != nil {
		return nil, nil, nil, err
	}
	host, _ := os.Hostname()
	dns := []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
	if host != "" {
		dns = append(dns, host)
	}
	ips := []net.IP{net.ParseIP("127.0.0.1"), advertise}
	ips = append(ips, localIPs()...)
	if first, err := firstServiceIP(cfg.ServiceCIDR); err == nil {
		ips = append(ips, first)
	}
	for _, san := range cfg.TLSSANs {
		if ip := net.ParseIP(san); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, san)
		}
	}
	certPEM, keyPEM, err := ca.EnsureLeaf(filepath.Join(dir, "serving"), pki.LeafSpec{CommonName: "kube-apiserver", DNSNames: dns, IPs: ips, Server: true})
	if err != nil {
		return nil, nil, nil, err
	}
	adminCert, adminKey, err := ca.EnsureLeaf(filepath.Join(dir, "admin"), pki.LeafSpec{CommonName: "system:admin", Organization: []string{"system:masters"}, Client: true})
	if err != nil {
		return nil, nil, nil, err
	}
	server := "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.SecurePort))
	if err := pki.WriteKubeconfig(filepath.Join(cfg.DataDir, "admin.kubeconfig"), server, ca.CertPEM, adminCert, adminKey); err != nil {
		return nil, nil, nil, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("load serving certificate: %w", err)
	}
	cmCert, cmKey, err := ca.EnsureLeaf(filepath.Join(dir, "controller-manager"), pki.LeafSpec{CommonName: "system:kube-controller-manager", Client: true})
	if err != nil {
		return nil, nil, nil, err
	}
	loopback := &rest.Config{
		Host:            "https://" + net.JoinHostPort(loopbackHost(cfg.BindAddress), strconv.Itoa(cfg.SecurePort)),
		TLSClientConfig: rest.TLSClientConfig{CAData: ca.CertPEM, CertData: cmCert, KeyData: cmKey, ServerName: "localhost"},
	}
	schedCert, schedKey, err := ca.EnsureLeaf(filepath.Join(dir, "scheduler"), pki.LeafSpec{CommonName: "system:kube-scheduler", Client: true})
	if err != nil {
		return nil, nil, nil, err
	}
	scheduler := rest.CopyConfig(loopback)
	scheduler.TLSClientConfig.CertData, scheduler.TLSClientConfig.KeyData = schedCert, schedKey
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return &tls.Config{
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
	}, loopback, scheduler, nil
}

// nodeCredentials issues the in-process node agent's client certificate
// (CN system:node:<name>, O system:nodes, as the node authorizer expects)
// and its kubelet serving certificate.
func nodeCredentials(cfg Config, loopback *rest.Config) (NodeCredentials, error) {
	dir := filepath.Join(cfg.DataDir, "pki")
	ca, err := pki.LoadOrCreateCA(dir, "skiff-ca")
	if err != nil {
		return NodeCredentials{}, err
	}
	user := "system:node:" + cfg.NodeName
	cert, key, err := ca.EnsureLeaf(filepath.Join(dir, "node-"+cfg.NodeName), pki.LeafSpec{CommonName: user, Organization: []string{"system:nodes"}, Client: true})
	if err != nil {
		return NodeCredentials{}, err
	}
	node := rest.CopyConfig(loopback)
	node.TLSClientConfig.CertData, node.TLSClientConfig.KeyData = cert, key
	node.UserAgent = "skiff-kubelet/" + cfg.NodeName
	ips := []net.IP{net.ParseIP("127.0.0.1")}
	if cfg.NodeIP != nil {
		ips = append(ips, cfg.NodeIP)
	}
	scert, skey, err := ca.EnsureLeaf(filepath.Join(dir, "kubelet-"+cfg.NodeName), pki.LeafSpec{CommonName: user, Organization: []string{"system:nodes"}, DNSNames: []string{cfg.NodeName, "localhost"}, IPs: ips, Server: true})
	if err != nil {
		return NodeCredentials{}, err
	}
	pair, err := tls.X509KeyPair(scert, skey)
	if err != nil {
		return NodeCredentials{}, fmt.Errorf("kubelet serving certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return NodeCredentials{Rest: node, ServingTLS: &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, MinVersion: tls.VersionTLS12}}, nil
}

// kubeletClientTLS is the API server's side of connections to kubelets.
func kubeletClientTLS(dataDir string) (*tls.Config, error) {
	dir := filepath.Join(dataDir, "pki")
	ca, err := pki.LoadOrCreateCA(dir, "skiff-ca")
	if err != nil {
		return nil, err
	}
	cert, key, err := ca.EnsureLeaf(filepath.Join(dir, "apiserver-kubelet-client"), pki.LeafSpec{CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"}, Client: true})
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(cert, key)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

func firstServiceIP(cidr string) (net.IP, error) {
	_, n, err := net.ParseCIDR(cidr)
	if err != nil {
		return nil, err
	}
	ip := n.IP.To4()
	if ip == nil {
		return nil, fmt.Errorf("not IPv4")
	}
	out := make(net.IP, 4)
	copy(out, ip)
	out[3]++
	return out, nil
}
