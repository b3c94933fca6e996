package kubelet

import (
	"os"
	"strings"

	v1 "k8s.io/api/core/v1"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Limits glibc's resolver and upstream's kubelet apply to resolv.conf.
const (
	maxNameservers = 3
	maxSearches    = 32
)

// resolvConf is what a resolv.conf says.
type resolvConf struct {
	servers, searches, options []string
}

// readResolvConf reads path; a missing file is an empty configuration.
func readResolvConf(path string) resolvConf {
	if path == "" {
		path = "/etc/resolv.conf"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return resolvConf{}
	}
	var rc resolvConf
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "nameserver":
			rc.servers = append(rc.servers, f[1])
		case "search":
			rc.searches = f[1:] // the last search line wins, as in glibc
		case "options":
			rc.options = append(rc.options, f[1:]...)
		}
	}
	return rc
}

// podDNS is a pod's resolv.conf as upstream's kubelet writes it:
// ClusterFirst (the default; for hostNetwork pods only as
// ClusterFirstWithHostNet) names the cluster DNS with the namespace's
// search path and ndots:5, and falls back to the node's resolvers when no
// cluster DNS is configured; Default copies the node's; None starts empty.
// spec.dnsConfig is merged on top: servers and searches appended without
// duplicates, options replacing those of the same name.
func podDNS(pod *v1.Pod, clusterDNS []string, domain string, host resolvConf) *cri.DNSConfig {
	policy := pod.Spec.DNSPolicy
	if policy == "" {
		policy = v1.DNSClusterFirst
	}
	cluster := policy == v1.DNSClusterFirstWithHostNet || policy == v1.DNSClusterFirst && !pod.Spec.HostNetwork
	cfg := &cri.DNSConfig{}
	switch {
	case policy == v1.DNSNone:
	case cluster && len(clusterDNS) > 0:
		cfg.Servers = append([]string{}, clusterDNS...)
		cfg.Searches = append([]string{pod.Namespace + ".svc." + domain, "svc." + domain, domain}, host.searches...)
		cfg.Options = []string{"ndots:5"}
	default:
		cfg.Servers = append([]string{}, host.servers...)
		cfg.Searches = append([]string{}, host.searches...)
		cfg.Options = append([]string{}, host.options...)
	}
	if dc := pod.Spec.DNSConfig; dc != nil {
		cfg.Servers = append(cfg.Servers, dc.Nameservers...)
		cfg.Searches = append(cfg.Searches, dc.Searches...)
		for _, o := range dc.Options {
			opt := o.Name
			if o.Value != nil {
				opt += ":" + *o.Value
			}
			cfg.Options = setOption(cfg.Options, o.Name, opt)
		}
	}
	cfg.Servers = unique(cfg.Servers)
	if len(cfg.Servers) > maxNameservers {
		cfg.Servers = cfg.Servers[:maxNameservers]
	}
	cfg.Searches = unique(cfg.Searches)
	if len(cfg.Searches) > maxSearches {
		cfg.Searches = cfg.Searches[:maxSearches]
	}
	return cfg
}

// setOption replaces the option called name, or appends it.
func setOption(opts []string, name, opt string) []string {
	for i, o := range opts {
		if n, _, _ := strings.Cut(o, ":"); n == name {
			opts[i] = opt
			return opts
		}
	}
	return append(opts, opt)
}

func unique(list []string) []string {
	seen := map[string]bool{}
	out := list[:0:0]
	for _, s := range list {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
