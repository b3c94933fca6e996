package main

import (
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/skiff-sh/skiff/internal/agent"
	"github.com/skiff-sh/skiff/internal/controller/nodeipam"
	"github.com/skiff-sh/skiff/internal/kubelet"
)

// nodeOptions are the flags of a node agent, shared by `skiff server` (its
// built-in node) and `skiff agent`.
type nodeOptions struct {
	name, ip, runtimeEndpoint, podCIDR string
	clusterCIDR                        string
	labels, taints                     []string
	kubeReserved, systemReserved       []string
	maxPods, port                      int
	address, manifests                 string
	evictionHard                       string
	imageGCHigh, imageGCLow, deadPer   int
	disableProxy, disableDNS           bool
	clusterDNS, clusterDomain          string
	resolvConf                         string
	tokenRefresh                       time.Duration
}

func (o *nodeOptions) addFlags(f *pflag.FlagSet) {
	f.StringVar(&o.name, "node-name", "", "name of this node (default: the host name)")
	f.StringVar(&o.ip, "node-ip", "", "node address (default: the first non-loopback IPv4 address)")
	f.StringVar(&o.runtimeEndpoint, "container-runtime-endpoint", "", "existing CRI socket (containerd or CRI-O); empty starts containerd as a supervised child")
	f.StringVar(&o.podCIDR, "pod-cidr", "", "pod addresses of this node, registered as its spec.podCIDR (default: the one the control plane assigns)")
	f.StringVar(&o.clusterCIDR, "cluster-cidr", nodeipam.DefaultClusterCIDR, "pod addresses of the whole cluster: the server hands out per-node subnets from it, nodes masquerade pod traffic leaving it")
	f.StringSliceVar(&o.labels, "node-labels", nil, "labels to add when registering the node (key=value,...)")
	f.StringSliceVar(&o.taints, "register-with-taints", nil, "taints the node registers with (key=value:Effect,...)")
	f.StringSliceVar(&o.kubeReserved, "kube-reserved", nil, "resources kept for skiff itself (cpu=100m,memory=256Mi,...)")
	f.StringSliceVar(&o.systemReserved, "system-reserved", nil, "resources kept for the operating system (cpu=...,memory=...)")
	f.IntVar(&o.maxPods, "max-pods", 110, "pods this node runs at most")
	f.IntVar(&o.port, "kubelet-port", 10250, "HTTPS port of the node agent (logs, exec, attach, port-forward)")
	f.StringVar(&o.manifests, "pod-manifest-path", "", "directory of static pod manifests (default: <data-dir>/agent/pod-manifests)")
	f.StringVar(&o.address, "kubelet-address", "0.0.0.0", "address the node agent's HTTPS server listens on")
	f.StringVar(&o.evictionHard, "eviction-hard", kubelet.DefaultEvictionHard, "hard eviction thresholds (memory.available, nodefs.available, imagefs.available, pid.available; quantities or percentages); empty disables eviction")
	f.IntVar(&o.imageGCHigh, "image-gc-high-threshold", kubelet.DefaultGCPolicy.ImageHighPercent, "image filesystem usage percent above which unused images are removed")
	f.IntVar(&o.imageGCLow, "image-gc-low-threshold", kubelet.DefaultGCPolicy.ImageLowPercent, "image filesystem usage percent image garbage collection frees down to")
	f.BoolVar(&o.disableProxy, "disable-proxy", false, "do not program the service proxy's nftables rules or the pod routes on this node (another service proxy and pod network run here)")
	f.BoolVar(&o.disableDNS, "disable-dns", false, "do not serve the cluster DNS on this node")
	f.StringVar(&o.clusterDNS, "cluster-dns", "10.43.0.10", "ClusterIP of the cluster DNS Service, the nameserver of ClusterFirst pods (empty: pods use the node's resolvers)")
	f.StringVar(&o.clusterDomain, "cluster-domain", "cluster.local", "DNS domain of the cluster")
	f.StringVar(&o.resolvConf, "resolv-conf", "/etc/resolv.conf", "the node's resolver configuration: for dnsPolicy Default pods and the names the cluster DNS forwards")
	f.DurationVar(&o.tokenRefresh, "service-account-token-refresh", 0, "renew projected ServiceAccount tokens at least this often (0: at 80 % of their life, at most daily)")
	_ = f.MarkHidden("service-account-token-refresh") // for tests that watch a renewal
	f.IntVar(&o.deadPer, "maximum-dead-containers-per-container", kubelet.DefaultGCPolicy.DeadPerContainer, "exited instances kept per container besides the newest")
}

