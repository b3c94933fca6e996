package main

import (
	"os"

	"github.com/skiff-sh/skiff/internal/kubectl"
	_ "github.com/skiff-sh/skiff/internal/storage"
)

func main() {
	os.Exit(kubectl.Run(os.Args[1:], "/var/lib/skiff"))
}
