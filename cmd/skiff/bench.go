package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/skiff-sh/skiff/internal/bench"
)

func benchCommand() *cobra.Command {
	root := &cobra.Command{Use: "bench", Short: "Benchmarks against any cluster reachable by a kubeconfig"}
	cfg := bench.APIConfig{}
	api := &cobra.Command{
		Use:   "api",
		Short: "API throughput: pod creates, LIST, watch fan-out, server RSS",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.Kubeconfig == "" {
				cfg.Kubeconfig = os.Getenv("KUBECONFIG")
			}
			_, err := bench.RunAPI(cmd.Context(), cfg, os.Stdout)
			return err
		},
	}
	f := api.Flags()
	f.StringVar(&cfg.Kubeconfig, "kubeconfig", "", "kubeconfig of the cluster to measure (default $KUBECONFIG)")
	f.IntVar(&cfg.Pods, "pods", 10000, "pods to create for each worker count")
	f.IntSliceVar(&cfg.Workers, "workers", []int{16, 64}, "concurrent creators")
	f.IntVar(&cfg.Watchers, "watchers", 100, "watchers for the fan-out test")
	f.IntVar(&cfg.Updates, "updates", 1000, "updates for the fan-out test")
	f.IntVar(&cfg.Lists, "lists", 5, "LIST repetitions per encoding")
	root.AddCommand(api)

	dcfg := bench.DeploymentConfig{}
	dep := &cobra.Command{
		Use:   "deployment",
		Short: "Workload controllers: Deployment scale-up and rolling-update times",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dcfg.Kubeconfig == "" {
				dcfg.Kubeconfig = os.Getenv("KUBECONFIG")
			}
			_, err := bench.RunDeployment(cmd.Context(), dcfg, os.Stdout)
			return err
		},
	}
	df := dep.Flags()
	df.StringVar(&dcfg.Kubeconfig, "kubeconfig", "", "kubeconfig of the cluster to measure (default $KUBECONFIG)")
	df.IntVar(&dcfg.ScaleTo, "scale-to", 10000, "replicas for the scale-up test")
	df.IntVar(&dcfg.Rollout, "rollout", 1000, "replicas for the rolling-update test")
	root.AddCommand(dep)
	return root
}
