package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-sh/skiff/internal/controlplane"
)

// secretsEncryptCommand asks the running server about its encryption of
// Secrets at rest, or to rotate its key, as the admin.
func secretsEncryptCommand() *cobra.Command {
	var dataDir, kubeconfig string
	var timeout, serverWait time.Duration
	cmd := &cobra.Command{
		Use:       "secrets-encrypt status|rotate",
		Short:     "Show how Secrets are encrypted in etcd, or rotate the key (a new key seals every Secret, then the old one is retired)",
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"status", "rotate"},
		RunE: func(cmd *cobra.Command, args []string) error {
			if kubeconfig == "" {
				kubeconfig = filepath.Join(dataDir, "admin.kubeconfig")
			}
			cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
			if err != nil {
				return err
			}
			cfg.Timeout = timeout
			cs, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				return err
			}
			ctx := context.Background()
			rc := cs.Discovery().RESTClient()
			var body []byte
			switch args[0] {
			case "status":
				body, err = rc.Get().AbsPath(controlplane.SecretsEncryptionPath).DoRaw(ctx)
			case "rotate":
				req := rc.Post().AbsPath(controlplane.SecretsEncryptionRotatePath)
				if serverWait > 0 {
					req = req.Param("serverWait", serverWait.String())
				}
				body, err = req.DoRaw(ctx)
			default:
				return fmt.Errorf("unknown action %q: status or rotate", args[0])
			}
			var st controlplane.EncryptionStatus
			if jerr := json.Unmarshal(body, &st); err != nil || jerr != nil || st.Mode == "" {
				var e struct {
					Error string `json:"error"`
				}
				if json.Unmarshal(body, &e) == nil && e.Error != "" {
					return fmt.Errorf("%s", e.Error)
				}
				return fmt.Errorf("%s: %v %s", args[0], err, body)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Encryption: %s\nWrite key:  %s\n", st.Mode, st.WriteKey)
			if args[0] == "rotate" {
				fmt.Fprintf(out, "Rewritten:  %d Secrets\n", st.Rewritten)
			}
			if st.Generation > 0 {
				fmt.Fprintf(out, "Generation: %d (shared by the servers)\n", st.Generation)
			}
			if st.SharedError != "" {
				fmt.Fprintf(out, "Shared keys: not used here: %s\n", st.SharedError)
			}
			addrs := make([]string, 0, len(st.Servers))
			for a := range st.Servers {
				addrs = append(addrs, a)
			}
			sort.Strings(addrs)
			for _, a := range addrs {
				fmt.Fprintf(out, "Server %s: %s (generation %d)\n", a, st.Servers[a].WriteKey, st.Servers[a].Generation)
			}
			keys := make([]string, 0, len(st.Secrets))
			for k := range st.Secrets {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				fmt.Fprintf(out, "Secrets sealed with %s: %d\n", k, st.Secrets[k])
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataDir, "data-dir", "/var/lib/skiff", "the server's data directory (for its admin kubeconfig)")
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of a cluster-admin (default: <data-dir>/admin.kubeconfig)")
	f.DurationVar(&timeout, "timeout", 10*time.Minute, "how long a rotation may take")
	f.DurationVar(&serverWait, "server-wait", 0, "how long a rotation waits for every running server to load each step before it stops (default 1m; 1s to 10m)")
	return cmd
}
