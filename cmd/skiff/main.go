// Command skiff is a Kubernetes-compatible container orchestrator in one
// binary. This file wires subcommands; the logic lives under internal/.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/skiff-sh/skiff/internal/kubectl"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	// kubectl parses its own flags: hand it everything after "kubectl".
	if len(os.Args) > 1 && os.Args[1] == "kubectl" {
		os.Exit(kubectl.Run(os.Args[2:], dataDirFromEnv()))
	}
	root := &cobra.Command{
		Use:           "skiff",
		Short:         "skiff: a Kubernetes-compatible cluster in one binary",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.AddCommand(serverCommand(), agentCommand(), benchCommand(), imagesCommand(), secretsEncryptCommand(), etcdSnapshotCommand(), killallCommand(), uninstallCommand(), &cobra.Command{
		Use:                "kubectl",
		Short:              "Run kubectl against the local cluster (admin kubeconfig by default)",
		DisableFlagParsing: true,
	})
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "skiff:", err)
		os.Exit(1)
	}
}

func dataDirFromEnv() string {
	if d := os.Getenv("SKIFF_DATA_DIR"); d != "" {
		return d
	}
	return "/var/lib/skiff"
}
