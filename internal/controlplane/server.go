package controlplane

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"

	"github.com/skiff-sh/skiff/internal/admission"
	"github.com/skiff-sh/skiff/internal/admission/webhook"
	"github.com/skiff-sh/skiff/internal/aggregator"
	"github.com/skiff-sh/skiff/internal/apiserver"
	"github.com/skiff-sh/skiff/internal/audit"
	"github.com/skiff-sh/skiff/internal/auth"
	"github.com/skiff-sh/skiff/internal/authz"
	"github.com/skiff-sh/skiff/internal/component"
	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/flowcontrol"
	"github.com/skiff-sh/skiff/internal/join"
	"github.com/skiff-sh/skiff/internal/openapi"
	"github.com/skiff-sh/skiff/internal/pki"
	"github.com/skiff-sh/skiff/internal/procmem"
	"github.com/skiff-sh/skiff/internal/registry"
	"github.com/skiff-sh/skiff/internal/satoken"
	"github.com/skiff-sh/skiff/internal/scheduler"
	schedconfig "github.com/skiff-sh/skiff/internal/scheduler/config"
	"github.com/skiff-sh/skiff/internal/storage"
	"github.com/skiff-sh/skiff/internal/storage/encryption"
)

// Time limits of the stop order: the controllers and scheduler release
// their Leases; the node agent writes its last pod statuses (while the API
// still serves); the API lets requests in flight finish.
const (
	controllersStopTimeout = 5 * time.Second
	agentStopTimeout       = 20 * time.Second
	apiStopTimeout         = 10 * time.Second
	etcdStopTimeout        = 10 * time.Second
	// bootstrapAttemptTimeout bounds one attempt to create the bootstrap
	// objects; a failed attempt is retried after bootstrapRetry.
	bootstrapAttemptTimeout = 30 * time.Second
	bootstrapRetry          = time.Second
	// migrateTimeout bounds moving an older data dir's allocations.
	migrateTimeout = 30 * time.Second
)

// server is what the components of `skiff server` share: each component's
// Start fills in what the later ones use.
type server struct {
	cfg         Config
	log         *slog.Logger
	started     time.Time
	advertise   net.IP
	tls         *tlsSetup
	controllers []controller.Registration

	etcd   *storage.Embedded
	client *clientv3.Client
	reg    *registry.Registry
	// routes are the aggregated APIs the API server proxies to, and
	// extensionAuth tells their servers whom to trust.
	routes        aggregator.Routes
	extensionAuth *corev1.ConfigMap
	snapshots     *snapshots
	// joiner is the server this one joins through (nil: not joining).
	joiner *joinClient
	// publishBootstrap: this server is the first on its external etcd
	// and publishes the cluster's shared files there (datastore.go).
	publishBootstrap bool
	// stopCaches ends the watch caches' etcd watches.
	stopCaches context.CancelFunc
	// saKey signs ServiceAccount tokens.
	saKey *satoken.Key
	// feed keeps the authorizers' policy current; stopFeed ends it.
	feed         *policyFeed
	stopFeed     context.CancelFunc
	api          *apiserver.Server
	listener     net.Listener
	http         *http.Server
	stopRequests context.CancelFunc
	bootstrapped atomic.Bool
	ca           *pki.CA
	metrics      *prometheus.Registry
	schedMetrics *scheduler.Metrics
	scheme       *runtime.Scheme
	nodeCreds    NodeCredentials
	// encryption says which resources are encrypted in etcd (nil: none).
	encryption *encryption.Config
	// secrets shares the data dir's keys with the other servers and
	// rotates them.
	secrets *secretsEncryption
	// audit records requests (nil: none are).
	audit *apiserver.Audit
	// admissionOptions configure admission plugins (PodSecurity).
	admissionOptions admission.Options
	// nodePKI renews the in-process node's certificates (nil until the
	// agent starts, or without one).
	nodePKI atomic.Pointer[nodePKI]
	// failed carries an error that ends the server (the API listener's).
	failed chan error
	// leaderless is when this server's etcd member was first seen without
	// a leader (unix nanoseconds; 0: it has one).
	leaderless atomic.Int64
}