// config turns the flags into an agent configuration rooted at dataDir.
func (o *nodeOptions) config(dataDir, version string, log *slog.Logger) (agent.Config, error) {
	cfg := agent.Config{
		DataDir: filepath.Join(dataDir, "agent"), NodeName: o.name, RuntimeEndpoint: o.runtimeEndpoint,
		PodCIDR: o.podCIDR, MaxPods: o.maxPods, Port: o.port, Address: o.address, Version: version, Log: log, TokenRefresh: o.tokenRefresh,
	}
	cfg.StaticPodDir = o.manifests
	if cfg.StaticPodDir == "" {
		cfg.StaticPodDir = filepath.Join(cfg.DataDir, "pod-manifests")
	}
	if cfg.NodeName == "" {
		cfg.NodeName = agent.DefaultNodeName()
	}
	if o.podCIDR != "" {
		if _, _, err := net.ParseCIDR(o.podCIDR); err != nil {
			return cfg, fmt.Errorf("--pod-cidr %q: %w", o.podCIDR, err)
		}
	}
	if _, _, err := net.ParseCIDR(o.clusterCIDR); err != nil {
		return cfg, fmt.Errorf("--cluster-cidr %q: %w", o.clusterCIDR, err)
	}
	cfg.ClusterCIDR = o.clusterCIDR
	cfg.DisableProxy, cfg.DisableDNS = o.disableProxy, o.disableDNS
	if o.clusterDNS != "" && net.ParseIP(o.clusterDNS).To4() == nil {
		return cfg, fmt.Errorf("--cluster-dns %q is not an IPv4 address", o.clusterDNS)
	}
	cfg.ClusterDNS, cfg.ClusterDomain, cfg.ResolvConf = o.clusterDNS, strings.TrimSuffix(o.clusterDomain, "."), o.resolvConf
	if o.ip != "" {
		if cfg.NodeIP = net.ParseIP(o.ip); cfg.NodeIP == nil {
			return cfg, fmt.Errorf("--node-ip %q is not an IP address", o.ip)
		}
	} else {
		cfg.NodeIP = agent.DefaultNodeIP()
	}
	var err error
	if cfg.Labels, err = agent.ParseLabels(o.labels); err != nil {
		return cfg, err
	}
	if cfg.Taints, err = agent.ParseTaints(o.taints); err != nil {
		return cfg, err
	}
	if cfg.Reserved, err = agent.ParseReserved(o.kubeReserved, o.systemReserved); err != nil {
		return cfg, err
	}
	if cfg.EvictionHard, err = kubelet.ParseEvictionHard(o.evictionHard); err != nil {
		return cfg, err
	}
	if o.imageGCLow < 0 || o.imageGCHigh > 100 || o.imageGCLow > o.imageGCHigh {
		return cfg, fmt.Errorf("--image-gc-low-threshold %d and --image-gc-high-threshold %d: want 0 <= low <= high <= 100", o.imageGCLow, o.imageGCHigh)
	}
	if o.deadPer < 0 {
		return cfg, fmt.Errorf("--maximum-dead-containers-per-container %d: must not be negative", o.deadPer)
	}
	cfg.GC = kubelet.GCPolicy{DeadPerContainer: o.deadPer, ImageHighPercent: o.imageGCHigh, ImageLowPercent: o.imageGCLow, ImageMinAge: kubelet.DefaultGCPolicy.ImageMinAge}
	return cfg, nil
}
