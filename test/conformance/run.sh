#!/usr/bin/env bash
# run.sh: upstream's conformance suite against a two-node skiff.
#
# Builds upstream's e2e.test, ginkgo, agnhost and kube-scheduler from this
# module (k8s.io/kubernetes at the release in go.mod), makes the suite's
# images (images.sh), starts `skiff server` with its node agent and a second
# node (`skiff agent`), each in a network namespace of its own joined by a
# veth pair (nothing touches the machine's network),
# runs the [Conformance] tests (parallel first, then [Serial] ones), and
# writes docs/conformance.md from the JUnit reports.
#
# Environment: SKIFF (binary, default bin/skiff of the repo), FOCUS (a regex
# for a focused run; the report then goes to _out/conformance.md and
# docs/ is left alone), PROCS (parallel ginkgo processes, default 6),
# SERIAL=0 to leave out the [Serial] tests.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=$HERE/_out
SKIFF=${SKIFF:-$ROOT/bin/skiff}
PROCS=${PROCS:-6}
SERIAL=${SERIAL:-1}
FOCUS=${FOCUS:-}
NETNS=skiff-conformance
NODE_IP=10.78.0.1
NODE=node-10-78-0-1
DATA=$OUT/cluster
# The second node: a `skiff agent` in a network namespace of its own, joined
# to the first by a veth pair (the suite needs two untainted nodes).
NETNS2=skiff-conformance-2
NODE2_IP=10.78.0.2
NODE2=node-10-78-0-2
DATA2=$OUT/cluster-2
export PATH=/usr/local/go/bin:$PATH
mkdir -p "$OUT/bin" "$OUT/path" "$OUT/reports"
log() { echo "conformance: $*" >&2; }

