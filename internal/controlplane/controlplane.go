// Package controlplane assembles skiff server: certificates, etcd, the
// registry and its caches, bootstrap objects and the HTTPS API.
package controlplane

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/rest"

	"github.com/skiff-sh/skiff/internal/audit"
	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/ingress"
	"github.com/skiff-sh/skiff/internal/pki"
	schedconfig "github.com/skiff-sh/skiff/internal/scheduler/config"
	"github.com/skiff-sh/skiff/internal/storage"
)

// KubernetesVersion is the API release skiff serves.
const KubernetesVersion = "v1.37.2"

// Config is skiff server's configuration.
type Config struct {
	DataDir       string
	BindAddress   string
	SecurePort    int
	AdvertiseIP   string
	TLSSANs       []string
	EtcdEndpoints []string
	// EtcdCAFile, EtcdCertFile and EtcdKeyFile are the client TLS of an
	// external etcd (its CA; this server's certificate and key).
	EtcdCAFile, EtcdCertFile, EtcdKeyFile string
	EtcdClientPort                        int
	EtcdPeerPort                          int
	// EtcdDiskReserve is the embedded etcd's free-space floor (0: default).
	EtcdDiskReserve uint64
	// EtcdSnapshotDir holds the snapshots (default <data-dir>/snapshots);
	// EtcdSnapshotScheduleCron, when set, saves one at the times it names,
	// keeping the newest EtcdSnapshotRetention.
	EtcdSnapshotDir          string
	EtcdSnapshotScheduleCron string
	EtcdSnapshotRetention    int
	// ClusterReset starts the embedded member as a new one-member cluster
	// (etcd's force-new-cluster), keeping its data, or, with
	// ClusterResetRestorePath, from that snapshot.
	ClusterReset            bool
	ClusterResetRestorePath string
	// ClusterInit makes this server's embedded etcd the first member of a
	// cluster of servers (peers on the advertise address); JoinServer and
	// JoinToken (the first server's server-token) join another server's;
	// with EtcdEndpoints, JoinToken opens the cluster's files in that etcd.
	ClusterInit bool
	JoinServer  string
	JoinToken   string
	ServiceCIDR string
	// Ingress, when set, runs the built-in ingress controller.
	Ingress *ingress.Settings
	// ClusterDNS is the ClusterIP of the kube-dns Service the control
	// plane creates ("": none).
	ClusterDNS    string
	NodePortMin   int
	NodePortMax   int
	TokenAuthFile string
	Profiling     bool
	// AuthorizationModes are the authorizers in order (Node, RBAC,
	// AlwaysAllow); empty is Node,RBAC.
	AuthorizationModes []string
	// ServiceAccountIssuer is the iss claim of ServiceAccount tokens and
	// the API's own audience.
	ServiceAccountIssuer string
	// EncryptionProviderConfig is an EncryptionConfiguration file; without
	// one, SecretsEncryption encrypts Secrets with the data dir's own key.
	EncryptionProviderConfig string
	SecretsEncryption        bool
	// EnablePriorityAndFairness classifies and queues requests (API
	// Priority and Fairness) among MaxRequestsInflight +
	// MaxMutatingRequestsInflight seats, as upstream shares them.
	EnablePriorityAndFairness   bool
	MaxRequestsInflight         int
	MaxMutatingRequestsInflight int
	// AuditPolicyFile and AuditLog record requests (upstream's
	// --audit-policy-file and --audit-log-*); both are needed.
	AuditPolicyFile string
	AuditLog        audit.LogConfig
	// EnableAdmissionPlugins and DisableAdmissionPlugins change the
	// default admission chain (upstream's flags of the same names).
	EnableAdmissionPlugins  []string
	DisableAdmissionPlugins []string
	// AdmissionControlConfigFile configures plugins (PodSecurity's
	// defaults and exemptions), as upstream's AdmissionConfiguration.
	AdmissionControlConfigFile string
	// ServiceAccountExtendTokenExpiration signs pods' kube-api-access
	// tokens valid for a year (see registry.Tokens.ExtendExpiration).
	ServiceAccountExtendTokenExpiration bool
	// AnonymousAuth serves requests without credentials as
	// system:anonymous; false refuses them with 401.
	AnonymousAuth bool
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
// admin kubeconfig, and returns the server's TLS configuration and the
// client configurations of the controller manager and the scheduler. The
// clients read their certificates from files, which client-go reloads when
// they change; the serving certificate comes from serving.current, which
// renew replaces: a renewal while running needs no restart.
func certificates(cfg Config, advertise net.IP) (*tls.Config, *rest.Config, *rest.Config, *servingCert, error) {
	dir := filepath.Join(cfg.DataDir, "pki")
	serving := &servingCert{cfg: cfg, advertise: advertise}
	if err := serving.renew(); err != nil {
		return nil, nil, nil, nil, err
	}
	ca, err := pki.LoadOrCreateCA(dir, "skiff-ca")
	if err != nil {
		return nil, nil, nil, nil, err
	}
	loopback := &rest.Config{
		Host: "https://" + net.JoinHostPort(loopbackHost(cfg.BindAddress), strconv.Itoa(cfg.SecurePort)),
		TLSClientConfig: rest.TLSClientConfig{CAData: ca.CertPEM, ServerName: "localhost",
			CertFile: filepath.Join(dir, "controller-manager.crt"), KeyFile: filepath.Join(dir, "controller-manager.key")},
	}
	scheduler := rest.CopyConfig(loopback)
	scheduler.TLSClientConfig.CertFile, scheduler.TLSClientConfig.KeyFile = filepath.Join(dir, "scheduler.crt"), filepath.Join(dir, "scheduler.key")
	return &tls.Config{
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return serving.current.Load(), nil },
		// The certificate is verified by the authenticator, so one from
		// another CA (or expired) is a 401, as upstream, not a failed
		// handshake.
		ClientAuth:   tls.RequestClientCert,
		MinVersion:   tls.VersionTLS12,
		CipherSuites: pki.CipherSuites,
		NextProtos:   []string{"h2", "http/1.1"},
	}, loopback, scheduler, serving, nil
}

