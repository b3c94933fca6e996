#!/bin/bash
# Runs the API benchmark the way docs/benchmarks.md records it: a fresh
# `skiff server` on a temporary data dir (loopback only), time to readyz,
# idle RSS, `skiff bench api`, then a restart on the same data dir with its
# time to readyz and idle RSS.
# usage: test/bench/api.sh [path/to/skiff] [extra bench api flags...]
set -euo pipefail
SKIFF=${1:-bin/skiff}
shift || true
DIR=$(mktemp -d /tmp/skiff-bench.XXXXXX)
PORT=16443
PID=""
cleanup() {
	[ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
	rm -rf "$DIR"
}
trap cleanup EXIT

curl_admin() {
	curl -sk --cert "$DIR/pki/admin.crt" --key "$DIR/pki/admin.key" "https://127.0.0.1:$PORT$1"
}

# start launches the server and sets READY to the time until /readyz says ok.
start() {
	local t0 t1
	t0=$(date +%s%N)
	"$SKIFF" server --data-dir "$DIR" --bind-address 127.0.0.1 --secure-port $PORT \
		--etcd-client-port 12379 --etcd-peer-port 12380 --disable-agent >>"$DIR/server.log" 2>&1 &
	PID=$!
	until curl -sk "https://127.0.0.1:$PORT/readyz" 2>/dev/null | grep -q '^ok'; do
		kill -0 "$PID" 2>/dev/null || { cat "$DIR/server.log"; exit 1; }
		sleep 0.01
	done
	t1=$(date +%s%N)
	READY="$(( (t1 - t0) / 1000000 )) ms"
}

idle_rss() {
	sleep 10
	curl_admin /metrics | awk '/^process_resident_memory_bytes/ {printf "%.1f MB\n", $2/1e6}'
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
start
echo "ready on a new data dir: $READY"
echo "idle RSS (new data dir): $(idle_rss)"
"$SKIFF" bench api --kubeconfig "$DIR/admin.kubeconfig" "$@"
kill "$PID"; wait "$PID" || true
start
echo "ready on the existing data dir: $READY"
echo "idle RSS (existing data dir): $(idle_rss)"
