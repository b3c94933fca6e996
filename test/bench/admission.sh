#!/bin/bash
# The cost of issue 19's guard rails, as docs/benchmarks.md records it: pod
# creates at 64 workers (skiff bench api, as the admin) on a fresh server
# with every default admission plugin, Secrets encrypted and a
# Metadata-level audit policy writing to a file, and then the same
# without them (or a binary from before them), alternated RUNS times (machine drift shows as the spread
# between runs of the same setup).
# usage: test/bench/admission.sh [path/to/skiff] [runs] [baseline skiff]
# (a baseline binary, built before issue 19, is measured with its defaults;
# without one the new plugins, encryption and audit are turned off)
set -euo pipefail
SKIFF=${1:-bin/skiff}
RUNS=${2:-2}
BASELINE=${3:-}
. "$(dirname "$0")/lib.sh"

run() { # name, skiff binary, server flags...
	local name=$1 bin=$2
	shift 2
	SKIFF=$bin start_server skiff-admission "$@"
	"$SKIFF" kubectl --kubeconfig "$DIR/data/admin.kubeconfig" create namespace bench >/dev/null
	wait_default_sa bench
	echo "== $name"
	"$SKIFF" bench api --kubeconfig "$DIR/data/admin.kubeconfig" --namespace bench --workers 64 --pods 10000 --watchers 10 --updates 100 --lists 1 | grep 'pod creates'
	if [ -f "$DIR/audit.log" ]; then echo "audit events: $(wc -l <"$DIR/audit.log")"; fi
}

POLICY=$(mktemp /tmp/skiff-policy.XXXXXX)
trap 'cleanup; rm -f "$POLICY"' EXIT
printf 'apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n' >"$POLICY"
machine
for _ in $(seq "$RUNS"); do
	run "every default plugin, Secrets encrypted, Metadata audit to a file" "$SKIFF" --audit-policy-file "$POLICY" --audit-log-path @DIR@/audit.log
	if [ -n "$BASELINE" ]; then
		run "before issue 19 ($BASELINE)" "$BASELINE"
	else
		run "the plugins issue 19 added off, no encryption, no audit" "$SKIFF" --secrets-encryption=false \
			--disable-admission-plugins LimitRanger,TaintNodesByCondition,PodSecurity,StorageObjectInUseProtection
	fi
done
