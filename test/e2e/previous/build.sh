#!/usr/bin/env bash
# Builds the previous skiff version, the one a rolling upgrade starts from
# (e2e TestRollingUpgrade): the commit named in test/e2e/previous/commit,
# taken from the repository's history and built with its own Makefile.
# Usage: build.sh OUT
set -euo pipefail
cd "$(dirname "$0")/../../.."
out=$1
commit=$(tr -d '[:space:]' < test/e2e/previous/commit)
if ! git cat-file -e "$commit^{commit}" 2>/dev/null; then
	# A shallow clone: fetch the one commit from where it came from.
	git fetch --quiet --depth=1 origin "$commit" || {
		echo "build-previous: commit $commit is not in this clone and origin could not give it;" >&2
		echo "the rolling-upgrade test needs the repository's history (git fetch --unshallow)" >&2
		exit 1
	}
fi
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
git archive "$commit" | tar -x -C "$src"
# Its own Makefile, stamped with its commit (no .git in the copy).
make --no-print-directory -C "$src" build VERSION="${commit:0:7}" >/dev/null
mkdir -p "$(dirname "$out")"
mv "$src/bin/skiff" "$out"
echo "built the previous skiff (${commit:0:7}) into $out"