# --- binaries -------------------------------------------------------------
build_tools() {
	cd "$HERE"
	local stamp
	# The stamp covers go.sum and this recipe: a changed build line rebuilds.
	stamp=$( (cat go.sum; declare -f build_tools) | sha256sum | cut -c1-16)
	if [ "$(cat "$OUT/bin/.stamp" 2>/dev/null)" != "$stamp" ]; then
		log "building e2e.test, ginkgo, agnhost, kube-scheduler, nnp (about 25 minutes on 2 cores)"
		# The suite derives versions from its own build (the Pod Security
		# fixtures it picks follow the release): stamp it as upstream does.
		local v cb=k8s.io/component-base/version
		v=$(go list -m -f '{{.Version}}' k8s.io/kubernetes)
		v=${v#v}
		go test -c -vet=off -o "$OUT/bin/e2e.test" -ldflags "-X $cb.gitVersion=v$v -X $cb.gitMajor=${v%%.*} \
-X $cb.gitMinor=$(echo "$v" | cut -d. -f2) -X $cb.gitTreeState=clean" k8s.io/kubernetes/test/e2e
		go build -o "$OUT/bin/ginkgo" github.com/onsi/ginkgo/v2/ginkgo
		CGO_ENABLED=0 go build -ldflags=-s -o "$OUT/bin/agnhost" k8s.io/kubernetes/test/images/agnhost
		CGO_ENABLED=0 go build -ldflags=-s -o "$OUT/bin/nnp" k8s.io/kubernetes/test/images/nonewprivs
		go build -o "$OUT/bin/kube-scheduler" k8s.io/kubernetes/cmd/kube-scheduler
		(cd /tmp && GOBIN="$OUT/bin" CGO_ENABLED=0 go install -ldflags=-s github.com/coredns/coredns@v1.12.1)
		echo "$stamp" >"$OUT/bin/.stamp"
	fi
	cd "$ROOT"
}

# The Aggregator test's sample API server (upstream's, from this module)
# and the etcd it stores into (etcd's own main, from skiff's module, which
# embeds the same server): each a minute to build, kept apart from
# build_tools so adding them did not rebuild e2e.test.
build_aggregator_tools() {
	[ -x "$OUT/bin/sample-apiserver" ] || (cd "$HERE" && CGO_ENABLED=0 go build -ldflags=-s -o "$OUT/bin/sample-apiserver" k8s.io/sample-apiserver)
	[ -x "$OUT/bin/etcd" ] || (cd "$ROOT" && CGO_ENABLED=0 go build -ldflags=-s -o "$OUT/bin/etcd" go.etcd.io/etcd/server/v3)
}

# Upstream's busybox test image is busybox 1.37.0. Debian bookworm ships
# 1.35, whose ash drops environment variables whose names are not
# identifiers (tests set such names; 1.37 keeps them), so the release
# source Debian mirrors is built here, static, once, with its own stamp.
BUSYBOX_VERSION=1.37.0
BUSYBOX_SHA256=3311dff32e746499f4df0d5df04d7eb396382d7e108bb9250e7b519b837043a4
build_busybox() {
	local dir=$OUT/busybox-$BUSYBOX_VERSION tmp
	[ -x "$dir/busybox" ] && return
	log "building busybox $BUSYBOX_VERSION (about 3 minutes on 2 cores)"
	tmp=$(mktemp -d)
	curl -fsSL -o "$tmp/src.tar.bz2" "http://deb.debian.org/debian/pool/main/b/busybox/busybox_$BUSYBOX_VERSION.orig.tar.bz2"
	echo "$BUSYBOX_SHA256  $tmp/src.tar.bz2" | sha256sum -c --quiet
	tar -xjf "$tmp/src.tar.bz2" -C "$tmp"
	(cd "$tmp/busybox-$BUSYBOX_VERSION" && make defconfig >/dev/null &&
		sed -i 's/^# CONFIG_STATIC is not set/CONFIG_STATIC=y/' .config && make -j"$(nproc)" busybox >/dev/null 2>&1)
	install -D -m 0755 "$tmp/busybox-$BUSYBOX_VERSION/busybox" "$dir/busybox"
	rm -rf "$tmp"
}

# --- the cluster ----------------------------------------------------------
in_ns() { nsenter --net=/var/run/netns/$NETNS "$@"; }
kubectl() { "$SKIFF" kubectl --kubeconfig "$DATA/admin.kubeconfig" "$@"; }

cluster_up() {
	cluster_down
	ip netns add $NETNS
	ip netns add $NETNS2
	ip -n $NETNS link set lo up
	ip -n $NETNS2 link set lo up
	ip -n $NETNS link add host0 type veth peer name host0 netns $NETNS2
	ip -n $NETNS addr add $NODE_IP/24 dev host0
	ip -n $NETNS2 addr add $NODE2_IP/24 dev host0
	ip -n $NETNS link set host0 up
	ip -n $NETNS2 link set host0 up
	mkdir -p "$DATA" "$DATA2"
	# Only the network namespace is entered: a new mount namespace would
	# hide the cgroup mounts runc needs.
	setsid nsenter --net=/var/run/netns/$NETNS "$SKIFF" server --data-dir "$DATA" --bind-address 0.0.0.0 \
		--node-ip $NODE_IP --node-name $NODE --advertise-address $NODE_IP >"$OUT/server.log" 2>&1 </dev/null &
	echo $! >"$OUT/server.pid"
	local i
	for i in $(seq 1 120); do
		[ -f "$DATA/admin.kubeconfig" ] && in_ns "$SKIFF" kubectl --kubeconfig "$DATA/admin.kubeconfig" wait --for=condition=Ready node/$NODE --timeout=1s >/dev/null 2>&1 && return 0
		sleep 1
	done
	log "node not Ready after 120 s; server log: $OUT/server.log"
	return 1
}

# agent_up joins the second node with the server's token.
agent_up() {
	setsid nsenter --net=/var/run/netns/$NETNS2 "$SKIFF" agent --server https://$NODE_IP:6443 \
		--token-file "$DATA/node-token" --data-dir "$DATA2" --node-ip $NODE2_IP --node-name $NODE2 \
		>"$OUT/agent.log" 2>&1 </dev/null &
	echo $! >"$OUT/agent.pid"
	local i
	for i in $(seq 1 120); do
		in_ns "$SKIFF" kubectl --kubeconfig "$DATA/admin.kubeconfig" wait --for=condition=Ready node/$NODE2 --timeout=1s >/dev/null 2>&1 && return 0
		sleep 1
	done
	log "second node not Ready after 120 s; agent log: $OUT/agent.log"
	return 1
}

# registry_up serves the suite's images as registry.k8s.io would, for the
# tests that pull with policy Always: Debian's docker-registry on the first
# node's address, each image pushed under its upstream path, and a
# hosts.toml on both nodes that sends registry.k8s.io there.
registry_up() {
	local dir=$OUT/registry
	rm -rf "$dir" && mkdir -p "$dir"
	printf 'version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s:5000\n' \
		"$dir/data" $NODE_IP >"$dir/config.yml"
	setsid nsenter --net=/var/run/netns/$NETNS docker-registry serve "$dir/config.yml" >"$OUT/registry.log" 2>&1 </dev/null &
	echo $! >"$OUT/registry.pid"
	for _ in $(seq 1 30); do in_ns bash -c "exec 3<>/dev/tcp/$NODE_IP/5000" 2>/dev/null && break; sleep 0.5; done
	local f ref
	for f in "$OUT"/images/*.tar; do
		# The archive names its image; registry.k8s.io/ is the host part.
		ref=$(basename "$f" .tar); ref=${ref#registry.k8s.io_}; ref=${ref//_//}
		ref="${ref%/*}:${ref##*/}"
		in_ns skopeo copy --quiet --dest-tls-verify=false "oci-archive:$f" "docker://$NODE_IP:5000/$ref" >/dev/null
	done
	local d
	for d in "$DATA" "$DATA2"; do
		mkdir -p "$d/agent/containerd/certs.d/registry.k8s.io"
		printf 'server = "https://registry.k8s.io"\n\n[host."http://%s:5000"]\n  capabilities = ["pull", "resolve"]\n' $NODE_IP \
			>"$d/agent/containerd/certs.d/registry.k8s.io/hosts.toml"
	done
}

