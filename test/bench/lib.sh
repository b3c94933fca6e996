# Shared by the bench scripts: one fresh `skiff server` at a time, on
# loopback ports, stopped and removed on exit.
# Source it after setting SKIFF; start_server DIR-PREFIX [server flags...]
# sets DIR and PID and waits until the server is ready.
DIR=""
PID=""
PORT=16443
cleanup() {
	[ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
	[ -n "$DIR" ] && rm -rf "$DIR"
	return 0
}
trap cleanup EXIT

start_server() { # prefix, server flags...
	cleanup
	DIR=$(mktemp -d "/tmp/$1.XXXXXX")
	shift
	local args=("$@")
	for i in "${!args[@]}"; do args[$i]=${args[$i]//@DIR@/$DIR}; done
	"$SKIFF" server --data-dir "$DIR/data" --bind-address 127.0.0.1 --secure-port $PORT \
		--etcd-client-port 12379 --etcd-peer-port 12380 --disable-agent "${args[@]}" >>"$DIR/server.log" 2>&1 &
	PID=$!
	until curl -sk "https://127.0.0.1:$PORT/readyz" 2>/dev/null | grep -q '^ok'; do
		kill -0 "$PID" 2>/dev/null || { cat "$DIR/server.log"; exit 1; }
		sleep 0.01
	done
}

# user_kubeconfig NAME TOKEN writes $DIR/NAME.kubeconfig for a token user.
user_kubeconfig() {
	"$SKIFF" kubectl --kubeconfig "$DIR/data/admin.kubeconfig" config view --raw --minify >"$DIR/$1.kubeconfig"
	"$SKIFF" kubectl --kubeconfig "$DIR/$1.kubeconfig" config set-credentials "$1" --token="$2" >/dev/null
	"$SKIFF" kubectl --kubeconfig "$DIR/$1.kubeconfig" config set-context --current --user="$1" >/dev/null
}

# wait_default_sa NAMESPACE waits for the namespace's default
# ServiceAccount (ServiceAccount admission refuses pods until it exists).
wait_default_sa() {
	until "$SKIFF" kubectl --kubeconfig "$DIR/data/admin.kubeconfig" -n "$1" get serviceaccount default >/dev/null 2>&1; do sleep 0.05; done
}

machine() {
	echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
}
