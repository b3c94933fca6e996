#!/bin/bash
# Fair sharing, as docs/benchmarks.md records it: one user's single GETs
# timed while 64 clients of another user list 1,000 ConfigMaps in a loop,
# on a fresh server with API Priority and Fairness on (the default) and
# then off, alternated RUNS times.
# usage: test/bench/fairness.sh [path/to/skiff] [runs]
set -euo pipefail
SKIFF=${1:-bin/skiff}
RUNS=${2:-1}
. "$(dirname "$0")/lib.sh"

run() { # on|off
	start_server skiff-fairness --token-auth-file "$TOKENS" --enable-priority-and-fairness="$1"
	"$SKIFF" kubectl --kubeconfig "$DIR/data/admin.kubeconfig" create clusterrolebinding readers --clusterrole=view --user=greedy --user=victim >/dev/null
	user_kubeconfig greedy greedy-token
	user_kubeconfig victim victim-token
	echo "== --enable-priority-and-fairness=$1"
	"$SKIFF" bench fairness --kubeconfig "$DIR/data/admin.kubeconfig" --greedy-kubeconfig "$DIR/greedy.kubeconfig" \
		--victim-kubeconfig "$DIR/victim.kubeconfig" --clients 64 --objects 1000 --duration 20s
}

TOKENS=$(mktemp /tmp/skiff-tokens.XXXXXX)
trap 'cleanup; rm -f "$TOKENS"' EXIT
printf 'greedy-token,greedy,u-greedy\nvictim-token,victim,u-victim\n' >"$TOKENS"
machine
for _ in $(seq "$RUNS"); do
	run true
	run false
done
