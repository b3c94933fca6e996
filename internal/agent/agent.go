// Package agent assembles a node: the container runtime (a supervised
// containerd, or an existing CRI socket) and the kubelet, for both
// `skiff server` and `skiff agent`.
package agent

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/skiff-sh/skiff/internal/component"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-sh/skiff/internal/dns"
	"github.com/skiff-sh/skiff/internal/kubelet"
	"github.com/skiff-sh/skiff/internal/netpol"
	"github.com/skiff-sh/skiff/internal/podnet"
	"github.com/skiff-sh/skiff/internal/procmem"
	"github.com/skiff-sh/skiff/internal/proxy"
	"github.com/skiff-sh/skiff/internal/runtime"
)

// Config is a node's configuration.
type Config struct {
	// DataDir is the node's directory (containerd, pods, logs, CNI config).
	DataDir  string
	NodeName string
	NodeIP   net.IP
	// RuntimeEndpoint is an existing CRI socket; empty starts containerd.
	RuntimeEndpoint string
	// PodCIDR, when set, is registered as the Node's spec.podCIDR;
	// otherwise the node waits for the control plane to assign one.
	PodCIDR string
	// ClusterCIDR is every pod's range (traffic leaving it is masqueraded).
	ClusterCIDR string
	// DisableProxy leaves Services and pod routes to someone else.
	DisableProxy bool
	// ClusterDNS is the DNS Service's ClusterIP pods resolve with ("":
	// the node's resolvers); ClusterDomain its domain; ResolvConf the
	// node's resolvers. DisableDNS serves no cluster DNS on this node.
	ClusterDNS, ClusterDomain, ResolvConf string
	DisableDNS                            bool
	// StaticPodDir holds static pod manifests ("": none).
	StaticPodDir string
	Labels       map[string]string
	Taints       []v1.Taint
	Reserved     v1.ResourceList
	EvictionHard []kubelet.Threshold
	// TokenRefresh renews projected ServiceAccount tokens at least this
	// often (0: at 80 % of their life, at most daily).
	TokenRefresh time.Duration
	GC           kubelet.GCPolicy
	MaxPods      int
	Port         int
	// Address is where the kubelet's HTTPS server listens.
	Address    string
	ServingTLS *tls.Config
	Version    string
	Log        *slog.Logger
}

// Time limits of the node's stop order.
const (
	// kubeletStopTimeout lets the kubelet finish its last status writes.
	kubeletStopTimeout = 15 * time.Second
	// runtimeStopTimeout lets containerd exit (its shims, and so the pods,
	// keep running).
	runtimeStopTimeout = 15 * time.Second
	// releaseAfter is when the start-up pages of the binary's other
	// components are returned to the kernel.
	releaseAfter = 10 * time.Second
)

// node is what the node's components share; each Start fills in what the
// later ones use.
type node struct {
	cfg    Config
	api    *rest.Config
	log    *slog.Logger
	start  time.Time
	cniDir string

	sup      *runtime.Supervisor
	stopSup  context.CancelFunc
	endpoint string
	rt       *runtime.Client
	client   kubernetes.Interface
	// shared is the one informer factory for the node's cluster-wide
	// watches (Services, EndpointSlices, Nodes, PersistentVolumes).
	shared  informers.SharedInformerFactory
	kubelet *kubelet.Kubelet
	failed  chan error
}

// Run runs the node until ctx ends. The API is reached with api, whose
// client certificate names system:node:<NodeName>; the kubelet serves
// logs, exec, attach and port-forward with cfg.ServingTLS.
func Run(ctx context.Context, cfg Config, api *rest.Config) error {
	n := &node{cfg: cfg, api: api, log: cfg.Log, start: time.Now(), cniDir: filepath.Join(cfg.DataDir, "cni"), failed: make(chan error, 1)}
	return component.Run(ctx, n.log, n.components(), n.failed)
}