// tlsSetup is the server's certificate material.
type tlsSetup struct {
	serving   *tls.Config
	loopback  *rest.Config
	scheduler *rest.Config
	// certs issues the server's certificates again as they near expiry.
	certs *servingCert
}

// Run serves until ctx ends, then shuts down cleanly: the components below
// start in order and stop in reverse.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	s, err := newServer(cfg, log)
	if err != nil {
		return err
	}
	err = component.Run(ctx, log, s.components(), s.failed)
	if s.http == nil {
		s.listener.Close() // the API never started serving it
	}
	log.Info("stopped")
	return err
}

// components is the server in start order. Each one's After names what it
// stands on; the stop order is the reverse, so controllers and the node
// agent stop while the API still serves their last writes.
func (s *server) components() []component.Component {
	list := []component.Component{
		{Name: "etcd", Start: s.startEtcd, Stop: s.stopEtcd, StopTimeout: etcdStopTimeout},
		{Name: "registry", After: []string{"etcd"}, Start: s.startRegistry, Stop: s.stopRegistry},
		{Name: "api", After: []string{"registry"}, Start: s.startAPI, Stop: s.stopAPI, StopTimeout: apiStopTimeout},
	}
	if s.cfg.Agent != nil {
		agent := component.Background("node-agent", []string{"api"}, agentStopTimeout, s.log, s.runAgent)
		run := agent.Start
		agent.Start = func(ctx context.Context) error {
			// Credentials first: without them the node cannot start at all.
			n, creds, err := nodeCredentials(s.cfg, s.tls.loopback)
			if err != nil {
				return err
			}
			s.nodePKI.Store(n)
			s.nodeCreds = creds
			return run(ctx)
		}
		list = append(list, agent)
	}
	list = append(list, component.Component{Name: "bootstrap", After: []string{"api"}, Start: s.bootstrap})
	if !s.cfg.DisableScheduler {
		list = append(list, component.Background("scheduler", []string{"bootstrap"}, controllersStopTimeout, s.log, s.runScheduler))
	}
	return append(list, component.Background("controller-manager", []string{"bootstrap"}, controllersStopTimeout, s.log, s.runControllers))
}

// newServer does what needs no component running: the data dir, the
// advertised address, certificates and the controller selection.
func newServer(cfg Config, log *slog.Logger) (_ *server, err error) {
	s := &server{cfg: cfg, log: log, started: time.Now(), failed: make(chan error, 1)}
	if err := checkSnapshotConfig(cfg); err != nil {
		return nil, err
	}
	s.snapshots = &snapshots{s: s, dir: cfg.EtcdSnapshotDir}
	if s.snapshots.dir == "" {
		s.snapshots.dir = filepath.Join(cfg.DataDir, "snapshots")
	}
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "pki"), 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	if err := s.prepareCluster(); err != nil {
		return nil, err
	}
	if s.advertise, err = advertiseIP(cfg.AdvertiseIP); err != nil {
		return nil, err
	}
	// The API's port is taken first: with --secure-port 0 the kernel picks
	// one, and the kubeconfigs, certificates' callers and the kubernetes
	// Service's endpoints all need the real one.
	addr := net.JoinHostPort(cfg.BindAddress, strconv.Itoa(cfg.SecurePort))
	if s.listener, err = net.Listen("tcp", addr); err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	defer func() {
		if err != nil {
			s.listener.Close()
		}
	}()
	s.cfg.SecurePort = s.listener.Addr().(*net.TCPAddr).Port
	cfg = s.cfg
	serving, loopback, schedulerRest, certs, err := certificates(cfg, s.advertise)
	if err != nil {
		return nil, err
	}
	s.tls = &tlsSetup{serving: serving, loopback: loopback, scheduler: schedulerRest, certs: certs}
	if s.controllers, err = controller.Select(Controllers(), cfg.Controllers); err != nil {
		return nil, err
	}
	// A bad encryption configuration or audit policy stops the server
	// before anything starts, naming the file and field.
	if s.encryption, err = encryptionConfig(cfg); err != nil {
		return nil, err
	}
	if cfg.AdmissionControlConfigFile != "" {
		if s.admissionOptions, err = admission.LoadConfig(cfg.AdmissionControlConfigFile); err != nil {
			return nil, err
		}
	}
	if cfg.AuditPolicyFile != "" && cfg.AuditLog.Path != "" {
		s.audit = &apiserver.Audit{}
		if s.audit.Policy, err = audit.LoadPolicy(cfg.AuditPolicyFile); err != nil {
			return nil, err
		}
		if s.audit.Log, err = audit.NewLog(cfg.AuditLog); err != nil {
			return nil, err
		}
	}
	if cfg.Ingress != nil {
		settings := *cfg.Ingress
		if settings.StatusIP == "" {
			settings.StatusIP = s.advertise.String()
		}
		s.controllers = append(s.controllers, ingressRegistration(settings))
	}
	if s.cfg.Scheduler == nil {
		s.cfg.Scheduler = schedconfig.Default()
	}
	return s, nil
}

