package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/skiff-sh/skiff/internal/agent"
	"github.com/skiff-sh/skiff/internal/controlplane"
	"github.com/skiff-sh/skiff/internal/join"
	"github.com/skiff-sh/skiff/internal/procmem"
)

// learnServersEvery is how often a node reads which servers the kubernetes
// Service lists.
const learnServersEvery = 10 * time.Second

func agentCommand() *cobra.Command {
	var node nodeOptions
	var servers []string
	var token, tokenFile, dataDir, logLevel, logFormat string
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Join a cluster as a node: kubelet with a supervised containerd",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := bindEnvAndConfig(cmd); err != nil {
				return err
			}
			if len(servers) == 0 {
				return fmt.Errorf("--server is required (https://HOST:6443; several for a cluster of servers)")
			}
			balancer, err := join.NewBalancer(servers)
			if err != nil {
				return fmt.Errorf("--server: %w", err)
			}
			if tokenFile != "" {
				b, err := os.ReadFile(tokenFile)
				if err != nil {
					return fmt.Errorf("--token-file: %w", err)
				}
				token = strings.TrimSpace(string(b))
			}
			tok, err := join.Parse(token)
			if err != nil {
				return fmt.Errorf("--token: %w (the server writes it to <data-dir>/node-token)", err)
			}
			log, err := newLogger(logLevel, logFormat)
			if err != nil {
				return err
			}
			klog.SetSlogLogger(log)
			ncfg, err := node.config(dataDir, controlplane.KubernetesVersion, log)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			go procmem.ReturnWhenIdle(ctx, log)
			creds, err := join.Obtain(ctx, join.Request{
				Server: servers[0], Balancer: balancer, Token: tok, NodeName: ncfg.NodeName, NodeIPs: []net.IP{ncfg.NodeIP},
				Dir: filepath.Join(ncfg.DataDir, "pki"),
			})
			if err != nil {
				return fmt.Errorf("join %v: %w", servers, err)
			}
			log.Info("joined the cluster", "servers", balancer.Servers(), "node", ncfg.NodeName)
			// The other servers, as the kubernetes Service lists them.
			if cs, err := kubernetes.NewForConfig(creds.Rest); err == nil {
				go balancer.Learn(ctx, cs, learnServersEvery)
			}
			go creds.KeepRenewed(ctx, join.RenewInterval, log)
			ncfg.ServingTLS = creds.ServingTLS
			return agent.Run(ctx, ncfg, creds.Rest)
		},
	}
	f := cmd.Flags()
	f.String("config", "", "YAML file of settings (keys are flag names)")
	f.StringSliceVar(&servers, "server", nil, "API server URL of the cluster to join (https://HOST:6443); several (comma-separated or repeated) for a cluster of servers: the node balances over them and fails over, learning the others from the kubernetes Service")
	f.StringVar(&token, "token", "", "node-join token (the server's <data-dir>/node-token)")
	f.StringVar(&tokenFile, "token-file", "", "file holding the node-join token")
	f.StringVar(&dataDir, "data-dir", "/var/lib/skiff", "directory for the node's certificates, containerd, pods and logs")
	node.addFlags(f)
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "text", "text or json")
	return cmd
}
