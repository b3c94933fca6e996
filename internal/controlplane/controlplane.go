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

	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/rest"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/ingress"
	"github.com/skiff-sh/skiff/internal/pki"
	schedconfig "github.com/skiff-sh/skiff/internal/scheduler/config"
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
	// AuthorizationModes are the authorizers in order (Node, RBAC,
	// AlwaysAllow); empty is Node,RBAC.
	AuthorizationModes []string
	// ServiceAccountIssuer is the iss claim of ServiceAccount tokens and
	// the API's own audience.
	ServiceAccountIssuer string
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
	return &tls.Config{
		Certificates: []tls.Certificate{pair},
		// The certificate is verified by the authenticator, so one from
		// another CA (or expired) is a 401, as upstream, not a failed
		// handshake.
		ClientAuth:   tls.RequestClientCert,
		MinVersion:   tls.VersionTLS12,
		CipherSuites: pki.CipherSuites,
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
	return NodeCredentials{Rest: node, ServingTLS: &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, MinVersion: tls.VersionTLS12, CipherSuites: pki.CipherSuites}}, nil
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
