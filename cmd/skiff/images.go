package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/skiff-sh/skiff/internal/image"
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
	cmd.AddCommand(imp, imagesBuildCommand())
	return cmd
}

// imagesBuildCommand writes an OCI image archive from host files, so that
// a machine with no registry still has images to run.
func imagesBuildCommand() *cobra.Command {
	var tag, from, busybox, out, user, workdir string
	var command, entrypoint, env []string
	build := &cobra.Command{
		Use:   "build --tag NAME -o FILE.tar (--busybox PATH | --from DIR)",
		Short: "Build a one-layer OCI image archive from a directory or a static busybox (then: skiff images import FILE.tar)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if tag == "" || out == "" {
				return fmt.Errorf("--tag and -o are required")
			}
			if (from == "") == (busybox == "") {
				return fmt.Errorf("give exactly one of --from DIR and --busybox PATH")
			}
			var b *image.Builder
			if busybox != "" {
				var err error
				if b, err = image.Busybox(tag, busybox); err != nil {
					return err
				}
			} else {
				b = image.New(tag)
				if err := b.AddTree(from, "/"); err != nil {
					return fmt.Errorf("image from %s: %w", from, err)
				}
			}
			if len(command) > 0 {
				b.Config.Cmd = command
			}
			if len(entrypoint) > 0 {
				b.Config.Entrypoint = entrypoint
			}
			if user != "" {
				b.Config.User = user
			}
			if workdir != "" {
				b.Config.WorkingDir = workdir
			}
			b.Config.Env = append(b.Config.Env, env...)
			if err := b.WriteLayoutFile(out); err != nil {
				return err
			}
			cmd.Printf("wrote %s (%s)\n", out, tag)
			return nil
		},
	}
	f := build.Flags()
	f.StringVar(&tag, "tag", "", "image name, e.g. docker.io/library/busybox:1.35 (a tag avoids pulls: imagePullPolicy defaults to IfNotPresent)")
	f.StringVarP(&out, "output", "o", "", "archive to write")
	f.StringVar(&from, "from", "", "directory to copy as the image's root filesystem")
	f.StringVar(&busybox, "busybox", "", "static busybox binary (Debian's busybox-static: /bin/busybox) to make a shell image from")
	f.StringSliceVar(&command, "cmd", nil, "default command (comma separated)")
	f.StringSliceVar(&entrypoint, "entrypoint", nil, "entrypoint (comma separated); the command becomes its arguments")
	f.StringVar(&user, "user", "", "user (and group) the image runs as, e.g. 1234 or 1234:1234")
	f.StringVar(&workdir, "workdir", "", "working directory of the image's processes")
	f.StringArrayVar(&env, "env", nil, "environment entry NAME=value (repeat for more)")
	return build
}
