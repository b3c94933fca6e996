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
	GC           kubelet.GCPolicy
	MaxPods      int
	Port         int
	// Address is where the kubelet's HTTPS server listens.
	Address    string
	ServingTLS *tls.Config
	Version    string
	Log        *slog.Logger
}

// Run runs the node until ctx ends. The API is reached with api, whose
// client certificate names system:node:<NodeName>; the kubelet serves
// logs, exec, attach and port-forward with cfg.ServingTLS.
func Run(ctx context.Context, cfg Config, api *rest.Config) error {
	log := cfg.Log
	started := time.Now()
	cniDir := filepath.Join(cfg.DataDir, "cni")
	endpoint := cfg.RuntimeEndpoint
	var sup *runtime.Supervisor
	if endpoint == "" {
		cd := runtime.Containerd{Dir: filepath.Join(cfg.DataDir, "containerd"), CNIConfDir: cniDir, Log: log.With("component", "containerd")}
		var err error
		if sup, err = runtime.Start(ctx, cd); err != nil {
			return err
		}
		endpoint = cd.Socket()
		log.Debug("containerd started", "socket", endpoint, "took", time.Since(started).Round(time.Millisecond).String())
	}
	rt, err := kubelet.DialRuntime(ctx, endpoint)
	if err != nil {
		return err
	}
	defer rt.Close()
	if sup != nil {
		if err := ensurePause(ctx, rt, endpoint, cfg.DataDir); err != nil {
			return err
		}
	}
	// Upstream's kubelet defaults (kubeAPIQPS 50, burst 100): client-go's
	// own 5 QPS would queue every pod's status writes behind each other.
	api = rest.CopyConfig(api)
	api.QPS, api.Burst = 50, 100
	client, err := kubernetes.NewForConfig(api)
	if err != nil {
		return fmt.Errorf("node client: %w", err)
	}
	// One informer factory for the node's cluster-wide watches (Services,
	// EndpointSlices, Nodes, PersistentVolumes).
	shared := informers.NewSharedInformerFactory(client, 0)
	defer shared.Shutdown()
	k, err := kubelet.New(kubelet.Config{
		Informers: shared, ClusterDNS: nonEmpty(cfg.ClusterDNS), ClusterDomain: cfg.ClusterDomain, ResolvConf: cfg.ResolvConf,
		NodeName: cfg.NodeName, NodeIP: cfg.NodeIP, RootDir: cfg.DataDir, CNIConfDir: cniDir,
		PodCIDR: cfg.PodCIDR, StaticPodDir: cfg.StaticPodDir, Labels: cfg.Labels, Taints: cfg.Taints, Reserved: cfg.Reserved,
		MaxPods: cfg.MaxPods, Port: cfg.Port, Version: cfg.Version, Log: log,
		EvictionHard: cfg.EvictionHard, GC: cfg.GC, PinnedImages: []string{runtime.PauseImage},
		ImageMounts: imageMounts(sup, endpoint),
	}, client, rt)
	if err != nil {
		return err
	}
	if cfg.ServingTLS != nil {
		addr := net.JoinHostPort(cfg.Address, strconv.Itoa(cfg.Port))
		go func() {
			if err := k.Serve(ctx, addr, cfg.ServingTLS); err != nil {
				log.Error("kubelet server stopped", "err", err)
			}
		}()
	}
	go func() {
		// Once registered and synced, the start-up pages of the other
		// components in this binary are dead weight.
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
			debug.FreeOSMemory()
			log.Debug("released start-up memory", "executable_bytes_advised", procmem.ReleaseExecutablePages())
		}
	}()
	if !cfg.DisableProxy {
		if err := startNetwork(ctx, cfg, shared); err != nil {
			return err
		}
	}
	if !cfg.DisableDNS {
		if err := startDNS(ctx, cfg, client, shared); err != nil {
			return err
		}
	}
	log.Info("node agent starting", "node", cfg.NodeName, "runtime", endpoint, "since_start", time.Since(started).Round(time.Millisecond).String())
	err = k.Run(ctx)
	if sup != nil {
		select {
		case <-sup.Done():
		case <-time.After(15 * time.Second):
		}
	}
	if err == context.Canceled {
		return nil
	}
	return err
}

// startNetwork runs the pod routes and the service proxy beside the
// kubelet. A failure later is logged and retried inside each; only a
// table that cannot be opened at all stops the node.
func startNetwork(ctx context.Context, cfg Config, shared informers.SharedInformerFactory) error {
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
func startDNS(ctx context.Context, cfg Config, client kubernetes.Interface, shared informers.SharedInformerFactory) error {
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
func ensurePause(ctx context.Context, rt *kubelet.Runtime, endpoint, dir string) error {
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