// servingCert is the API's serving certificate and the certificates of
// the server's own clients, issued again when fewer than pki.RenewBefore
// remain (or the names changed).
type servingCert struct {
	cfg       Config
	advertise net.IP
	current   atomic.Pointer[tls.Certificate]
}

// renew ensures every certificate of the server (serving, admin and its
// kubeconfig, controller manager, scheduler) and loads the serving one.
func (s *servingCert) renew() error {
	cfg := s.cfg
	dir := filepath.Join(cfg.DataDir, "pki")
	ca, err := pki.LoadOrCreateCA(dir, "skiff-ca")
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	dns := []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
	if host != "" {
		dns = append(dns, host)
	}
	ips := []net.IP{net.ParseIP("127.0.0.1"), s.advertise}
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
		return err
	}
	adminCert, adminKey, err := ca.EnsureLeaf(filepath.Join(dir, "admin"), pki.LeafSpec{CommonName: "system:admin", Organization: []string{"system:masters"}, Client: true})
	if err != nil {
		return err
	}
	server := "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.SecurePort))
	if err := pki.WriteKubeconfig(filepath.Join(cfg.DataDir, "admin.kubeconfig"), server, ca.CertPEM, adminCert, adminKey); err != nil {
		return err
	}
	for name, cn := range map[string]string{"controller-manager": "system:kube-controller-manager", "scheduler": "system:kube-scheduler"} {
		if _, _, err := ca.EnsureLeaf(filepath.Join(dir, name), pki.LeafSpec{CommonName: cn, Client: true}); err != nil {
			return err
		}
	}
	if cfg.NodeName != "" && cfg.Agent != nil {
		if _, _, err := ca.EnsureLeaf(filepath.Join(dir, "node-"+cfg.NodeName), pki.LeafSpec{CommonName: "system:node:" + cfg.NodeName, Organization: []string{"system:nodes"}, Client: true}); err != nil {
			return err
		}
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("load serving certificate: %w", err)
	}
	s.current.Store(&pair)
	return nil
}

// nodePKI issues the in-process node agent's client certificate (CN
// system:node:<name>, O system:nodes, as the node authorizer expects) and
// its kubelet serving certificate, and issues them again when they are due
// (renew, at start and with the server's own).
type nodePKI struct {
	cfg     Config
	ca      *pki.CA
	serving atomic.Pointer[tls.Certificate]
}

func (n *nodePKI) clientBase() string {
	return filepath.Join(n.cfg.DataDir, "pki", "node-"+n.cfg.NodeName)
}

