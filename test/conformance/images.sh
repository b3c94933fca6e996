#!/usr/bin/env bash
# images.sh OUT_DIR: makes every image the conformance suite runs, under the
# exact names and tags of test/utils/image/manifest.go, as OCI archives in
# OUT_DIR, with no registry: upstream's images are Alpine or Debian plus a
# few test programs; ours are the same programs on a root filesystem copied
# from this machine's Debian packages (bash, dig, curl, nc, socat, ss, ...)
# with busybox for the small commands.
#
# Needs: SKIFF (the skiff binary), BIN (a directory holding agnhost, coredns
# and nnp built by run.sh), BUSYBOX (busybox 1.37.0, static, built by
# run.sh), K8S_SRC (the k8s.io/kubernetes module source).
set -euo pipefail
OUT=$1
: "${SKIFF:?}" "${BIN:?}" "${BUSYBOX:?}" "${K8S_SRC:?}"
mkdir -p "$OUT"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

E2E=registry.k8s.io/e2e-test-images

# copy_bin ROOT FILE...: copies executables and every shared library they
# load (ldd's list, plus the glibc name-service modules getent needs).
copy_bin() {
	local root=$1
	shift
	local f lib
	for f in "$@"; do
		install -D -m "$(stat -c %a "$f")" "$f" "$root$f"
		for lib in $(ldd "$f" 2>/dev/null | grep -o '/[^ ]*' || true); do
			[ -e "$root$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
		done
	done
}

# base ROOT: the tools upstream's agnhost image has (Alpine's bind-tools,
# curl, netcat-openbsd, iproute2, bash, socat), busybox 1.37's applets for
# everything else with its ash as /bin/sh (as upstream's busybox and
# Alpine images have: tests expect ash's wording), and the users and
# groups the tests look for.
base() {
	local root=$1
	mkdir -p "$root"/{bin,etc,tmp,root,uploads,usr/bin,usr/share/nginx/html}
	chmod 1777 "$root/tmp"
	install -m 0755 "$BUSYBOX" "$root/bin/busybox"
	local applet
	for applet in $("$BUSYBOX" --list); do
		[ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
	done
	rm -f "$root/bin/bash"
	copy_bin "$root" /bin/bash /usr/bin/dig /usr/bin/nslookup /usr/bin/host /usr/bin/curl /usr/bin/nc.openbsd \
		/usr/bin/socat /usr/bin/ss /usr/bin/getent /usr/bin/env /usr/bin/id /usr/bin/stat
	for lib in /lib/x86_64-linux-gnu/libnss_files.so.2 /lib/x86_64-linux-gnu/libnss_dns.so.2 /lib/x86_64-linux-gnu/libresolv.so.2; do
		[ -e "$lib" ] && install -D -m 0644 "$(readlink -f "$lib")" "$root$lib"
	done
	ln -s nc.openbsd "$root/usr/bin/nc"
	cat >"$root/etc/passwd" <<-'EOF'
		root:x:0:0:root:/root:/bin/sh
		user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh
		nobody:x:65534:65534:nobody:/nonexistent:/bin/false
	EOF
	cat >"$root/etc/group" <<-'EOF'
		root:x:0:
		user-defined-in-image:x:1000:
		group-defined-in-image:x:50000:user-defined-in-image
		nogroup:x:65534:
	EOF
	printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"
	echo '<html><body><h1>Welcome to nginx!</h1></body></html>' >"$root/usr/share/nginx/html/index.html"
}

# agnhost ROOT: the test multi-tool, with its webserver certificates and
# CoreDNS, as upstream's image lays them out.
agnhost() {
	local root=$1
	base "$root"
	install -m 0755 "$BIN/agnhost" "$root/agnhost"
	ln -s agnhost "$root/agnhost-2"
	install -m 0755 "$BIN/coredns" "$root/coredns"
	cp "$K8S_SRC/test/images/agnhost/porter/localhost.crt" "$K8S_SRC/test/images/agnhost/porter/localhost.key" "$root/"
	# Upstream's agnhost (and kitten, nautilus on it) is built on Alpine;
	# the image-volume tests read its os-release.
	cat >"$root/etc/os-release" <<-'EOF'
		# skiff's stand-in for upstream's Alpine-based test image (test/conformance/images.sh)
		NAME="Alpine Linux"
		ID=alpine
		PRETTY_NAME="Alpine Linux (skiff conformance fixture)"
	EOF
}

build() { # NAME ROOT [skiff images build flags...]
	local name=$1 root=$2
	shift 2
	local file
	file="$OUT/$(echo "$name" | tr '/:' '__').tar"
	"$SKIFF" images build --tag "$name" --from "$root" -o "$file" "$@" >/dev/null
	echo "$file"
}

agnhost "$WORK/agnhost"
build "$E2E/agnhost:2.66.1" "$WORK/agnhost" --entrypoint /agnhost --cmd pause
build "$E2E/agnhost:2.55" "$WORK/agnhost" --entrypoint /agnhost --cmd pause

# pause: agnhost's own pause, which waits for a signal as upstream's does.
build registry.k8s.io/pause:3.10.2 "$WORK/agnhost" --entrypoint /agnhost --cmd pause

base "$WORK/busybox"
build "$E2E/busybox:1.37.0-2" "$WORK/busybox" --cmd sh

# nginx: a plain web server on port 80 serving /usr/share/nginx/html.
for tag in 1.27.0-2 1.28.0-2; do
	build "$E2E/nginx:$tag" "$WORK/busybox" --cmd /bin/busybox,httpd,-f,-p,80,-h,/usr/share/nginx/html
done

for pet in kitten nautilus; do
	cp -a "$WORK/agnhost" "$WORK/$pet"
	cp "$K8S_SRC/test/images/$pet/html/"* "$WORK/$pet/"
	build "$E2E/$pet:1.8" "$WORK/$pet" --entrypoint /agnhost --cmd test-webserver
done

base "$WORK/nonewprivs"
install -D -m 4755 "$BIN/nnp" "$WORK/nonewprivs/usr/local/bin/nnp"
build "$E2E/nonewprivs:1.4" "$WORK/nonewprivs" --cmd nnp

build "$E2E/nonroot:1.5" "$WORK/busybox" --user 1234

cp -a "$WORK/busybox" "$WORK/glibc"
install -m 0755 "$BIN/coredns" "$WORK/glibc/coredns"
build "$E2E/glibc-dns-testing:2.1.1" "$WORK/glibc"

# The Aggregator test: upstream's sample API server, and etcd where its
# image keeps it.
base "$WORK/sample-apiserver"
install -m 0755 "$BIN/sample-apiserver" "$WORK/sample-apiserver/sample-apiserver"
build "$E2E/sample-apiserver:1.29.2" "$WORK/sample-apiserver" --entrypoint /sample-apiserver
base "$WORK/etcd"
install -D -m 0755 "$BIN/etcd" "$WORK/etcd/usr/local/bin/etcd"
build registry.k8s.io/etcd:3.7.0-0 "$WORK/etcd" --cmd /usr/local/bin/etcd
