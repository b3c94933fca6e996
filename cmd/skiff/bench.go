package main

import (
	"fmt"
	"os"
	"time"

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
	f.IntVar(&cfg.Lists, "lists", 5, "LIST repetitions per encoding (0: none)")
	f.StringVar(&cfg.Namespace, "namespace", "", "existing namespace to work in (default: a new one, deleted afterwards)")
	root.AddCommand(api)

	ccfg := bench.CRDConfig{}
	crd := &cobra.Command{
		Use:   "crd",
		Short: "Custom resources: definition to first object, creates with a 50-field schema, discovery and OpenAPI with many definitions, a webhook's cost",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ccfg.Kubeconfig == "" {
				ccfg.Kubeconfig = os.Getenv("KUBECONFIG")
			}
			_, err := bench.RunCRD(cmd.Context(), ccfg, os.Stdout)
			return err
		},
	}
	cf := crd.Flags()
	cf.StringVar(&ccfg.Kubeconfig, "kubeconfig", "", "kubeconfig of the cluster to measure (default $KUBECONFIG)")
	cf.IntVar(&ccfg.Objects, "objects", 10000, "custom objects to create for each worker count")
	cf.IntSliceVar(&ccfg.Workers, "workers", []int{64}, "concurrent creators")
	cf.IntVar(&ccfg.CRDs, "crds", 200, "definitions installed for the discovery, OpenAPI and memory figures")
	cf.IntVar(&ccfg.Readies, "readies", 5, "definitions timed from create to first object served")
	cf.DurationVar(&ccfg.Settle, "settle", 100*time.Second, "idle time before each RSS reading (a quiet server gives back its free heap and garbage at the first 30 s check after a quiet 30 s)")
	cf.IntVar(&ccfg.Requests, "requests", 100, "discovery and OpenAPI requests timed")
	cf.BoolVar(&ccfg.Webhook, "webhook", true, "also time creates through a validating webhook served on loopback")
	root.AddCommand(crd)

	fcfg := bench.FairnessConfig{}
	fair := &cobra.Command{
		Use:   "fairness",
		Short: "One user's GET latency while greedy clients of another list in a loop",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := bench.RunFairness(cmd.Context(), fcfg, os.Stdout)
			return err
		},
	}
	ff := fair.Flags()
	ff.StringVar(&fcfg.Kubeconfig, "kubeconfig", "", "kubeconfig that makes the objects listed")
	ff.StringVar(&fcfg.Greedy, "greedy-kubeconfig", "", "kubeconfig of the greedy user")
	ff.StringVar(&fcfg.Victim, "victim-kubeconfig", "", "kubeconfig of the user whose GETs are timed")
	ff.IntVar(&fcfg.Clients, "clients", 64, "greedy clients, each listing in a loop")
	ff.IntVar(&fcfg.Objects, "objects", 1000, "ConfigMaps (1 KiB each) the greedy clients list")
	ff.DurationVar(&fcfg.Duration, "duration", 20*time.Second, "how long the flood lasts")
	ff.StringVar(&fcfg.Namespace, "namespace", "default", "namespace of the objects")
	root.AddCommand(fair)

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

	scfg := bench.SchedulerConfig{}
	sched := &cobra.Command{
		Use:   "scheduler",
		Short: "Scheduler throughput and attempt latency over fake nodes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if scfg.Kubeconfig == "" {
				scfg.Kubeconfig = os.Getenv("KUBECONFIG")
			}
			switch scfg.Mode {
			case "plain", "anti-affinity", "spread":
			default:
				return fmt.Errorf("--mode %q: want plain, anti-affinity or spread", scfg.Mode)
			}
			_, err := bench.RunScheduler(cmd.Context(), scfg, os.Stdout)
			return err
		},
	}
	sf := sched.Flags()
	sf.StringVar(&scfg.Kubeconfig, "kubeconfig", "", "kubeconfig of the cluster to measure (default $KUBECONFIG)")
	sf.IntVar(&scfg.Nodes, "nodes", 5000, "fake nodes to create")
	sf.IntVar(&scfg.Pods, "pods", 10000, "pods to schedule")
	sf.StringVar(&scfg.Mode, "mode", "plain", "plain, anti-affinity (required hostname anti-affinity within a group) or spread (zone spread constraint within a group)")
	sf.IntVar(&scfg.GroupSize, "group-size", 100, "pods per label group in the anti-affinity and spread modes")
	sf.IntVar(&scfg.Workers, "workers", 64, "concurrent creators")
	root.AddCommand(sched)

	pcfg := bench.PodStartConfig{}
	podstart := &cobra.Command{
		Use:   "podstart",
		Short: "Pod start latency: pods created at a steady rate, creation to Running and to Ready",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if pcfg.Kubeconfig == "" {
				pcfg.Kubeconfig = os.Getenv("KUBECONFIG")
			}
			if pcfg.Rate <= 0 || pcfg.Pods <= 0 {
				return fmt.Errorf("--pods and --rate must be positive")
			}
			_, err := bench.RunPodStart(cmd.Context(), pcfg, os.Stdout)
			return err
		},
	}
	pf := podstart.Flags()
	pf.StringVar(&pcfg.Kubeconfig, "kubeconfig", "", "kubeconfig of the cluster to measure (default $KUBECONFIG)")
	pf.IntVar(&pcfg.Pods, "pods", 100, "pods to start")
	pf.Float64Var(&pcfg.Rate, "rate", 10, "pods created per second")
	pf.StringVar(&pcfg.Image, "image", "docker.io/library/busybox:1.35", "image already present on the node")
	pf.StringVar(&pcfg.Node, "node", "", "node to pin the pods to (default: scheduled)")
	pf.BoolVar(&pcfg.Keep, "keep", false, "leave the pods running (to measure an agent with idle pods)")
	root.AddCommand(podstart)
	return root
}
