package main

import (
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/skiff-sh/skiff/internal/runtime"
)

func imagesCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "images", Short: "Manage the node's container images"}
	var dataDir, endpoint string
	imp := &cobra.Command{
		Use:   "import FILE.tar...",
		Short: "Import OCI layout or docker-save archives into the node's runtime (no registry needed)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := bindEnvAndConfig(cmd); err != nil {
				return err
			}
			sock := strings.TrimPrefix(endpoint, "unix://")
			if sock == "" {
				sock = runtime.Containerd{Dir: filepath.Join(dataDir, "agent", "containerd")}.Socket()
			}
			for _, f := range args {
				if err := runtime.ImportArchive(cmd.Context(), sock, f); err != nil {
					return err
				}
				cmd.Printf("imported %s\n", f)
			}
			return nil
		},
	}
	imp.Flags().String("config", "", "YAML file of settings (keys are flag names)")
	imp.Flags().StringVar(&dataDir, "data-dir", "/var/lib/skiff", "data dir of the node whose containerd receives the images")
	imp.Flags().StringVar(&endpoint, "container-runtime-endpoint", "", "containerd socket (default: the one skiff runs under --data-dir)")
	cmd.AddCommand(imp)
	return cmd
}
