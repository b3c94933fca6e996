#!/bin/bash
# Fair sharing, as docs/benchmarks.md records it: one user's single GETs
# timed while 64 clients of another user list 1,000 ConfigMaps in a loop,
# on a fresh server with API Priority and Fairness on (the default) and
# then off, alternated RUNS times.
# usage: test/bench/fairness.sh [path/to/skiff] [runs]
set -euo pipefail
SKIFF=${1:-bin/skiff}
RUNS=${2:-1}
DIR=""
PID=""
PORT=16443
cleanup() {
	[ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
	[ -n "$DIR" ] && rm -rf "$DIR"
	return 0
}
trap cleanup EXIT

user_kubeconfig() { # name token
	local k="$SKIFF kubectl --kubeconfig $DIR/data/admin.kubeconfig"
	$k config view --raw --minify >"$DIR/$1.kubeconfig"
	KUBECONFIG="$DIR/$1.kubeconfig" $k config set-credentials "$1" --token="$2" >/dev/null
	KUBECONFIG="$DIR/$1.kubeconfig" $k config set-context --current --user="$1" >/dev/null
}

run() { # apf on|off
	cleanup
	DIR=$(mktemp -d /tmp/skiff-fairness.XXXXXX)
	printf 'greedy-token,greedy,u-greedy\nvictim-token,victim,u-victim\n' >"$DIR/tokens.csv"
	"$SKIFF" server --data-dir "$DIR/data" --bind-address 127.0.0.1 --secure-port $PORT \
		--etcd-client-port 12379 --etcd-peer-port 12380 --disable-agent \
		--token-auth-file "$DIR/tokens.csv" --enable-priority-and-fairness="$1" >>"$DIR/server.log" 2>&1 &
	PID=$!
	until curl -sk "https://127.0.0.1:$PORT/readyz" 2>/dev/null | grep -q '^ok'; do
		kill -0 "$PID" 2>/dev/null || { cat "$DIR/server.log"; exit 1; }
		sleep 0.01
	done
	"$SKIFF" kubectl --kubeconfig "$DIR/data/admin.kubeconfig" create clusterrolebinding readers --clusterrole=view --user=greedy --user=victim >/dev/null
	user_kubeconfig greedy greedy-token
	user_kubeconfig victim victim-token
	echo "== --enable-priority-and-fairness=$1"
	"$SKIFF" bench fairness --kubeconfig "$DIR/data/admin.kubeconfig" --greedy-kubeconfig "$DIR/greedy.kubeconfig" \
		--victim-kubeconfig "$DIR/victim.kubeconfig" --clients 64 --objects 1000 --duration 20s
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
for _ in $(seq "$RUNS"); do
	run true
	run false
done