# descendants PID: every process below PID.
descendants() {
	local c
	for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do
		echo "$c"
		descendants "$c"
	done
}

# stop_group PIDFILE: TERM, then KILL, the process group setsid made.
stop_group() {
	[ -f "$1" ] || return 0
	local pid
	pid=$(cat "$1")
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM -- "-$pid" 2>/dev/null || true
		for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
		kill -KILL -- "-$pid" 2>/dev/null || true
	fi
	rm -f "$1"
}

# clean_node DATA: containerd's shims outlive it by design; they and their
# containers go, then the node's mounts and files.
clean_node() {
	local shim
	for shim in $(pgrep -f "containerd-shim.*-address $1" || true); do
		kill -KILL "$shim" $(descendants "$shim") 2>/dev/null || true
	done
	if [ -d "$1" ]; then
		{ grep -o " $1[^ ]*" /proc/self/mounts || true; } | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
		rm -rf "$1"
	fi
}

cluster_down() {
	stop_group "$OUT/registry.pid"
	stop_group "$OUT/agent.pid"
	if [ -f "$OUT/server.pid" ]; then
		local pid
		pid=$(cat "$OUT/server.pid")
		if kill -0 "$pid" 2>/dev/null; then
			in_ns "$SKIFF" kubectl --kubeconfig "$DATA/admin.kubeconfig" delete pods --all --all-namespaces \
				--grace-period=0 --force --wait=false >/dev/null 2>&1 || true
			# setsid made the server a group leader: the group is its own.
			kill -TERM -- "-$pid" 2>/dev/null || true
			for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
			kill -KILL -- "-$pid" 2>/dev/null || true
		fi
		rm -f "$OUT/server.pid"
	fi
	clean_node "$DATA2"
	clean_node "$DATA"
	ip netns del $NETNS2 2>/dev/null || true
	ip netns del $NETNS 2>/dev/null || true
}

# --- upstream's scheduler ---------------------------------------------------
# upstream_scheduler: kube-scheduler of the same release, pointed at skiff
# with the admin kubeconfig under a scheduler name of its own, must sync
# its informers (every resource it watches must be served) and bind a pod.
upstream_scheduler() {
	cat >"$OUT/kube-scheduler.yaml" <<-EOF
		apiVersion: kubescheduler.config.k8s.io/v1
		kind: KubeSchedulerConfiguration
		clientConnection: {kubeconfig: $DATA/admin.kubeconfig}
		leaderElection: {leaderElect: false}
		profiles: [{schedulerName: upstream-scheduler}]
	EOF
	# nsenter execs the scheduler, so $! is the scheduler's own PID.
	nsenter --net=/var/run/netns/$NETNS "$OUT/bin/kube-scheduler" --config "$OUT/kube-scheduler.yaml" --secure-port=0 >"$OUT/kube-scheduler.log" 2>&1 &
	local sched=$! node=""
	in_ns "$SKIFF" kubectl --kubeconfig "$DATA/admin.kubeconfig" apply -f - >/dev/null <<-EOF
		apiVersion: v1
		kind: Pod
		metadata: {name: upstream-scheduled, namespace: default}
		spec:
		  schedulerName: upstream-scheduler
		  containers: [{name: c, image: registry.k8s.io/pause:3.10.2}]
	EOF
	for _ in $(seq 1 60); do
		node=$(in_ns "$SKIFF" kubectl --kubeconfig "$DATA/admin.kubeconfig" get pod upstream-scheduled -o 'jsonpath={.spec.nodeName}')
		[ -n "$node" ] && break
		sleep 1
	done
	kill "$sched"; wait "$sched" 2>/dev/null || true
	in_ns "$SKIFF" kubectl --kubeconfig "$DATA/admin.kubeconfig" delete pod upstream-scheduled --wait=false >/dev/null
	if [ -z "$node" ]; then
		log "FAIL: upstream kube-scheduler did not bind its pod (log: $OUT/kube-scheduler.log)"
		return 1
	fi
	log "upstream kube-scheduler bound its pod to $node"
}

