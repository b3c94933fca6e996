#!/bin/bash
# Pod creates on three servers against one, as docs/benchmarks.md records
# them: three `skiff server --disable-agent` in network namespaces on a
# bridge this script makes (10.81.0.1-3, nothing leaves the namespaces),
# `skiff bench api` against each server in turn, then the same against a
# single server in its own namespace. Everything is removed on exit.
# usage: sudo test/bench/ha.sh [path/to/skiff] [pods per run]
set -euo pipefail
SKIFF=$(readlink -f "${1:-bin/skiff}")
PODS=${2:-5000}
TAG=skiffbha$$
WORK=$(mktemp -d /tmp/skiff-bench-ha.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	for n in 1 2 3 4; do ip netns del "$TAG-$n" 2>/dev/null || true; done
	ip netns del "$TAG" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

ip netns add "$TAG"
ip -n "$TAG" link add br0 type bridge
ip -n "$TAG" link set br0 up
for n in 1 2 3 4; do
	ip netns add "$TAG-$n"
	ip -n "$TAG-$n" link set lo up
	ip -n "$TAG-$n" link add eth0 type veth peer name "v$n" netns "$TAG"
	ip -n "$TAG-$n" addr add "10.81.0.$n/24" dev eth0
	ip -n "$TAG-$n" link set eth0 up
	ip -n "$TAG" link set "v$n" master br0
	ip -n "$TAG" link set "v$n" up
done

in_ns() { local n=$1; shift; nsenter --net=/var/run/netns/"$TAG-$n" "$@"; }

serve() { # n, extra flags...
	local n=$1
	shift
	in_ns "$n" "$SKIFF" server --data-dir "$WORK/s$n" --disable-agent --bind-address 0.0.0.0 \
		--advertise-address "10.81.0.$n" "$@" >>"$WORK/s$n.log" 2>&1 &
	PIDS+=($!)
	until in_ns "$n" curl -sk https://127.0.0.1:6443/readyz 2>/dev/null | grep -q '^ok'; do sleep 0.1; done
}

bench() { # n
	in_ns "$1" "$SKIFF" bench api --kubeconfig "$WORK/s$1/admin.kubeconfig" --pods "$PODS" --workers 64 --lists 1 --watchers 1 --updates 10 |
		grep -i "creates"
}

echo "machine: $(nproc) cores, $(uname -r)"
serve 1 --cluster-init
serve 2 --server https://10.81.0.1:6443 --token "$(cat "$WORK/s1/server-token")"
serve 3 --server https://10.81.0.1:6443 --token "$(cat "$WORK/s1/server-token")"
for n in 1 2 3; do echo "three servers, bench against server $n:"; bench "$n"; done
serve 4
echo "one server:"
bench 4
