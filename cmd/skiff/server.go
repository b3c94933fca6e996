package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/klog/v2"

	"github.com/skiff-sh/skiff/internal/admission"
	"github.com/skiff-sh/skiff/internal/agent"
	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/job"
	"github.com/skiff-sh/skiff/internal/controller/nodeipam"
	"github.com/skiff-sh/skiff/internal/controller/nodelifecycle"
	"github.com/skiff-sh/skiff/internal/controller/podgc"
	"github.com/skiff-sh/skiff/internal/controlplane"
	"github.com/skiff-sh/skiff/internal/ingress"
	"github.com/skiff-sh/skiff/internal/procmem"
	schedconfig "github.com/skiff-sh/skiff/internal/scheduler/config"
)

func serverCommand() *cobra.Command {
	cfg := controlplane.Config{}
	var nodePorts, logLevel, logFormat, schedulerConfig, diskReserve string
	var leave bool
	var node nodeOptions
	var disableAgent, ingressOn bool
	var ingressHTTP, ingressHTTPS, gcPercent int
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the control plane: API server on etcd (embedded by default), scheduler and controllers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := bindEnvAndConfig(cmd); err != nil {
				return err
			}
			lo, hi, ok := strings.Cut(nodePorts, "-")
			var err1, err2 error
			cfg.NodePortMin, err1 = strconv.Atoi(lo)
			cfg.NodePortMax, err2 = strconv.Atoi(hi)
			if !ok || err1 != nil || err2 != nil || cfg.NodePortMin > cfg.NodePortMax {
				return fmt.Errorf("--service-node-port-range %q: want LOW-HIGH", nodePorts)
			}
			log, err := newLogger(logLevel, logFormat)
			if err != nil {
				return err
			}
			if q, err := resource.ParseQuantity(diskReserve); err != nil || q.Sign() < 0 {
				return fmt.Errorf("--etcd-disk-reserve %q: want a size such as 256Mi", diskReserve)
			} else {
				cfg.EtcdDiskReserve = uint64(q.Value())
			}
			if err := setGCPercent(gcPercent); err != nil {
				return err
			}
			// A broken scheduler configuration stops start-up here, with
			// the offending field named.
			if cfg.Scheduler, err = schedconfig.Load(schedulerConfig); err != nil {
				return err
			}
			// client-go (leader election, informers, events) logs through klog;
			// send it to the same structured log.
			klog.SetSlogLogger(log)
			cfg.Version = version
			cfg.ControllerSettings.ClusterCIDR = node.clusterCIDR
			cfg.ClusterDNS = node.clusterDNS
			if ingressOn {
				cfg.Ingress = &ingress.Settings{HTTPAddr: net.JoinHostPort("0.0.0.0", strconv.Itoa(ingressHTTP)), HTTPSAddr: net.JoinHostPort("0.0.0.0", strconv.Itoa(ingressHTTPS))}
			}
			if _, svcNet, err := net.ParseCIDR(cfg.ServiceCIDR); err == nil && cfg.ClusterDNS != "" && !svcNet.Contains(net.ParseIP(cfg.ClusterDNS)) {
				return fmt.Errorf("--cluster-dns %s is outside --service-cidr %s", cfg.ClusterDNS, cfg.ServiceCIDR)
			}
			if _, err := nodeipam.NewAllocator(node.clusterCIDR, cfg.ControllerSettings.NodeCIDRMaskSize); err != nil {
				return fmt.Errorf("--cluster-cidr and --node-cidr-mask-size: %w", err)
			}
			if !disableAgent {
				if node.ip == "" && cfg.AdvertiseIP != "" {
					node.ip = cfg.AdvertiseIP
				}
				ncfg, err := node.config(cfg.DataDir, controlplane.KubernetesVersion, log)
				if err != nil {
					return err
				}
				cfg.NodeName, cfg.NodeIP = ncfg.NodeName, ncfg.NodeIP
				cfg.Agent = func(ctx context.Context, creds controlplane.NodeCredentials) error {
					ncfg.ServingTLS = creds.ServingTLS
					return agent.Run(ctx, ncfg, creds.Rest)
				}
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			go procmem.ReturnWhenIdle(ctx, log)
			if leave {
				return controlplane.Leave(ctx, cfg, log)
			}
			return controlplane.Run(ctx, cfg, log)
		},
	}
	f := cmd.Flags()
	f.String("config", "", "YAML file of settings (keys are flag names)")
	f.StringVar(&cfg.DataDir, "data-dir", "/var/lib/skiff", "directory for certificates, kubeconfig and embedded etcd")
	f.StringVar(&cfg.BindAddress, "bind-address", "0.0.0.0", "address the API listens on")
	f.IntVar(&cfg.SecurePort, "secure-port", 6443, "HTTPS port of the API (0: any free port; the log and the admin kubeconfig name it)")
	f.StringVar(&cfg.AdvertiseIP, "advertise-address", "", "node address published in the kubernetes Service endpoints (default: first non-loopback IPv4)")
	f.StringSliceVar(&cfg.TLSSANs, "tls-san", nil, "extra names or IPs for the serving certificate")
	f.StringSliceVar(&cfg.EtcdEndpoints, "etcd-endpoints", nil, "external etcd client URLs (default: embedded etcd)")
	f.StringVar(&cfg.EtcdCAFile, "etcd-cafile", "", "CA of the external etcd's serving certificate (with --etcd-endpoints https://...)")
	f.StringVar(&cfg.EtcdCertFile, "etcd-certfile", "", "client certificate for the external etcd")
	f.StringVar(&cfg.EtcdKeyFile, "etcd-keyfile", "", "client key for the external etcd")
	f.IntVar(&cfg.EtcdClientPort, "etcd-client-port", 2379, "loopback client port of the embedded etcd")
	f.IntVar(&cfg.EtcdPeerPort, "etcd-peer-port", 2380, "loopback peer port of the embedded etcd")
	f.StringVar(&cfg.EtcdSnapshotDir, "etcd-snapshot-dir", "", "directory of etcd snapshots (default <data-dir>/snapshots)")
	f.StringVar(&cfg.EtcdSnapshotScheduleCron, "etcd-snapshot-schedule-cron", "", "save an etcd snapshot at these times (cron: minute hour day month weekday, or @every 6h)")
	f.IntVar(&cfg.EtcdSnapshotRetention, "etcd-snapshot-retention", 5, "scheduled snapshots to keep")
	f.BoolVar(&cfg.ClusterInit, "cluster-init", false, "make the embedded etcd the first member of a cluster of servers (peers on --advertise-address:--etcd-peer-port over TLS); others join with --server and --token")
	f.StringVar(&cfg.JoinServer, "server", "", "join the cluster of servers that the server at this URL (https://host:6443) belongs to, with --token")
	f.BoolVar(&leave, "leave", false, "instead of serving: take this (stopped) server out of its cluster of servers through the server --server names, and set its etcd data aside")
	f.StringVar(&cfg.JoinToken, "token", "", "with --server, or with --etcd-endpoints when a server already runs on that etcd: the server token (<data-dir>/server-token of a server of the cluster)")
	f.BoolVar(&cfg.ClusterReset, "cluster-reset", false, "start the embedded etcd as a new one-member cluster keeping its data (recovers a cluster that lost quorum)")
	f.StringVar(&cfg.ClusterResetRestorePath, "cluster-reset-restore-path", "", "with --cluster-reset: start from this etcd snapshot (checked before the data dir is touched; the replaced etcd dir is kept as etcd.old-<time>)")
	f.StringVar(&diskReserve, "etcd-disk-reserve", "256Mi", "free space on the data dir's disk below which the embedded etcd refuses writes (reads go on; writes resume at twice this)")
	f.StringVar(&cfg.ServiceCIDR, "service-cidr", "10.43.0.0/16", "range of Service ClusterIPs")
	f.StringVar(&nodePorts, "service-node-port-range", "30000-32767", "range of NodePorts")
	f.StringVar(&cfg.TokenAuthFile, "token-auth-file", "", "CSV file of bearer tokens: token,user,uid,\"group1,group2\"")
	f.BoolVar(&cfg.Profiling, "profiling", true, "serve /debug/pprof to authenticated users")
	f.StringSliceVar(&cfg.AuthorizationModes, "authorization-mode", []string{controlplane.ModeNode, controlplane.ModeRBAC}, "authorizers in order: Node, RBAC, AlwaysAllow (experiments only)")
	f.StringVar(&cfg.EncryptionProviderConfig, "encryption-provider-config", "", "EncryptionConfiguration file (apiserver.config.k8s.io/v1: aescbc, aesgcm, secretbox, identity) saying which resources are encrypted in etcd and with which keys")
	f.BoolVar(&cfg.SecretsEncryption, "secrets-encryption", true, "without --encryption-provider-config, encrypt Secrets in etcd with a key the server makes in <data-dir>/pki/encryption-config.yaml")
	f.BoolVar(&cfg.EnablePriorityAndFairness, "enable-priority-and-fairness", true, "classify requests by FlowSchema and queue them per priority level (API Priority and Fairness)")
	f.IntVar(&cfg.MaxRequestsInflight, "max-requests-inflight", 400, "with --max-mutating-requests-inflight, the seats API Priority and Fairness shares among priority levels")
	f.IntVar(&cfg.MaxMutatingRequestsInflight, "max-mutating-requests-inflight", 200, "see --max-requests-inflight")
	f.StringVar(&cfg.AuditPolicyFile, "audit-policy-file", "", "audit policy (audit.k8s.io/v1 Policy) saying which requests are recorded and how much of them")
	f.StringVar(&cfg.AuditLog.Path, "audit-log-path", "", "file the audit events are written to, one JSON line per event and stage (\"-\": standard output)")
	f.IntVar(&cfg.AuditLog.MaxAge, "audit-log-maxage", 0, "days to keep rotated audit log files (0: no limit)")
	f.IntVar(&cfg.AuditLog.MaxBackup, "audit-log-maxbackup", 0, "rotated audit log files to keep (0: no limit)")
	f.IntVar(&cfg.AuditLog.MaxSize, "audit-log-maxsize", 0, "megabytes an audit log file grows to before it is rotated (0: 100)")
	f.StringSliceVar(&cfg.EnableAdmissionPlugins, "enable-admission-plugins", nil, "admission plugins to turn on besides the defaults ("+strings.Join(admission.Defaults(), ", ")+"); skiff has "+strings.Join(admission.Names(), ", ")+"; they run in that order whatever the order here")
	f.StringVar(&cfg.AdmissionControlConfigFile, "admission-control-config-file", "", "AdmissionConfiguration file (apiserver.config.k8s.io/v1) configuring admission plugins: PodSecurity's defaults and exemptions")
	f.StringSliceVar(&cfg.DisableAdmissionPlugins, "disable-admission-plugins", nil, "admission plugins to turn off, even if on by default")
	f.BoolVar(&cfg.ServiceAccountExtendTokenExpiration, "service-account-extend-token-expiration", true, "sign pods' kube-api-access tokens valid for a year, with the hour they were asked for as their warnafter claim (the node still refreshes them hourly)")
	f.StringVar(&cfg.ServiceAccountIssuer, "service-account-issuer", "https://kubernetes.default.svc.cluster.local", "issuer (iss) of ServiceAccount tokens, and the API's audience; /.well-known/openid-configuration names it")
	f.BoolVar(&cfg.AnonymousAuth, "anonymous-auth", true, "serve requests without credentials as system:anonymous (RBAC decides; by default only /healthz, /livez, /readyz and /version); false refuses them with 401")
	f.DurationVar(&cfg.ControllerSettings.JobBackoff, "job-pod-failure-backoff", job.DefaultBackoff, "first delay before a Job replaces a failed pod (doubles per failure, at most 6m)")
	f.IntVar(&cfg.ControllerSettings.TerminatedPodThreshold, "terminated-pod-gc-threshold", podgc.DefaultThreshold, "finished pods kept before the oldest are deleted")
	f.DurationVar(&cfg.ControllerSettings.NodeGracePeriod, "node-monitor-grace-period", nodelifecycle.DefaultGracePeriod, "how long a node may be silent before it is marked Unknown and tainted unreachable")
	f.Float64Var(&cfg.ControllerSettings.NodeEvictionRate, "node-eviction-rate", nodelifecycle.DefaultEvictionRate, "nodes per second that may get NoExecute taints (evicting their pods)")
	f.IntVar(&cfg.ControllerSettings.NodeCIDRMaskSize, "node-cidr-mask-size", nodeipam.DefaultMaskSize, "prefix length of each node's pod CIDR")
	f.StringSliceVar(&cfg.Controllers, "controllers", []string{"*"}, "controllers to run: '*' for all, 'name' to enable one, '-name' to disable one, empty for none; known: "+strings.Join(controller.Names(controlplane.Controllers()), ", "))
	f.StringVar(&schedulerConfig, "scheduler-config", "", "KubeSchedulerConfiguration (kubescheduler.config.k8s.io/v1) file: profiles, plugins, weights")
	f.BoolVar(&cfg.DisableScheduler, "disable-scheduler", false, "do not run the scheduler")
	f.BoolVar(&ingressOn, "ingress", false, "run the built-in ingress controller (IngressClass skiff, the default) on this server's node ports")
	f.IntVar(&ingressHTTP, "ingress-http-port", 80, "HTTP port of the ingress controller")
	f.IntVar(&ingressHTTPS, "ingress-https-port", 443, "HTTPS port of the ingress controller")
	f.BoolVar(&disableAgent, "disable-agent", false, "do not run a node agent (kubelet and containerd) in the server")
	f.IntVar(&gcPercent, "gc-percent", defaultServerGCPercent, "heap growth (percent of the live heap) the Go garbage collector allows between collections; higher trades memory for CPU; GOGC in the environment takes precedence")
	node.addFlags(f)
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "text", "text or json")
	return cmd
}

// defaultServerGCPercent is twice Go's default: the control plane allocates
// in proportion to its write rate, and at 100 the collector took a fifth of
// both cores under a scheduling burst (docs/benchmarks.md); at 200 it takes
// half that, for a peak heap up to a third larger. An idle server allocates
// little, so its resident memory hardly moves.
const defaultServerGCPercent = 200

// setGCPercent applies --gc-percent unless GOGC is set, which the Go runtime
// has already read and which an operator sets on purpose.
func setGCPercent(p int) error {
	if p <= 0 {
		return fmt.Errorf("--gc-percent %d: want a positive percentage", p)
	}
	if _, ok := os.LookupEnv("GOGC"); !ok {
		debug.SetGCPercent(p)
	}
	return nil
}

func newLogger(level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}