# --- the suite --------------------------------------------------------------
run_suite() { # NAME FOCUS SKIP PROCS
	local name=$1 focus=$2 skip=$3 procs=$4
	log "running $name tests ($procs processes)"
	rm -rf "${OUT:?}/reports/$name"
	mkdir -p "$OUT/reports/$name"
	# The suite runs kubectl from PATH: skiff's own, stamped v1.37.x.
	printf '#!/bin/sh\nexec %s kubectl "$@"\n' "$SKIFF" >"$OUT/path/kubectl"
	chmod +x "$OUT/path/kubectl"
	in_ns env PATH="$OUT/path:$PATH" KUBECONFIG="$DATA/admin.kubeconfig" \
		"$OUT/bin/ginkgo" --procs="$procs" --timeout=3h --focus="$focus" --skip="$skip" \
		--junit-report=junit.xml --output-dir="$OUT/reports/$name" --no-color \
		"$OUT/bin/e2e.test" -- --provider=skeleton --kubeconfig="$DATA/admin.kubeconfig" \
		--report-dir="$OUT/reports/$name" >"$OUT/reports/$name/ginkgo.log" 2>&1 || true
}

build_tools
build_aggregator_tools
build_busybox
if [ ! -x "$SKIFF" ]; then make -C "$ROOT" build; fi
log "making images"
SKIFF=$SKIFF BIN=$OUT/bin BUSYBOX=$OUT/busybox-$BUSYBOX_VERSION/busybox K8S_SRC=$(go -C "$HERE" list -m -f '{{.Dir}}' k8s.io/kubernetes) "$HERE/images.sh" "$OUT/images" >/dev/null
trap cluster_down EXIT
cluster_up
agent_up
for f in "$OUT"/images/*.tar; do
	"$SKIFF" images import --data-dir "$DATA" "$f" >/dev/null
	"$SKIFF" images import --data-dir "$DATA2" "$f" >/dev/null
done
registry_up
log "cluster of two nodes up, images imported and served by a registry for registry.k8s.io"
scheduler_ok=1
upstream_scheduler || scheduler_ok=0

start=$(date +%s)
conformance='\[Conformance\]'
if [ -n "$FOCUS" ]; then
	run_suite focused "$conformance.*($FOCUS)|($FOCUS).*$conformance" '\[Disruptive\]' "$PROCS"
else
	run_suite parallel "$conformance" '\[Serial\]|\[Disruptive\]' "$PROCS"
	[ "$SERIAL" = 1 ] && run_suite serial "\[Serial\].*$conformance|$conformance.*\[Serial\]" '\[Disruptive\]' 1
fi
minutes=$(( ($(date +%s) - start) / 60 ))

report=$ROOT/docs/conformance.md
reports=$OUT/reports
if [ -n "$FOCUS" ]; then
	# A focused run reports on its own specs only.
	report=$OUT/conformance.md
	rm -rf "$OUT/focused-reports" && mkdir -p "$OUT/focused-reports" && cp -r "$OUT/reports/focused" "$OUT/focused-reports/"
	reports=$OUT/focused-reports
else
	rm -rf "$OUT/reports/focused"
fi
# The commit is the binary's own (skiff --version), not the checkout's:
# the two differ when a copy of an older build is measured.
go -C "$HERE" run ./report --reports "$reports" --commit "$("$SKIFF" --version | awk '{print $NF}')" \
	--minutes "$minutes" --out "$report"
log "report: $report"
[ "$scheduler_ok" = 1 ]