// renew ensures both certificates and loads the serving one.
func (n *nodePKI) renew() error {
	user := "system:node:" + n.cfg.NodeName
	if _, _, err := n.ca.EnsureLeaf(n.clientBase(), pki.LeafSpec{CommonName: user, Organization: []string{"system:nodes"}, Client: true}); err != nil {
		return err
	}
	ips := []net.IP{net.ParseIP("127.0.0.1")}
	if n.cfg.NodeIP != nil {
		ips = append(ips, n.cfg.NodeIP)
	}
	scert, skey, err := n.ca.EnsureLeaf(filepath.Join(n.cfg.DataDir, "pki", "kubelet-"+n.cfg.NodeName),
		pki.LeafSpec{CommonName: user, Organization: []string{"system:nodes"}, DNSNames: []string{n.cfg.NodeName, "localhost"}, IPs: ips, Server: true})
	if err != nil {
		return err
	}
	pair, err := tls.X509KeyPair(scert, skey)
	if err != nil {
		return fmt.Errorf("kubelet serving certificate: %w", err)
	}
	n.serving.Store(&pair)
	return nil
}

// nodeCredentials makes the in-process node's certificates and the
// configurations that use them.
func nodeCredentials(cfg Config, loopback *rest.Config) (*nodePKI, NodeCredentials, error) {
	ca, err := pki.LoadOrCreateCA(filepath.Join(cfg.DataDir, "pki"), "skiff-ca")
	if err != nil {
		return nil, NodeCredentials{}, err
	}
	n := &nodePKI{cfg: cfg, ca: ca}
	if err := n.renew(); err != nil {
		return nil, NodeCredentials{}, err
	}
	// From files, as the server's own clients: client-go reloads a renewed
	// certificate.
	node := rest.CopyConfig(loopback)
	node.TLSClientConfig.CertFile, node.TLSClientConfig.KeyFile = n.clientBase()+".crt", n.clientBase()+".key"
	node.UserAgent = "skiff-kubelet/" + cfg.NodeName
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	serving := &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return n.serving.Load(), nil },
		ClientCAs: pool, MinVersion: tls.VersionTLS12, CipherSuites: pki.CipherSuites}
	return n, NodeCredentials{Rest: node, ServingTLS: serving}, nil
}

// kubeletClientTLS is the API server's side of connections to kubelets.
func kubeletClientTLS(dataDir string) (*tls.Config, error) {
	dir := filepath.Join(dataDir, "pki")
	ca, err := pki.LoadOrCreateCA(dir, "skiff-ca")
	if err != nil {
		return nil, err
	}
	// Not in system:masters: the kubelet admits it by name, and were it to
	// leak it would not be an administrator of the API.
	cert, key, err := ca.EnsureLeaf(filepath.Join(dir, "apiserver-kubelet-client"), pki.LeafSpec{CommonName: "kube-apiserver-kubelet-client", Client: true})
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

// etcdCertificates are the embedded etcd's TLS: its own CA (pki/etcd), so
// that no certificate the cluster CA signs for users opens the database; a
// serving and peer certificate for loopback; and a client certificate
// (etcd-client.crt) for tools and for other servers pointed at this etcd
// with --etcd-endpoints.
func etcdCertificates(dataDir string, peerIPs ...net.IP) (*storage.TLSFiles, error) {
	dir := filepath.Join(dataDir, "pki", "etcd")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ca, err := pki.LoadOrCreateCA(dir, "skiff-etcd-ca")
	if err != nil {
		return nil, err
	}
	// Also the peer address of a member of several (its peers dial it
	// there and check this certificate; it is the member's client one to
	// them too).
	if _, _, err := ca.EnsureLeaf(filepath.Join(dir, "server"), pki.LeafSpec{CommonName: "etcd", DNSNames: []string{"localhost"},
		IPs: append([]net.IP{net.ParseIP("127.0.0.1")}, peerIPs...), Server: true, Client: true}); err != nil {
		return nil, err
	}
	if _, _, err := ca.EnsureLeaf(filepath.Join(dir, "etcd-client"), pki.LeafSpec{CommonName: "kube-apiserver-etcd-client", Client: true}); err != nil {
		return nil, err
	}
	return &storage.TLSFiles{CertFile: filepath.Join(dir, "server.crt"), KeyFile: filepath.Join(dir, "server.key"), CAFile: filepath.Join(dir, "ca.crt")}, nil
}
