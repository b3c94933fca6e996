package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/skiff-sh/skiff/internal/teardown"
)

// killallCommand takes this node's skiff down: its server or agent, every
// pod, containerd, and what they made on the machine (the data dir stays).
func killallCommand() *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "killall",
		Short: "Stop skiff and every pod on this node and remove its network setup, mounts and network namespaces (the data dir stays; safe to run twice)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger("info", "text")
			if err != nil {
				return err
			}
			return teardown.Killall(context.Background(), dataDir, log)
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", teardown.DefaultDataDir, "data dir of the server or agent to take down")
	return cmd
}

// uninstallCommand is killall, then the data dir removed.
func uninstallCommand() *cobra.Command {
	var dataDir string
	var yes bool
	cmd := &cobra.Command{
		Use:   "uninstall",
		Short: "skiff killall, then remove the data dir (its etcd, certificates, images and snapshots) for good",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			abs, err := filepath.Abs(dataDir)
			if err != nil {
				return err
			}
			if abs == "/" {
				return fmt.Errorf("refusing to remove /")
			}
			if !yes {
				fmt.Fprintf(cmd.OutOrStdout(), "This stops skiff and every pod on this node and deletes %s (etcd data, certificates, images, snapshots). Type yes to go on: ", abs)
				answer, _ := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if strings.TrimSpace(answer) != "yes" {
					return fmt.Errorf("not confirmed; nothing was changed")
				}
			}
			log, err := newLogger("info", "text")
			if err != nil {
				return err
			}
			if err := teardown.Killall(context.Background(), abs, log); err != nil {
				return fmt.Errorf("%w (the data dir is kept; run uninstall again)", err)
			}
			if err := os.RemoveAll(abs); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed %s\n", abs)
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", teardown.DefaultDataDir, "data dir of the server or agent to remove")
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask")
	return cmd
}