// etcdMemberName is the embedded member's name when it is alone.
const etcdMemberName = "skiff"

// memberName is this server's etcd member name: "skiff" alone (as
// always), its node name or host and advertise address in a cluster of
// servers, where names must differ.
func (s *server) memberName() string {
	if !s.clusterMember() {
		return etcdMemberName
	}
	if s.cfg.Agent != nil && s.cfg.NodeName != "" {
		// Named for its Node, which is unique: deleting the Node
		// removes the member (removeMembersOfDeletedNodes).
		return s.cfg.NodeName
	}
	name := s.cfg.NodeName
	if name == "" {
		name, _ = os.Hostname()
	}
	return name + "-" + strings.ReplaceAll(s.advertise.String(), ".", "-")
}

// clusterMember reports whether this server's etcd is one of several (or
// was made ready to be: --cluster-init).
func (s *server) clusterMember() bool {
	_, err := os.Stat(filepath.Join(s.cfg.DataDir, haMarker))
	return err == nil
}

// externalEtcdClient connects to the etcd cluster of --etcd-endpoints.
func externalEtcdClient(cfg Config) (*clientv3.Client, error) {
	var tlsCfg *tls.Config
	if cfg.EtcdCAFile != "" || cfg.EtcdCertFile != "" {
		info := transport.TLSInfo{CertFile: cfg.EtcdCertFile, KeyFile: cfg.EtcdKeyFile, TrustedCAFile: cfg.EtcdCAFile}
		var err error
		if tlsCfg, err = info.ClientConfig(); err != nil {
			return nil, fmt.Errorf("etcd client TLS: %w", err)
		}
	}
	client, err := clientv3.New(clientv3.Config{Endpoints: cfg.EtcdEndpoints, TLS: tlsCfg, DialTimeout: 10 * time.Second, Logger: zap.NewNop(), MaxCallSendMsgSize: 8 << 20, MaxCallRecvMsgSize: 512 << 20})
	if err != nil {
		return nil, fmt.Errorf("connect to etcd %v: %w", cfg.EtcdEndpoints, err)
	}
	return client, nil
}