// components is the node in start order; it stops in reverse, so the
// kubelet's last writes happen while the runtime and the client are up.
func (n *node) components() []component.Component {
	list := []component.Component{
		{Name: "runtime", Start: n.startRuntime, Stop: n.stopRuntime, StopTimeout: runtimeStopTimeout},
		{Name: "client", Start: n.startClient, Stop: n.stopClient},
		{Name: "kubelet", After: []string{"runtime", "client"}, Start: n.startKubelet},
	}
	if n.cfg.ServingTLS != nil {
		list = append(list, component.Background("kubelet-server", []string{"kubelet"}, time.Second, n.log, func(ctx context.Context) error {
			return n.kubelet.Serve(ctx, net.JoinHostPort(n.cfg.Address, strconv.Itoa(n.cfg.Port)), n.cfg.ServingTLS)
		}))
	}
	if !n.cfg.DisableProxy {
		list = append(list, component.Spawner("network", []string{"client"}, n.startNetwork))
	}
	if !n.cfg.DisableDNS {
		list = append(list, component.Spawner("dns", []string{"client"}, n.startDNS))
	}
	return append(list,
		component.Background("kubelet-sync", []string{"kubelet"}, kubeletStopTimeout, n.log, n.runKubelet),
		component.Background("memory", nil, time.Second, n.log, n.releaseStartupMemory),
	)
}

// startRuntime starts containerd (unless an existing CRI socket is
// configured), connects to it and makes sure the pause image is there.
func (n *node) startRuntime(ctx context.Context) error {
	n.endpoint = n.cfg.RuntimeEndpoint
	if n.endpoint == "" {
		cd := runtime.Containerd{Dir: filepath.Join(n.cfg.DataDir, "containerd"), CNIConfDir: n.cniDir, Log: n.log.With("component", "containerd")}
		// Its own context: containerd stops last, after the kubelet.
		var supCtx context.Context
		supCtx, n.stopSup = context.WithCancel(context.Background())
		sup, err := runtime.Start(supCtx, cd)
		if err != nil {
			n.stopSup()
			return err
		}
		n.sup, n.endpoint = sup, cd.Socket()
		n.log.Debug("containerd started", "socket", n.endpoint, "took", time.Since(n.start).Round(time.Millisecond).String())
	}
	rt, err := runtime.Dial(ctx, n.endpoint)
	if err != nil {
		return err
	}
	n.rt = rt
	if n.sup != nil {
		return ensurePause(ctx, rt, n.endpoint, n.cfg.DataDir)
	}
	return nil
}

func (n *node) stopRuntime(ctx context.Context) error {
	n.rt.Close()
	if n.sup == nil {
		return nil
	}
	n.stopSup()
	select {
	case <-n.sup.Done():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("containerd still running after %s", runtimeStopTimeout)
	}
}

// startClient makes the node's API client and its informer factory.
func (n *node) startClient(context.Context) error {
	// Upstream's kubelet defaults (kubeAPIQPS 50, burst 100): client-go's
	// own 5 QPS would queue every pod's status writes behind each other.
	api := rest.CopyConfig(n.api)
	api.QPS, api.Burst = 50, 100
	client, err := kubernetes.NewForConfig(api)
	if err != nil {
		return fmt.Errorf("node client: %w", err)
	}
	n.client = client
	n.shared = informers.NewSharedInformerFactory(client, 0)
	return nil
}

func (n *node) stopClient(context.Context) error {
	n.shared.Shutdown()
	return nil
}

func (n *node) startKubelet(context.Context) error {
	cfg := n.cfg
	k, err := kubelet.New(kubelet.Config{
		Informers: n.shared, ClusterDNS: nonEmpty(cfg.ClusterDNS), ClusterDomain: cfg.ClusterDomain, ResolvConf: cfg.ResolvConf,
		NodeName: cfg.NodeName, NodeIP: cfg.NodeIP, RootDir: cfg.DataDir, CNIConfDir: n.cniDir,
		PodCIDR: cfg.PodCIDR, StaticPodDir: cfg.StaticPodDir, Labels: cfg.Labels, Taints: cfg.Taints, Reserved: cfg.Reserved,
		MaxPods: cfg.MaxPods, Port: cfg.Port, Version: cfg.Version, Log: n.log,
		EvictionHard: cfg.EvictionHard, TokenRefresh: cfg.TokenRefresh, GC: cfg.GC, PinnedImages: []string{runtime.PauseImage},
		ImageMounts: imageMounts(n.sup, n.endpoint),
	}, n.client, n.rt)
	n.kubelet = k
	return err
}

// runKubelet syncs the node's pods; the node cannot go on without it.
func (n *node) runKubelet(ctx context.Context) error {
	n.log.Info("node agent starting", "node", n.cfg.NodeName, "runtime", n.endpoint, "since_start", time.Since(n.start).Round(time.Millisecond).String())
	err := n.kubelet.Run(ctx)
	if err != nil && ctx.Err() == nil {
		n.failed <- fmt.Errorf("kubelet: %w", err)
	}
	return nil
}

