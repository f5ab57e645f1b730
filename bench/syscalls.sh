#!/usr/bin/env bash
# Cost of syscall counting (`ebpf_monitoring.trace_syscalls`): a
# syscall-heavy workload (busybox dd with 1-byte blocks: one read and one
# write per byte) exec'd into a sleeping busybox container under runc,
# purple-oci without counting and purple-oci counting; and the cost to the
# host's own processes (the same dd, not counted) while the host's counter
# is attached for one container, against detached.
#
#   sudo bench/syscalls.sh [--smoke]
#
# RUNS runs per case, interleaved, the median reported (BYTES bytes each,
# default 2000000: 4 million syscalls). Env: PURPLE_OCI, RUNC, BYTES, RUNS.
source "$(dirname "$0")/lib.sh"

BYTES=${BYTES:-2000000}
RUNS=${RUNS:-5}
[ "$SMOKE" = 1 ] && BYTES=20000 RUNS=1
work="/bin/dd if=/dev/zero of=/dev/null bs=1 count=$BYTES"

rr=$WORK/root-runc pr=$WORK/root-purple
mkdir -p "$rr" "$pr"
on_exit remove_all "$RUNC" "$rr" "$TAG"
on_exit remove_all "$PURPLE_OCI" "$pr" "$TAG"

# seconds CMD...: wall seconds of CMD.
seconds() {
  local t0 t1
  t0=$(date +%s.%N); "$@" > /dev/null 2>&1; t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}'
}
counter() { ls /sys/fs/bpf/purple/_trail-*/link_syscall > /dev/null 2>&1; }

labels=() rts=() roots=() ids=()
for c in runc plain count; do
  b=$WORK/$c
  bundle "$b" sleep 3600
  case $c in
    runc) rt=$RUNC root=$rr label="runc" ;;
    plain) rt=$PURPLE_OCI root=$pr label="purple-oci" ;;
    count) rt=$PURPLE_OCI root=$pr label="purple-oci, trace_syscalls"; py config "$b/config.json" --trace-syscalls ;;
  esac
  "$rt" --root "$root" create -b "$b" "$TAG$c" > /dev/null 2>&1 < /dev/null
  "$rt" --root "$root" start "$TAG$c"
  labels+=("$label") rts+=("$rt") roots+=("$root") ids+=("$TAG$c")
done
counter || { log "no syscall counter attached"; exit 1; }
# The host's dd: the bundle's busybox, the same program as in the containers.
host_dd() { "$WORK/runc/rootfs/bin/busybox" dd if=/dev/zero of=/dev/null bs=1 count="$BYTES"; }

declare -A t
for r in $(seq "$RUNS"); do
  for i in "${!labels[@]}"; do
    t[$i]+="$(seconds "${rts[i]}" --root "${roots[i]}" exec "${ids[i]}" /bin/sh -c "$work") "
  done
  t[host_on]+="$(seconds host_dd) "
done
counted=$("$PURPLE_OCI" --root "$pr" delete --force "${TAG}count" 2>&1; true)
[ -z "$counted" ] || { log "delete: $counted"; exit 1; }
counter && { log "the counter outlived the last counting container"; exit 1; }
for r in $(seq "$RUNS"); do t[host_off]+="$(seconds host_dd) "; done

{
  echo "## Syscall counting (median of $RUNS runs, dd of $BYTES 1-byte blocks: $((2 * BYTES)) syscalls)"
  echo
  host_description
  echo
  echo "| case | syscall-heavy workload, s | ratio to runc | ns per syscall over runc |"
  echo "|---|---|---|---|"
} > "$OUT/syscalls.md"
base=""
for i in "${!labels[@]}"; do
  s=$(echo ${t[$i]} | median)
  base=${base:-$s}
  log "${labels[i]}: $s s (runs: ${t[$i]})"
  awk -v l="${labels[i]}" -v s="$s" -v b="$base" -v n="$((2 * BYTES))" \
    'BEGIN {printf "| %s | %.3f | %.3f | %.0f |\n", l, s, s / b, (s - b) * 1e9 / n}' >> "$OUT/syscalls.md"
done
on=$(echo ${t[host_on]} | median) off=$(echo ${t[host_off]} | median)
log "host's own dd: counter attached $on s (${t[host_on]}), detached $off s (${t[host_off]})"
{
  echo
  echo "| host's own process (the same dd, not counted) | s | ns per syscall over detached |"
  echo "|---|---|---|"
  awk -v s="$on" -v b="$off" -v n="$((2 * BYTES))" \
    'BEGIN {printf "| counter attached (one counting container) | %.3f | %.0f |\n", s, (s - b) * 1e9 / n}'
  echo "| counter detached | $off | |"
} >> "$OUT/syscalls.md"
cat "$OUT/syscalls.md"

left=$(remove_all "$RUNC" "$rr" "$TAG"; remove_all "$PURPLE_OCI" "$pr" "$TAG"; leftovers "$TAG" "$rr" "$pr")
[ -z "$left" ] || { log "left behind: $left"; exit 1; }