// startEtcd connects to the external etcd cluster, or starts the embedded
// member: with --cluster-reset as a new one-member cluster, from the
// snapshot --cluster-reset-restore-path names if set.
func (s *server) startEtcd(ctx context.Context) error {
	if len(s.cfg.EtcdEndpoints) > 0 {
		client, err := externalEtcdClient(s.cfg)
		if err != nil {
			return err
		}
		s.client = client
		return nil
	}
	ha := s.clusterMember()
	var peerIPs []net.IP
	peerHost := ""
	if ha {
		if s.cfg.EtcdPeerPort == 0 {
			return fmt.Errorf("a server of several needs a fixed --etcd-peer-port")
		}
		peerIPs, peerHost = []net.IP{s.advertise}, s.advertise.String()
	}
	etcdTLS, err := etcdCertificates(s.cfg.DataDir, peerIPs...)
	if err != nil {
		return err
	}
	etcdDir := filepath.Join(s.cfg.DataDir, "etcd")
	var initialCluster string
	peer := "https://" + net.JoinHostPort(peerHost, strconv.Itoa(s.cfg.EtcdPeerPort))
	if _, err := os.Stat(etcdDir); err == nil && s.joiner != nil {
		if err := s.rejoinIfRemoved(ctx, etcdDir, peer); err != nil {
			return err
		}
	}
	if _, err := os.Stat(etcdDir); os.IsNotExist(err) && s.joiner != nil {
		var ans memberAnswer
		if err := s.joiner.addMember(ctx, memberRequest{Name: s.memberName(), PeerURL: peer}, &ans, s.log); err != nil {
			return fmt.Errorf("join the etcd cluster: %w", err)
		}
		initialCluster = ans.InitialCluster
		s.log.Info("joining the etcd cluster as a learner", "initial_cluster", initialCluster)
	}
	if path := s.cfg.ClusterResetRestorePath; path != "" {
		// The member's recorded peer address: the advertised one for a
		// server of several, which the others join through; any port on
		// loopback for a lone server (a one-member cluster never dials it).
		restored := peer
		if !ha {
			port := s.cfg.EtcdPeerPort
			if port == 0 {
				port = 2380
			}
			restored = fmt.Sprintf("https://127.0.0.1:%d", port)
		}
		if _, err := storage.RestoreSnapshot(path, etcdDir, s.memberName(), restored, s.log); err != nil {
			return err
		}
	}
	embedded, err := storage.StartEmbedded(storage.EmbeddedConfig{DataDir: etcdDir, ClientPort: s.cfg.EtcdClientPort, PeerPort: s.cfg.EtcdPeerPort, Name: s.memberName(),
		DiskReserve: s.cfg.EtcdDiskReserve, TLS: etcdTLS, ForceNewCluster: s.cfg.ClusterReset,
		PeerHost: peerHost, InitialCluster: initialCluster, Existing: initialCluster != ""}, s.log)
	if err != nil {
		return fmt.Errorf("%w\n%s", err, s.restoreHint(etcdDir))
	}
	if embedded.IsLearner() && s.joiner != nil {
		if err := s.joiner.promote(ctx, embedded.ID(), embedded.IsLearner); err != nil {
			embedded.Close()
			return err
		}
		s.log.Info("etcd member promoted", "id", fmt.Sprintf("%x", embedded.ID()))
	}
	s.etcd, s.client = embedded, embedded.Client()
	return nil
}

// rejoinIfRemoved sets this server's etcd data aside (etcd.old-<time>)
// when the cluster it joins through no longer lists its member (see
// stillMember), so that it joins afresh as a learner.
func (s *server) rejoinIfRemoved(ctx context.Context, etcdDir, peer string) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	members, err := s.joiner.members(ctx)
	if err != nil {
		s.log.Warn("cannot list the etcd members of the server to join through; starting from this server's own etcd data", "server", s.joiner.server, "err", err)
		return nil
	}
	if stillMember(members, peer) {
		return nil
	}
	aside := etcdDir + ".old-" + time.Now().UTC().Format("20060102T150405")
	if err := os.Rename(etcdDir, aside); err != nil {
		return fmt.Errorf("set aside the etcd data of a removed member: %w", err)
	}
	s.log.Warn("this server's etcd member is not in the cluster it joins (restored, reset, or removed): its etcd data is set aside and it joins afresh", "set_aside", aside, "peer", peer)
	return nil
}

func (s *server) stopEtcd(context.Context) error {
	if s.etcd != nil {
		s.etcd.Close()
		return nil
	}
	return s.client.Close()
}

