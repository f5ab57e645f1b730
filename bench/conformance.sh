#!/usr/bin/env bash
# Runs the OCI runtime validation suite (opencontainers/runtime-tools, built
# outside this tree: docs/conformance.md) against one or more runtimes, one
# file at a time, and prints per runtime the files fully passed and the
# ok / not ok line counts.
#
#   [ONLY=REGEX] bench/conformance.sh SUITE_DIR [RUNTIME...]     (as root)
#
# RUNTIME defaults to this tree's target/release/purple-oci and runc. Each
# file's TAP output is kept in $OUT (default /tmp/conformance) as
# <runtime name>/<file>.tap, mounts the suite left behind (then undone) in
# <runtime name>/leaks.
set -uo pipefail

suite=${1:?usage: conformance.sh SUITE_DIR [RUNTIME...]}
shift
suite=$(cd "$suite" && pwd)
here=$(cd "$(dirname "$0")/.." && pwd)
[ $# -gt 0 ] || set -- "$here/target/release/purple-oci" "$(command -v runc)"
out=${OUT:-/tmp/conformance}
# ONLY=REGEX runs the files whose path matches.
files=$(cd "$suite" && ls validation/*/*.t | grep -E "${ONLY:-.}")
[ -n "$files" ] || { echo "no validation/*/*.t in $suite: build it (docs/conformance.md)" >&2; exit 2; }

# The suite's bundles (/tmp/ocitest*) still mounted in this namespace.
suite_mounts() { awk '$5 ~ "^/tmp/ocitest[0-9]+$" { print $5 }' /proc/self/mountinfo | sort -u; }

for rt in "$@"; do
  [ -x "$rt" ] || { echo "runtime $rt is not executable" >&2; exit 2; }
  name=$(basename "$rt")
  rm -rf "${out:?}/$name" && mkdir -p "$out/$name"
  passed=() ok=0 notok=0
  for f in $files; do
    t=$(basename "$f" .t)
    before=$(suite_mounts)
    (cd "$suite" && RUNTIME=$rt timeout 120 nice -n 10 "$f") >"$out/$name/$t.tap" 2>&1
    rc=$?
    # linux_rootfs_propagation asks for a shared rootfs: the container's
    # mounts reach the host's namespace and the suite deletes the bundle
    # without unmounting them (under runc too). Count and undo them.
    for m in $(comm -13 <(echo "$before") <(suite_mounts)); do
      echo "$t: left mounted by the suite: $m" >>"$out/$name/leaks"
      umount -R "$m" && rm -rf --one-file-system "$m"
    done
    o=$(grep -c '^ok' "$out/$name/$t.tap")
    n=$(grep -c '^not ok' "$out/$name/$t.tap")
    ok=$((ok + o)) notok=$((notok + n))
    # A file passes when it exits 0, no line is `not ok` and no error stands
    # on its own: the hook files report a failure only as a YAML `"error":`
    # block attached to no test line (a block after an `ok` line is that
    # test's expected error). The *_fail files print nothing when the
    # runtime rightly refuses the config.
    if [ "$rc" -eq 0 ] && [ "$n" -eq 0 ] && awk '
        /^(not )?ok / { attached = 1 }
        /^  \.\.\.$/ { attached = 0 }
        /^ *"error":/ && !attached { stray = 1 }
        END { exit stray }' "$out/$name/$t.tap"; then
      passed+=("$t")
    fi
    echo "$t rc=$rc ok=$o notok=$n" >>"$out/$name/summary"
  done
  echo "$name: ${#passed[@]} of $(echo "$files" | wc -w) files fully passed; $ok ok, $notok not ok"
  echo "$name passed: ${passed[*]}"
done
