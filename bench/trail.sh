#!/usr/bin/env bash
# Cost of the activity trail (`ebpf_monitoring.trace_exec`): a build-like
# workload of short processes (a make-style loop: per "file", a shell that
# runs sed into md5sum, three execs) in a sleeping busybox container under
# runc, purple-oci without the trail and purple-oci with it; and the cost
# to the host's own processes (not traced) while the host's trail programs
# are loaded for one container, against none loaded.
#
#   sudo bench/trail.sh [--smoke]
#
# One run per case, the cases interleaved (FILES files each, default 2000).
# Env: PURPLE_OCI, RUNC, FILES.
source "$(dirname "$0")/lib.sh"

FILES=${FILES:-2000}
[ "$SMOKE" = 1 ] && FILES=100
work='i=0; while [ $i -lt '"$FILES"' ]; do /bin/sh -c "/bin/sed s/root/toor/ /etc/passwd | /bin/md5sum > /dev/null"; i=$((i+1)); done'
host_loop() { local i=0; while [ $i -lt "$FILES" ]; do /bin/true; i=$((i+1)); done; }

rr=$WORK/root-runc pr=$WORK/root-purple
mkdir -p "$rr" "$pr"
on_exit remove_all "$RUNC" "$rr" "$TAG"
on_exit remove_all "$PURPLE_OCI" "$pr" "$TAG"

# seconds CMD...: wall seconds of CMD.
seconds() {
  local t0 t1
  t0=$(date +%s.%N); "$@" > /dev/null; t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}'
}

labels=() rts=() roots=() ids=()
for c in runc plain trace; do
  b=$WORK/$c
  bundle "$b" sleep 3600
  case $c in
    runc) rt=$RUNC root=$rr label="runc" ;;
    plain) rt=$PURPLE_OCI root=$pr label="purple-oci" ;;
    trace) rt=$PURPLE_OCI root=$pr label="purple-oci, trace_exec"; py config "$b/config.json" --trace-exec ;;
  esac
  "$rt" --root "$root" create -b "$b" "$TAG$c" > /dev/null 2>&1 < /dev/null
  "$rt" --root "$root" start "$TAG$c"
  labels+=("$label") rts+=("$rt") roots+=("$root") ids+=("$TAG$c")
done
[ -n "$(ls -d /sys/fs/bpf/purple/_trail-* 2>/dev/null)" ] || { log "no trail programs pinned"; exit 1; }

{
  echo "## Activity trail (one run per case, $FILES files, 3 execs each)"
  echo
  host_description
  echo
  echo "| case | build-like workload, s | ratio to runc |"
  echo "|---|---|---|"
} > "$OUT/trail.md"
base=""
for i in "${!labels[@]}"; do
  s=$(seconds "${rts[i]}" --root "${roots[i]}" exec "${ids[i]}" /bin/sh -c "$work")
  base=${base:-$s}
  log "${labels[i]}: $s s"
  awk -v l="${labels[i]}" -v s="$s" -v b="$base" 'BEGIN {printf "| %s | %.3f | %.3f |\n", l, s, s / b}' >> "$OUT/trail.md"
done
traced=$(seconds host_loop)
log "host's own $FILES execs, trail loaded: $traced s"
"$PURPLE_OCI" --root "$pr" delete --force "${TAG}trace"
[ -z "$(ls -d /sys/fs/bpf/purple/_trail-* 2>/dev/null)" ] || { log "trail programs outlived the last traced container"; exit 1; }
untraced=$(seconds host_loop)
log "host's own $FILES execs, no trail: $untraced s"
{
  echo
  echo "| host's own processes ($FILES execs of /bin/true, not traced) | s |"
  echo "|---|---|"
  echo "| trail programs loaded (one traced container) | $traced |"
  echo "| no trail programs | $untraced |"
} >> "$OUT/trail.md"
cat "$OUT/trail.md"

left=$(remove_all "$RUNC" "$rr" "$TAG"; remove_all "$PURPLE_OCI" "$pr" "$TAG"; leftovers "$TAG" "$rr" "$pr")
[ -z "$left" ] || { log "left behind: $left"; exit 1; }