// startRegistry builds the registry, moves an older data dir's ClusterIP
// allocations (before anything is served, so no Service is given an
// address an old allocation record still holds) and starts the caches.
func (s *server) startRegistry(ctx context.Context) error {
	var err error
	if s.scheme, err = NewScheme(); err != nil {
		return err
	}
	s.reg, err = registry.New(s.client, s.scheme, newProtoCodec(s.scheme), registry.AllocatorConfig{ServiceCIDR: s.cfg.ServiceCIDR, NodePortMin: s.cfg.NodePortMin, NodePortMax: s.cfg.NodePortMax}, s.log)
	if err != nil {
		return err
	}
	if err := s.reg.SetEncryption(s.encryption); err != nil {
		return err
	}
	// The cluster's keys are this server's before any cache reads a
	// Secret (a server down through a rotation catches up here).
	s.secrets = &secretsEncryption{s: s}
	var keysRev int64
	if s.secrets.shares() {
		if keysRev, err = s.secrets.join(ctx); err != nil {
			return err
		}
	}
	mctx, cancel := context.WithTimeout(ctx, migrateTimeout)
	moved, err := s.reg.MigrateClusterIPs(mctx, s.client)
	cancel()
	if err != nil {
		return err
	}
	if moved > 0 {
		s.log.Info("moved cluster IP allocations into IPAddress objects", "count", moved)
	}
	var cacheCtx context.Context
	cacheCtx, s.stopCaches = context.WithCancel(context.Background())
	for _, c := range s.reg.Caches() {
		go c.Run(cacheCtx)
	}
	s.reg.RunCustom(cacheCtx)
	if s.secrets.shares() {
		go s.secrets.follow(cacheCtx, keysRev)
	}
	// APIService is served as a built-in definition of the registry's
	// custom-resource machinery.
	if err := s.reg.ServeBuiltin(apiServiceDefinition(), registry.Builtin{NameFn: registry.APIServiceName, Validate: validateAPIService, PatchStruct: aggregator.APIService{},
		Proto: registry.ProtoCodec{Marshal: aggregator.MarshalProto, Unmarshal: func(raw []byte) (runtime.Object, error) { return aggregator.UnmarshalProto(raw) }}}); err != nil {
		return fmt.Errorf("serve APIService: %w", err)
	}
	return nil
}

func (s *server) stopRegistry(context.Context) error {
	s.stopCaches()
	return nil
}

// ready is /readyz: caches synced, bootstrap objects made, etcd answering.
func (s *server) ready(ctx context.Context) error {
	for _, c := range s.reg.Caches() {
		if !c.Ready() {
			return errors.New("informer-sync: watch caches not yet synced")
		}
	}
	if !s.bootstrapped.Load() {
		return errors.New("poststarthook/bootstrap-controller: bootstrap objects not yet created")
	}
	if _, err := s.client.Get(ctx, "health", clientv3.WithSerializable()); err != nil {
		return fmt.Errorf("etcd: %v", err)
	}
	return nil
}

