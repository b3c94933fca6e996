#!/bin/bash
# Runs the node agent benchmarks the way docs/benchmarks.md records them,
# inside a network namespace this script makes (and removes): a control
# plane (`skiff server --disable-agent`) and a separate `skiff agent`
# joined with the node token, so the agent's own memory and CPU can be read.
#   1. idle agent RSS with no pods;
#   2. `skiff bench podstart`: 100 pods at 10 pods/s, creation → Running/Ready,
#      with the CPU the server, agent, containerd and the machine spent; then
#      30 pods at 2 pods/s;
#   3. 110 pods kept running: agent RSS and agent CPU over 60 s.
# usage: test/bench/podstart.sh [path/to/skiff]   (as root)
set -euo pipefail
SKIFF=$(readlink -f "${1:-bin/skiff}")
DIR=$(mktemp -d /tmp/skiff-bench-node.XXXXXX)
NS=skiff-bench-$$
IP=10.79.0.1
NODE=bench-node
SERVER_PID="" AGENT_PID=""
in_ns() { nsenter --net=/var/run/netns/$NS "$@"; }
kubectl() { in_ns "$SKIFF" kubectl --kubeconfig "$DIR/server/admin.kubeconfig" "$@"; }

cleanup() {
	set +e
	save_logs
	if [ -n "$AGENT_PID" ]; then
		kubectl delete ns -l skiff-bench=podstart --wait=false >/dev/null 2>&1
		for _ in $(seq 120); do
			[ -z "$(ls -A "$DIR/agent/agent/pods" 2>/dev/null)" ] && break
			sleep 1
		done
		kill "$AGENT_PID"; wait "$AGENT_PID"
	fi
	[ -n "$SERVER_PID" ] && { kill "$SERVER_PID"; wait "$SERVER_PID"; }
	for p in $(pgrep -f "containerd.*$DIR"); do kill -9 "$p"; done
	sleep 0.5
	awk -v d="$DIR/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l
	ip netns del $NS
	rm -rf "$DIR"
}
trap cleanup EXIT
# Keep the logs when asked: SKIFF_BENCH_LOGS=DIR.
save_logs() { [ -n "${SKIFF_BENCH_LOGS:-}" ] && cp "$DIR"/*.log "$SKIFF_BENCH_LOGS"/ || true; }

rss() { awk '/^VmRSS/ {r=$2} /^RssAnon/ {a=$2} /^RssFile/ {f=$2} END {printf "%.1f MB (anonymous %.1f, file %.1f)", r/1024, a/1024, f/1024}' /proc/$1/status; }
cpu_ticks() { awk '{print $14 + $15}' /proc/$1/stat; }
# busy and total ticks of the whole machine
machine_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8}' /proc/stat; }

ip netns add $NS
ip -n $NS link set lo up
ip -n $NS link add host0 type veth peer name host0p
ip -n $NS link set host0p up
ip -n $NS addr add $IP/24 dev host0
ip -n $NS link set host0 up

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
nsenter --net=/var/run/netns/$NS "$SKIFF" server --data-dir "$DIR/server" --bind-address 0.0.0.0 --advertise-address $IP --disable-agent >"$DIR/server.log" 2>&1 &
SERVER_PID=$!
until [ -s "$DIR/server/node-token" ] && kubectl get --raw /readyz >/dev/null 2>&1; do
	kill -0 $SERVER_PID || { cat "$DIR/server.log"; exit 1; }
	sleep 0.2
done
# The agent runs from its own copy of the executable, as on a machine of
# its own: pages of one file mapped by the server too could not be released.
cp "$SKIFF" "$DIR/skiff-agent"
nsenter --net=/var/run/netns/$NS "$DIR/skiff-agent" agent --server https://$IP:6443 --token "$(cat "$DIR/server/node-token")" --data-dir "$DIR/agent" \
	--node-name $NODE --node-ip $IP --log-level debug >"$DIR/agent.log" 2>&1 &
AGENT_PID=$!
until kubectl get node $NODE -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null | grep -q True; do
	kill -0 $AGENT_PID || { cat "$DIR/agent.log"; exit 1; }
	sleep 0.2
done
"$SKIFF" images build --tag docker.io/library/busybox:1.35 --busybox /bin/busybox -o "$DIR/busybox.tar" >/dev/null 2>&1
"$SKIFF" images import --data-dir "$DIR/agent" "$DIR/busybox.tar" >/dev/null 2>&1
# The agent releases its start-up pages 10 s after it starts.
sleep 15
echo "idle agent RSS, no pods: $(rss $AGENT_PID) (containerd: $(rss "$(pgrep -f "containerd --config $DIR/agent" | head -1)"))"

CTRD_PID=$(pgrep -f "containerd --config $DIR/agent" | head -1)
hz=$(getconf CLK_TCK)
s0=$(cpu_ticks $SERVER_PID) a0=$(cpu_ticks $AGENT_PID) c0=$(cpu_ticks "$CTRD_PID") w0=$(date +%s%N) m0=$(machine_ticks)
in_ns "$SKIFF" bench podstart --kubeconfig "$DIR/server/admin.kubeconfig" --pods 100 --rate 10 --node $NODE
s1=$(cpu_ticks $SERVER_PID) a1=$(cpu_ticks $AGENT_PID) c1=$(cpu_ticks "$CTRD_PID") w1=$(date +%s%N) m1=$(machine_ticks)
echo "CPU during the run ($(( (w1 - w0) / 1000000 )) ms): server $(( (s1 - s0) * 1000 / hz )) ms, agent $(( (a1 - a0) * 1000 / hz )) ms, containerd $(( (c1 - c0) * 1000 / hz )) ms; machine busy $(echo "$m0 $m1" | awk '{printf "%.0f%%", ($3 - $1) * 100 / ($4 - $2)}')"
# The run deletes its pods as it ends; let the node settle before the next.
until [ -z "$(ls -A "$DIR/agent/agent/pods" 2>/dev/null)" ]; do sleep 1; done
# At a rate the machine's runtime work keeps up with.
in_ns "$SKIFF" bench podstart --kubeconfig "$DIR/server/admin.kubeconfig" --pods 30 --rate 2 --node $NODE
until [ -z "$(ls -A "$DIR/agent/agent/pods" 2>/dev/null)" ]; do sleep 1; done

in_ns "$SKIFF" bench podstart --kubeconfig "$DIR/server/admin.kubeconfig" --pods 110 --rate 10 --node $NODE --keep
for ns in $(kubectl get ns -o name | grep skiff-bench-podstart); do kubectl label --overwrite "$ns" skiff-bench=podstart >/dev/null; done
sleep 30
t0=$(cpu_ticks $AGENT_PID)
sleep 60
t1=$(cpu_ticks $AGENT_PID)
echo "110 running pods: agent RSS $(rss $AGENT_PID), agent CPU $(awk -v d=$((t1 - t0)) -v hz="$hz" 'BEGIN {printf "%.2f%% of a core", d * 100 / hz / 60}') over 60 s"
echo "running pods reported by the kubelet: $(kubectl get --raw /api/v1/nodes/$NODE/proxy/metrics | awk '/^kubelet_running_pods / {print $2}')"