// releaseStartupMemory returns the start-up pages of the binary's other
// components once the node has registered and synced.
func (n *node) releaseStartupMemory(ctx context.Context) error {
	select {
	case <-ctx.Done():
	case <-time.After(releaseAfter):
		debug.FreeOSMemory()
		n.log.Debug("released start-up memory", "executable_bytes_advised", procmem.ReleaseExecutablePages())
	}
	return nil
}

// startNetwork runs the pod routes and the service proxy beside the
// kubelet. A failure later is logged and retried inside each; only a
// table that cannot be opened at all stops the node.
func (n *node) startNetwork(ctx context.Context) error {
	cfg, shared := n.cfg, n.shared
	_, cidr, err := net.ParseCIDR(cfg.ClusterCIDR)
	if err != nil {
		return fmt.Errorf("cluster CIDR %q: %w", cfg.ClusterCIDR, err)
	}
	pcfg := proxy.Config{NodeName: cfg.NodeName, ClusterCIDR: cidr}
	table, err := proxy.NewTable(pcfg, -1)
	if err != nil {
		return fmt.Errorf("service proxy: %w", err)
	}
	go func() {
		if err := podnet.Run(ctx, cfg.NodeName, shared, cfg.Log.With("component", "podnet")); err != nil {
			cfg.Log.Error("pod routes stopped", "err", err)
		}
	}()
	go func() {
		policies := &netpol.Enforcer{Node: cfg.NodeName}
		if err := proxy.Run(ctx, table, pcfg, shared, cfg.Log.With("component", "proxy"), policies); err != nil {
			cfg.Log.Error("service proxy stopped", "err", err)
		}
	}()
	return nil
}

// startDNS serves the cluster DNS on the node's address and publishes it
// as this node's endpoint of the kube-dns Service.
func (n *node) startDNS(ctx context.Context) error {
	cfg, client, shared := n.cfg, n.client, n.shared
	log := cfg.Log.With("component", "dns")
	upstreams, err := dns.Resolvers(cfg.ResolvConf)
	if err != nil {
		log.Warn("no upstream resolvers: only cluster names resolve", "resolv_conf", cfg.ResolvConf, "err", err)
	}
	dcfg := dns.Config{Domain: cfg.ClusterDomain, Addr: net.JoinHostPort(cfg.NodeIP.String(), "53"), Upstreams: upstreams}
	h := dns.NewHandler(dns.BuildZone(dcfg.Domain, nil, nil), dns.NewForwarder(upstreams), log)
	srv, err := dns.Listen(dcfg, h)
	if err != nil {
		// The node still runs pods; its ClusterFirst pods cannot resolve
		// until the port is free and the agent restarts.
		log.Error("cluster DNS not served on this node", "err", err)
		return nil
	}
	go srv.Serve(ctx)
	go func() {
		if err := dns.Run(ctx, dcfg, shared, h, log); err != nil {
			log.Error("cluster DNS stopped", "err", err)
		}
	}()
	go func() {
		if err := dns.Publish(ctx, client, cfg.NodeName, dcfg.Addr); err != nil && ctx.Err() == nil {
			log.Error("publish the DNS endpoint", "err", err)
		}
	}()
	log.Info("cluster DNS serving", "addr", dcfg.Addr, "upstreams", upstreams)
	return nil
}

// ensurePause imports skiff's pause image unless the runtime has it.
func ensurePause(ctx context.Context, rt *runtime.Client, endpoint, dir string) error {
	if ok, err := rt.HasImage(ctx, runtime.PauseImage); err == nil && ok {
		return nil
	}
	return runtime.ImportPause(ctx, strings.TrimPrefix(endpoint, "unix://"), dir)
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// DefaultNodeName is the host name, lower-cased as node names must be.
func DefaultNodeName() string {
	h, _ := os.Hostname()
	return strings.ToLower(h)
}

// DefaultNodeIP is the first non-loopback IPv4 address, else 127.0.0.1.
func DefaultNodeIP() net.IP {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.To4()
		}
	}
	return net.IPv4(127, 0, 0, 1).To4()
}

// imageMounts serves image volumes from the containerd the agent runs; an
// external runtime's image store is not the agent's to mount.
func imageMounts(sup *runtime.Supervisor, socket string) kubelet.ImageMounter {
	if sup == nil {
		return nil
	}
	return runtime.ImageMounts{Socket: socket}
}
