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

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	"github.com/skiff-sh/skiff/internal/agent"
	"github.com/skiff-sh/skiff/internal/controlplane"
	"github.com/skiff-sh/skiff/internal/join"
	"github.com/skiff-sh/skiff/internal/procmem"
)

func agentCommand() *cobra.Command {
	var node nodeOptions
	var server, token, tokenFile, dataDir, logLevel, logFormat string
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Join a cluster as a node: kubelet with a supervised containerd",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := bindEnvAndConfig(cmd); err != nil {
				return err
			}
			if server == "" {
				return fmt.Errorf("--server is required (https://HOST:6443)")
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
				Server: server, Token: tok, NodeName: ncfg.NodeName, NodeIPs: []net.IP{ncfg.NodeIP},
				Dir: filepath.Join(ncfg.DataDir, "pki"),
			})
			if err != nil {
				return fmt.Errorf("join %s: %w", server, err)
			}
			log.Info("joined the cluster", "server", server, "node", ncfg.NodeName)
			go creds.KeepRenewed(ctx, join.RenewInterval, log)
			ncfg.ServingTLS = creds.ServingTLS
			return agent.Run(ctx, ncfg, creds.Rest)
		},
	}
	f := cmd.Flags()
	f.String("config", "", "YAML file of settings (keys are flag names)")
	f.StringVar(&server, "server", "", "API server URL of the cluster to join (https://HOST:6443)")
	f.StringVar(&token, "token", "", "node-join token (the server's <data-dir>/node-token)")
	f.StringVar(&tokenFile, "token-file", "", "file holding the node-join token")
	f.StringVar(&dataDir, "data-dir", "/var/lib/skiff", "directory for the node's certificates, containerd, pods and logs")
	node.addFlags(f)
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "text", "text or json")
	return cmd
}
