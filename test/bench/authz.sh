#!/bin/bash
# The cost of authorization, as docs/benchmarks.md records it: pod creates
# by a user bound to `edit` in one namespace (so RBAC really evaluates each
# request), on a fresh server with --authorization-mode Node,RBAC and then
# one with AlwaysAllow, alternated RUNS times (machine drift shows as the
# spread between runs of the same mode).
# usage: test/bench/authz.sh [path/to/skiff] [runs]
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

run() { # mode
	cleanup
	DIR=$(mktemp -d /tmp/skiff-authz.XXXXXX)
	echo "bencher-token,bencher,u-bencher" >"$DIR/tokens.csv"
	"$SKIFF" server --data-dir "$DIR/data" --bind-address 127.0.0.1 --secure-port $PORT \
		--etcd-client-port 12379 --etcd-peer-port 12380 --disable-agent \
		--token-auth-file "$DIR/tokens.csv" --authorization-mode "$1" >>"$DIR/server.log" 2>&1 &
	PID=$!
	until curl -sk "https://127.0.0.1:$PORT/readyz" 2>/dev/null | grep -q '^ok'; do
		kill -0 "$PID" 2>/dev/null || { cat "$DIR/server.log"; exit 1; }
		sleep 0.01
	done
	local k="$SKIFF kubectl --kubeconfig $DIR/data/admin.kubeconfig"
	$k create namespace bench >/dev/null
	$k create rolebinding bencher-edits --clusterrole=edit --user=bencher -n bench >/dev/null
	$k config view --raw --minify >"$DIR/bencher.kubeconfig"
	KUBECONFIG="$DIR/bencher.kubeconfig" $k config set-credentials bencher --token=bencher-token >/dev/null
	KUBECONFIG="$DIR/bencher.kubeconfig" $k config set-context --current --user=bencher >/dev/null
	echo "== --authorization-mode $1"
	"$SKIFF" bench api --kubeconfig "$DIR/bencher.kubeconfig" --namespace bench --workers 64 --pods 10000 --watchers 10 --updates 100 --lists 1 | grep 'pod creates'
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
for _ in $(seq "$RUNS"); do
	run Node,RBAC
	run AlwaysAllow
done
