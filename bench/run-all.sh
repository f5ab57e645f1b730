#!/usr/bin/env bash
# Runs every benchmark: lifecycle, ebpf, footprint, scale, netns, trail, syscalls (about 5-10 minutes;
# results in bench/results/*.md, plot in docs/benchmarks-lifecycle.png).
#
#   sudo bench/run-all.sh            full run
#   sudo bench/run-all.sh --smoke    one small iteration of each (CI: well under a minute)
#
# Exits non-zero if any benchmark failed; every one is run regardless.
# Env: PURPLE_OCI (default <repo>/target/release/purple-oci), RUNC, and each script's own.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
case ${1:-} in ""|--smoke) ;; *) echo "usage: run-all.sh [--smoke]" >&2; exit 2 ;; esac
failed=()
for b in lifecycle ebpf footprint scale netns trail syscalls; do
  start=$SECONDS
  if "$here/$b.sh" "$@"; then
    echo "[run-all] $b ok ($((SECONDS - start)) s)" >&2
  else
    echo "[run-all] $b FAILED ($((SECONDS - start)) s)" >&2
    failed+=("$b")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "[run-all] failed: ${failed[*]}" >&2
  exit 1
fi
echo "[run-all] all ok ($SECONDS s)" >&2