// startAPI serves the Kubernetes API over HTTPS, once the authorizers hold
// the stored policy.
func (s *server) startAPI(ctx context.Context) error {
	authn, err := auth.New(s.cfg.TokenAuthFile)
	if err != nil {
		return err
	}
	modes := s.cfg.AuthorizationModes
	if len(modes) == 0 {
		modes = []string{ModeNode, ModeRBAC}
	}
	s.feed = &policyFeed{rbac: authz.NewRBAC(), node: authz.NewNode(authz.NodeRules()),
		flow: &flowcontrol.Controller{Seats: s.cfg.MaxRequestsInflight + s.cfg.MaxMutatingRequestsInflight}, flowChanged: make(chan struct{}, 1)}
	authorizer, err := authorizer(modes, s.feed.rbac, s.feed.node)
	if err != nil {
		return err
	}
	s.reg.Authz = reviewAuthz{decide: authorizer, rbac: s.feed.rbac}
	feedCtx, stopFeed := context.WithCancel(context.Background())
	s.stopFeed = stopFeed
	go s.renewCertificates(feedCtx)
	go s.keepFlowSchemaStatus(feedCtx, s.feed.flowChanged)
	if err := s.feed.start(ctx, feedCtx, s.reg); err != nil {
		return err
	}
	s.metrics = prometheus.NewRegistry()
	s.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.schedMetrics = scheduler.NewMetrics(s.metrics)
	kubeletTLS, err := kubeletClientTLS(s.cfg.DataDir)
	if err != nil {
		return err
	}
	if s.ca, err = pki.LoadOrCreateCA(filepath.Join(s.cfg.DataDir, "pki"), "skiff-ca"); err != nil {
		return err
	}
	// The node-join token: its bootstrap half may only ask for node
	// certificates (auto-approved by the csrsigning controller).
	token, err := join.LoadOrCreate(filepath.Join(s.cfg.DataDir, "node-token"), s.ca.Cert.Raw)
	if err != nil {
		return err
	}
	authn.AddToken(token.Bearer(), auth.User{Name: token.User(), Groups: token.Groups()})
	// The server token lets another server join (the shared CAs and keys,
	// an etcd membership): it is no API identity at all.
	serverToken, err := join.LoadOrCreate(filepath.Join(s.cfg.DataDir, serverTokenFile), s.ca.Cert.Raw)
	if err != nil {
		return err
	}
	authn.ClientCAs = x509.NewCertPool()
	authn.ClientCAs.AddCert(s.ca.Cert)
	issuer := s.cfg.ServiceAccountIssuer
	if issuer == "" {
		issuer = "https://kubernetes.default.svc.cluster.local"
	}
	saKey, err := satoken.LoadOrCreate(filepath.Join(s.cfg.DataDir, "pki"), issuer)
	if err != nil {
		return err
	}
	s.saKey = saKey
	authn.Audiences = []string{issuer}
	authn.Tokens = &satoken.Authenticator{Key: saKey, Objects: cacheObjects{s.reg}}
	s.admissionOptions.Webhooks = &webhook.Client{Resolve: serviceEndpoint(s.reg)}
	s.admissionOptions.Authorizer = authorizer
	s.reg.Webhooks = s.admissionOptions.Webhooks
	if s.reg.Admission, err = admission.New(s.reg.AdmissionObjects(), s.cfg.EnableAdmissionPlugins, s.cfg.DisableAdmissionPlugins, s.admissionOptions); err != nil {
		return err
	}
	s.reg.Tokens = &registry.Tokens{Key: saKey, Audiences: authn.Audiences, Authn: authn, ExtendExpiration: s.cfg.ServiceAccountExtendTokenExpiration}
	go s.serveCustomResources(feedCtx)
	go s.keepLocalAPIServices(feedCtx)
	fp, err := loadFrontProxy(s.cfg.DataDir)
	if err != nil {
		return err
	}
	// Every shared file exists now: the first server on an external etcd
	// publishes them for the servers that come after it.
	if s.publishBootstrap {
		if err := s.publishBootstrapData(ctx, serverToken); err != nil {
			return err
		}
	}
	s.extensionAuth = extensionAuthentication(s.ca.CertPEM, fp.caPEM)
	go s.keepAggregatedAPIs(feedCtx, fp)
	go s.keepMasterLease(feedCtx)
	if s.etcd != nil {
		go s.trackLeader(feedCtx)
	}
	if s.etcd != nil && s.clusterMember() {
		go s.removeMembersOfDeletedNodes(feedCtx)
	}
	go s.keepKubernetesEndpoints(feedCtx)
	if spec := s.cfg.EtcdSnapshotScheduleCron; spec != "" {
		go s.snapshots.schedule(feedCtx, spec, s.cfg.EtcdSnapshotRetention)
	}
	spec := openapi.New(s.reg)
	go spec.KeepWarm(feedCtx)
	s.api = apiserver.New(apiserver.Config{
		KubeletTLS: kubeletTLS, CAPEM: s.ca.CertPEM, Operations: s.operations(), Public: s.bootstrapHandlers(serverToken), Degraded: s.degraded, Audit: s.audit, FlowControl: s.flowControl(),
		Registry: s.reg, Codecs: apiserver.NewCodecs(s.scheme), Authn: authn, Authorizer: authorizer, Anonymous: s.cfg.AnonymousAuth,
		ServiceAccountKey: saKey, ExternalURL: "https://" + net.JoinHostPort(s.advertise.String(), strconv.Itoa(s.cfg.SecurePort)),
		Log: s.log, Ready: s.ready, Metrics: s.metrics,
		Version:   versionInfo(s.cfg.Version),
		Profiling: s.cfg.Profiling, OpenAPIV2: spec.V2, OpenAPIV2Proto: spec.V2Proto, OpenAPIV3: spec.V3, Aggregator: &s.routes,
	})
	var baseCtx context.Context
	baseCtx, s.stopRequests = context.WithCancel(context.Background())
	// Upstream's timeouts: an idle keep-alive connection goes after 90 s,
	// and a client that never finishes its TLS handshake or headers after
	// 32 s (the handshake is bounded by the same deadline).
	s.http = &http.Server{
		Handler:           s.api,
		TLSConfig:         s.tls.serving,
		ReadHeaderTimeout: 32 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    1 << 20,
		BaseContext:       func(net.Listener) context.Context { return baseCtx },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	ln := s.listener
	addr := ln.Addr().String()
	var nofile unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &nofile); err == nil {
		ln = apiserver.LimitListener(ln, apiserver.MaxConnections(nofile.Cur))
	}
	s.listener = ln
	go func() {
		if err := s.http.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.failed <- fmt.Errorf("serve: %w", err)
		}
	}()
	s.log.Info("serving the Kubernetes API", "address", "https://"+addr, "kubeconfig", filepath.Join(s.cfg.DataDir, "admin.kubeconfig"), "since_start", time.Since(s.started).String())
	return nil
}

