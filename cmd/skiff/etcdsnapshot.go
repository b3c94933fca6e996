package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-sh/skiff/internal/controlplane"
)

// etcdSnapshotCommand asks the running server, as the admin, to save, list,
// delete or prune snapshots of its etcd (kept on the server's disk).
func etcdSnapshotCommand() *cobra.Command {
	var dataDir, kubeconfig, name string
	var retention int
	var timeout time.Duration
	cmd := &cobra.Command{Use: "etcd-snapshot", Short: "Save, list, delete and prune snapshots of the cluster's etcd (restore: skiff server --cluster-reset --cluster-reset-restore-path FILE)"}
	client := func() (rest.Interface, error) {
		if kubeconfig == "" {
			kubeconfig = filepath.Join(dataDir, "admin.kubeconfig")
		}
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, err
		}
		cfg.Timeout = timeout
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return nil, err
		}
		return cs.Discovery().RESTClient(), nil
	}
	// do sends one operation and reads its reply (or its error).
	do := func(req func(rest.Interface) *rest.Request) (controlplane.SnapshotReply, error) {
		var rep controlplane.SnapshotReply
		rc, err := client()
		if err != nil {
			return rep, err
		}
		body, err := req(rc).DoRaw(context.Background())
		if jerr := json.Unmarshal(body, &rep); jerr != nil {
			if err == nil {
				err = jerr
			}
			return rep, fmt.Errorf("%v: %s", err, body)
		}
		if rep.Error != "" {
			return rep, fmt.Errorf("%s", rep.Error)
		}
		return rep, err
	}
	save := &cobra.Command{Use: "save", Short: "Save a snapshot now (<name>-<node>-<unix time> in the server's snapshot directory)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep, err := do(func(rc rest.Interface) *rest.Request {
				return rc.Post().AbsPath(controlplane.EtcdSnapshotsPath).Param("name", name)
			})
			if err != nil {
				return err
			}
			for _, f := range rep.Snapshots {
				fmt.Fprintf(cmd.OutOrStdout(), "Snapshot %s saved (%d bytes): %s\n", f.File, f.Size, f.Path)
			}
			return nil
		}}
	save.Flags().StringVar(&name, "name", controlplane.OnDemandSnapshot, "name the snapshot file starts with")
	ls := &cobra.Command{Use: "ls", Aliases: []string{"list"}, Short: "List the snapshots, oldest first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep, err := do(func(rc rest.Interface) *rest.Request { return rc.Get().AbsPath(controlplane.EtcdSnapshotsPath) })
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "Name\tLocation\tSize\tCreated")
			for _, f := range rep.Snapshots {
				fmt.Fprintf(w, "%s\tfile://%s\t%d\t%s\n", f.File, f.Path, f.Size, f.Created.Format(time.RFC3339))
			}
			return w.Flush()
		}}
	del := &cobra.Command{Use: "delete NAME...", Short: "Delete snapshots by the names ls shows", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rep, err := do(func(rc rest.Interface) *rest.Request {
				r := rc.Delete().AbsPath(controlplane.EtcdSnapshotsPath)
				for _, a := range args {
					r = r.Param("file", a)
				}
				return r
			})
			for _, f := range rep.Removed {
				fmt.Fprintf(cmd.OutOrStdout(), "Snapshot %s deleted\n", f)
			}
			return err
		}}
	prune := &cobra.Command{Use: "prune", Short: "Delete all but the newest --snapshot-retention snapshots of one name", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep, err := do(func(rc rest.Interface) *rest.Request {
				return rc.Post().AbsPath(controlplane.EtcdSnapshotsPrunePath).Param("name", name).Param("retention", strconv.Itoa(retention))
			})
			for _, f := range rep.Removed {
				fmt.Fprintf(cmd.OutOrStdout(), "Snapshot %s deleted\n", f)
			}
			return err
		}}
	prune.Flags().StringVar(&name, "name", controlplane.OnDemandSnapshot, "name of the snapshots to prune")
	prune.Flags().IntVar(&retention, "snapshot-retention", 5, "snapshots of that name to keep")
	f := cmd.PersistentFlags()
	f.StringVar(&dataDir, "data-dir", "/var/lib/skiff", "the server's data directory (for its admin kubeconfig)")
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of a cluster-admin (default: <data-dir>/admin.kubeconfig)")
	f.DurationVar(&timeout, "timeout", 10*time.Minute, "how long an operation may take")
	cmd.AddCommand(save, ls, del, prune)
	return cmd
}
