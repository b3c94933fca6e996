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
. "$(dirname "$0")/lib.sh"

run() { # mode
	start_server skiff-authz --token-auth-file "$TOKENS" --authorization-mode "$1"
	local k="$SKIFF kubectl --kubeconfig $DIR/data/admin.kubeconfig"
	$k create namespace bench >/dev/null
	$k create rolebinding bencher-edits --clusterrole=edit --user=bencher -n bench >/dev/null
	user_kubeconfig bencher bencher-token
	echo "== --authorization-mode $1"
	"$SKIFF" bench api --kubeconfig "$DIR/bencher.kubeconfig" --namespace bench --workers 64 --pods 10000 --watchers 10 --updates 100 --lists 1 | grep 'pod creates'
}

TOKENS=$(mktemp /tmp/skiff-tokens.XXXXXX)
trap 'cleanup; rm -f "$TOKENS"' EXIT
echo "bencher-token,bencher,u-bencher" >"$TOKENS"
machine
for _ in $(seq "$RUNS"); do
	run Node,RBAC
	run AlwaysAllow
done
