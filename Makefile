# skiff — build, run and test. Every target installs what it needs.
GO        ?= go
BIN       := bin/skiff
DATA_DIR  ?= /var/lib/skiff
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
# The embedded kubectl reports the Kubernetes release its module is
# (k8s.io/kubectl v0.37.2 is kubectl v1.37.2), built by skiff at VERSION;
# without these stamps `kubectl version` cannot parse its own version.
KUBE_VERSION := $(shell awk '$$1=="k8s.io/kubectl"{sub(/^v0\./,"v1.",$$2); print $$2}' go.mod)
KUBE_MINOR   := $(word 2,$(subst ., ,$(KUBE_VERSION)))
BUILD_DATE   := $(shell TZ=UTC git log -1 --date=format-local:%Y-%m-%dT%H:%M:%SZ --format=%cd 2>/dev/null || echo 1970-01-01T00:00:00Z)
KUBE_STAMP    = gitVersion=$(KUBE_VERSION)+skiff gitMajor=1 gitMinor=$(KUBE_MINOR) gitCommit=$(VERSION) gitTreeState=clean buildDate=$(BUILD_DATE)
LDFLAGS   := -s -w -X main.version=$(VERSION) \
	$(foreach pkg,k8s.io/client-go/pkg/version k8s.io/component-base/version,$(foreach kv,$(KUBE_STAMP),-X $(pkg).$(kv)))
# A static, cgo-free binary. With cgo on, kubectl's kustomize (which imports
# Go's plugin package) makes the linker export every symbol dynamically:
# about 26 MB more binary, mapped into every process that runs it.
export CGO_ENABLED ?= 0
# System packages the project needs on Debian: the node agent's runtime
# (containerd, runc, the CNI plugins, iptables for their portmap, iproute2,
# nftables) and, for tests,
# busybox-static (test images are built from it), docker-registry and
# skopeo (a real registry for pull tests).
APT_PACKAGES := ca-certificates git containerd runc containernetworking-plugins iptables iproute2 nftables busybox-static docker-registry skopeo

.PHONY: all build run test unit integration e2e fuzz bench deps clean conformance

all: build

deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@command -v $(GO) >/dev/null || { echo "Go is required (https://go.dev/dl)"; exit 1; }

build: deps
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/skiff

# A single-node cluster: control plane with embedded etcd, and a node agent
# running containerd. Then:
#   export KUBECONFIG=$(DATA_DIR)/admin.kubeconfig; bin/skiff kubectl get ns
run: build
	$(BIN) server --data-dir $(DATA_DIR)

# Older kubectl releases the integration tests drive (each its own module
# under test/kubectl-compat, built from the Go module proxy).
COMPAT_KUBECTLS := bin/kubectl-1.20 bin/kubectl-1.26
# Stamped with their release, as the embedded kubectl is: unstamped,
# `kubectl version` fails to parse its own version.
bin/kubectl-%: test/kubectl-compat/v%/go.mod test/kubectl-compat/v%/go.sum test/kubectl-compat/v%/main.go
	cd test/kubectl-compat/v$* && v=$$(grep -o 'k8s.io/kubectl v0\.[0-9.]*' go.mod | sed 's/.* v0\./v1./') && \
	$(GO) build -trimpath -o $(CURDIR)/$@ -ldflags "-s -w $$(for p in k8s.io/client-go/pkg/version k8s.io/component-base/version; do \
		printf -- '-X %s.gitVersion=%s -X %s.gitMajor=1 -X %s.gitMinor=%s -X %s.gitTreeState=clean ' $$p $$v $$p $$p $(word 2,$(subst ., ,$*)) $$p; done)" .

# The previous skiff version, which the rolling-upgrade e2e test starts
# its servers with before it upgrades them to this one: built from the
# commit test/e2e/previous/commit names (the repository's history).
PREVIOUS_BIN := bin/skiff-previous
$(PREVIOUS_BIN): test/e2e/previous/commit test/e2e/previous/build.sh
	test/e2e/previous/build.sh $(CURDIR)/$@

# Every test: vet, then the unit tests (race detector on), the integration
# tests (the real binary, real clients), the end-to-end tests (real
# containerd, runc and CNI in network namespaces, and the kernel tests).
test: build $(COMPAT_KUBECTLS) $(PREVIOUS_BIN)
	$(GO) vet ./...
	$(GO) vet -tags kernel ./internal/proxy
	$(MAKE) --no-print-directory unit RACE=-race
	$(MAKE) --no-print-directory -j2 integration e2e

# Pure logic and packages that need no server, no root and no kernel
# features (the import rules in test/layers too). RACE=-race turns the race
# detector on, which needs cgo and a C compiler.
RACE ?=
unit:
	@if [ -n "$(RACE)" ] && ! command -v gcc >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev; fi
	CGO_ENABLED=$(if $(RACE),1,0) $(GO) test -count=1 $(RACE) ./internal/... ./cmd/... ./test/layers

# The real skiff binary with embedded etcd, driven by client-go and kubectl
# (this one and two older releases).
integration: build $(COMPAT_KUBECTLS)
	SKIFF_BIN=$(CURDIR)/$(BIN) SKIFF_COMPAT_KUBECTL='$(addprefix $(CURDIR)/,$(COMPAT_KUBECTLS))' $(GO) test -count=1 -timeout 20m ./test/integration

# Real containerd, runc and CNI, clusters in network namespaces (root), and
# the kernel tests of the service proxy's nftables rules.
e2e: build $(PREVIOUS_BIN)
	$(GO) test -count=1 -tags kernel -run 'InKernel|Rebuilt|Adopted' ./internal/proxy
	SKIFF_BIN=$(CURDIR)/$(BIN) SKIFF_PREVIOUS_BIN=$(CURDIR)/$(PREVIOUS_BIN) $(GO) test -count=1 -timeout 20m ./test/e2e

# Explore beyond the seed corpus (the seeds run in `make test`).
fuzz: build
	cd test/integration && SKIFF_BIN=$(CURDIR)/$(BIN) $(GO) test -run XXX -fuzz FuzzWrites -fuzztime 60s .

# The API benchmark as docs/benchmarks.md records it (server on loopback).
bench: build
	test/bench/api.sh $(BIN)

# Upstream's conformance suite against a two-node skiff, each node in a
# network namespace, a local registry standing in for registry.k8s.io;
# writes docs/conformance.md (FOCUS=regex: a focused run, whose report goes
# to test/conformance/_out/conformance.md). The first run builds the suite
# (about 25 minutes on 2 cores); a full run takes about an hour.
CONFORMANCE_PACKAGES := bind9-dnsutils netcat-openbsd socat curl bash docker-registry skopeo gcc make libc6-dev bzip2
conformance: build
	@missing=""; for p in $(CONFORMANCE_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi
	SKIFF=$(CURDIR)/$(BIN) FOCUS='$(FOCUS)' test/conformance/run.sh

clean:
	rm -rf bin