// leaderlessGrace is how long this server's etcd member may know no
// leader before its answers warn that they may be stale; trackLeader
// looks every leaderCheck.
const (
	leaderlessGrace = 3 * time.Second
	leaderCheck     = 250 * time.Millisecond
)

// trackLeader records since when the embedded etcd member knows no leader,
// until ctx ends.
func (s *server) trackLeader(ctx context.Context) {
	t := time.NewTicker(leaderCheck)
	defer t.Stop()
	for {
		if s.etcd.HasLeader() {
			s.leaderless.Store(0)
		} else {
			s.leaderless.CompareAndSwap(0, time.Now().UnixNano())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// degraded is the warning every answer carries while this server's etcd
// member knows no leader (a minority: writes fail, reads come from caches
// nothing updates).
func (s *server) degraded() string {
	if s.etcd == nil {
		return ""
	}
	return staleWarning(s.etcd.HasLeader(), s.leaderless.Load(), time.Now())
}

// staleWarning is the warning for a member that has a leader or not, and
// has had none since leaderless (unix nanoseconds; 0: not yet noticed): a
// leader election (a server of several stopped) takes about a second, and
// answers within it carry no warning.
func staleWarning(hasLeader bool, leaderless int64, now time.Time) string {
	if hasLeader || leaderless == 0 || now.Sub(time.Unix(0, leaderless)) < leaderlessGrace {
		return ""
	}
	return "the cluster's etcd has lost its quorum: this server's answers may be stale and writes fail until a majority of the servers is back (or one is started with --cluster-reset)"
}

// operations are skiff's own endpoints (cluster-admin only): secrets
// encryption and etcd snapshots.
func (s *server) operations() map[string]http.Handler {
	ops := s.secrets.handlers()
	maps.Copy(ops, s.snapshots.handlers())
	ops[EtcdMembersPath] = s.membersHandler()
	return ops
}

// stopAPI fails /readyz, ends requests in flight (watches) and closes the
// listener once handlers return.
func (s *server) stopAPI(ctx context.Context) error {
	s.log.Info("shutting down")
	s.api.ShuttingDown.Store(true)
	s.stopRequests()
	defer s.stopFeed()
	if err := s.http.Shutdown(ctx); err != nil {
		return s.http.Close()
	}
	return nil
}

func (s *server) runAgent(ctx context.Context) error { return s.cfg.Agent(ctx, s.nodeCreds) }

// bootstrap creates the objects every cluster has (namespaces, the
// kubernetes Service, priority classes...), retrying until it succeeds or
// the server stops; the scheduler and controllers start after it.
func (s *server) bootstrap(ctx context.Context) error {
	objs := bootstrapObjects(s.reg.IPs.First(), s.cfg.ServiceCIDR, s.cfg.ClusterDNS, s.cfg.Ingress != nil, s.advertise, int32(s.cfg.SecurePort), filepath.Join(s.cfg.DataDir, "storage"))
	for {
		bctx, cancel := context.WithTimeout(ctx, bootstrapAttemptTimeout)
		err := bootstrap(bctx, s.reg, objs)
		if err == nil {
			err = reconcilePolicy(bctx, s.reg, s.feed)
		}
		if err == nil {
			err = writeExtensionAuthentication(bctx, s.reg, s.extensionAuth)
		}
		if err == nil && s.cfg.EnablePriorityAndFairness {
			err = reconcileFlowControl(bctx, s.reg)
		}
		cancel()
		if err == nil {
			break
		}
		s.log.Warn("bootstrap failed; retrying", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(bootstrapRetry):
		}
	}
	s.bootstrapped.Store(true)
	s.log.Info("bootstrap objects ready", "since_start", time.Since(s.started).String())
	// Start-up parses schemas and primes caches, leaving garbage that an
	// idle server would hold for minutes: return it now, with the
	// executable's start-up pages (see procmem).
	debug.FreeOSMemory()
	s.log.Debug("released start-up memory", "executable_bytes_advised", procmem.ReleaseExecutablePages())
	return nil
}

func (s *server) runScheduler(ctx context.Context) error {
	return scheduler.RunLeader(ctx, scheduler.RunConfig{Rest: s.tls.scheduler, Config: s.cfg.Scheduler, Identity: identity(), Metrics: s.schedMetrics, Log: s.log})
}

func (s *server) runControllers(ctx context.Context) error {
	return controller.RunManager(ctx, controller.ManagerConfig{Rest: s.tls.loopback, Controllers: s.controllers, Identity: identity(), RootCA: s.tls.loopback.TLSClientConfig.CAData, CA: s.ca, TokenKey: s.saKey, Settings: s.cfg.ControllerSettings, Log: s.log})
}

// certRenewCheck is how often a running server looks at its certificates'
// expiry (each is issued again when fewer than pki.RenewBefore remain).
const certRenewCheck = 12 * time.Hour

// renewCertificates keeps the server's certificates current while it runs:
// the serving one is swapped in place, clients reload theirs from files.
func (s *server) renewCertificates(ctx context.Context) {
	t := time.NewTicker(certRenewCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.tls.certs.renew(); err != nil {
				s.log.Warn("renew certificates", "err", err)
			}
			if n := s.nodePKI.Load(); n != nil {
				if err := n.renew(); err != nil {
					s.log.Warn("renew the node's certificates", "err", err)
				}
			}
		}
	}
}

// encryptionConfig is what encrypts resources in etcd: the file of
// --encryption-provider-config, else (--secrets-encryption, on by default)
// the data dir's own, made with a fresh key on first start; nil: nothing.
func encryptionConfig(cfg Config) (*encryption.Config, error) {
	switch {
	case cfg.EncryptionProviderConfig != "":
		return encryption.Load(cfg.EncryptionProviderConfig)
	case cfg.SecretsEncryption:
		return encryption.EnsureDefault(filepath.Join(cfg.DataDir, "pki", "encryption-config.yaml"), time.Now())
	}
	return nil, nil
}

// flowControl is API Priority and Fairness, unless it is turned off.
func (s *server) flowControl() *flowcontrol.Controller {
	if !s.cfg.EnablePriorityAndFairness {
		return nil
	}
	return s.feed.flow
}
