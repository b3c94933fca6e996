//go:build tools

// Package conformance pins the upstream programs this test module builds:
// the e2e suite, its agnhost and sample-apiserver images, ginkgo and
// kube-scheduler.
package conformance

import (
	_ "github.com/onsi/ginkgo/v2/ginkgo"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/test/e2e"
	_ "k8s.io/kubernetes/test/images/agnhost"
	_ "k8s.io/sample-apiserver"
)
