// Package kubectl embeds the real kubectl (k8s.io/kubectl) as `skiff kubectl`.
package kubectl

import (
	"os"
	"path/filepath"
	"strings"

	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
)

// Run executes kubectl with args and returns its exit code. When neither
// KUBECONFIG nor --kubeconfig is given, the admin kubeconfig in dataDir is used.
func Run(args []string, dataDir string) int {
	if os.Getenv("KUBECONFIG") == "" && !hasFlag(args, "--kubeconfig") {
		os.Setenv("KUBECONFIG", filepath.Join(dataDir, "admin.kubeconfig"))
	}
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	command := cmd.NewDefaultKubectlCommandWithArgs(cmd.KubectlOptions{
		Arguments:   append([]string{"kubectl"}, args...),
		ConfigFlags: genericclioptions.NewConfigFlags(true).WithDiscoveryBurst(300).WithDiscoveryQPS(50).WithWarningPrinter(streams),
		IOStreams:   streams,
	})
	command.SetArgs(args)
	return cli.Run(command)
}

func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if a == name || strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}
