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
. "$(dirname "$0")/lib.sh"

run() { # name, server flags...
	local name=$1
	shift
	start_server skiff-admission "$@"
	"$SKIFF" kubectl --kubeconfig "$DIR/data/admin.kubeconfig" create namespace bench >/dev/null
	echo "== $name"
	"$SKIFF" bench api --kubeconfig "$DIR/data/admin.kubeconfig" --namespace bench --workers 64 --pods 10000 --watchers 10 --updates 100 --lists 1 | grep 'pod creates'
	if [ -f "$DIR/audit.log" ]; then echo "audit events: $(wc -l <"$DIR/audit.log")"; fi
}

POLICY=$(mktemp /tmp/skiff-policy.XXXXXX)
trap 'cleanup; rm -f "$POLICY"' EXIT
printf 'apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n' >"$POLICY"
ALL_PLUGINS=NamespaceLifecycle,LimitRanger,ServiceAccount,TaintNodesByCondition,PodSecurity,Priority,DefaultTolerationSeconds,DefaultStorageClass,StorageObjectInUseProtection,RuntimeClass,DefaultIngressClass,ResourceQuota
machine
for _ in $(seq "$RUNS"); do
	run "admission, encryption, Metadata audit" --audit-policy-file "$POLICY" --audit-log-path @DIR@/audit.log
	run "all three off" --disable-admission-plugins $ALL_PLUGINS --secrets-encryption=false
done
