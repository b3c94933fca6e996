#!/bin/bash
# The cost of issue 19's guard rails, as docs/benchmarks.md records it: pod
# creates at 64 workers (skiff bench api, as the admin) on a fresh server
# with every default admission plugin, Secrets encrypted and a
# Metadata-level audit policy writing to a file, and then one with all
# three off, alternated RUNS times (machine drift shows as the spread
# between runs of the same setup).
# usage: test/bench/admission.sh [path/to/skiff] [runs]
set -euo pipefail
SKIFF=${1:-bin/skiff}
RUNS=${2:-2}
DIR=""
PID=""
PORT=16443
cleanup() {
	[ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
	[ -n "$DIR" ] && rm -rf "$DIR"
	return 0
}
trap cleanup EXIT

run() { # name, server flags...
	local name=$1
	shift
	cleanup
	DIR=$(mktemp -d /tmp/skiff-admission.XXXXXX)
	printf 'apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n' >"$DIR/policy.yaml"
	local args=("$@")
	for i in "${!args[@]}"; do args[$i]=${args[$i]//@DIR@/$DIR}; done
	"$SKIFF" server --data-dir "$DIR/data" --bind-address 127.0.0.1 --secure-port $PORT \
		--etcd-client-port 12379 --etcd-peer-port 12380 --disable-agent "${args[@]}" >>"$DIR/server.log" 2>&1 &
	PID=$!
	until curl -sk "https://127.0.0.1:$PORT/readyz" 2>/dev/null | grep -q '^ok'; do
		kill -0 "$PID" 2>/dev/null || { cat "$DIR/server.log"; exit 1; }
		sleep 0.01
	done
	"$SKIFF" kubectl --kubeconfig "$DIR/data/admin.kubeconfig" create namespace bench >/dev/null
	echo "== $name"
	"$SKIFF" bench api --kubeconfig "$DIR/data/admin.kubeconfig" --namespace bench --workers 64 --pods 10000 --watchers 10 --updates 100 --lists 1 | grep 'pod creates'
	[ -f "$DIR/audit.log" ] && echo "audit events: $(wc -l <"$DIR/audit.log")"
	return 0
}

ALL_PLUGINS=NamespaceLifecycle,LimitRanger,ServiceAccount,TaintNodesByCondition,Priority,DefaultTolerationSeconds,DefaultStorageClass,StorageObjectInUseProtection,RuntimeClass,DefaultIngressClass,ResourceQuota
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
for _ in $(seq "$RUNS"); do
	run "admission, encryption, Metadata audit" --audit-policy-file @DIR@/policy.yaml --audit-log-path @DIR@/audit.log
	run "all three off" --disable-admission-plugins $ALL_PLUGINS --secrets-encryption=false
done
