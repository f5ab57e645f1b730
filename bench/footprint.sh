#!/usr/bin/env bash
# Footprint: peak RSS of `create` (GNU time's "Maximum resident set size":
# the runtime process and the children it waited for, max over them), the BPF
# map memory Purple pins per container, the RSS and PSS of Purple's
# per-container supervisor (RSS counts the binary's and libc's pages that every
# supervisor shares, and the event ring buffer's pages, mapped twice; PSS
# divides shared pages among their users), and binary sizes; runc for comparison.
#
#   sudo bench/footprint.sh [--smoke]
#
# Env: PURPLE_OCI, RUNC, REPS (creates per case, default 5).
source "$(dirname "$0")/lib.sh"
[ -x /usr/bin/time ] || { echo "footprint.sh: /usr/bin/time missing: apt-get install time" >&2; exit 2; }
need bpftool python3

REPS=${REPS:-5}
[ "$SMOKE" = 1 ] && REPS=1

bundle "$WORK/bare" sleep 3600
for n in 100 10000; do
  bundle "$WORK/r$n" sleep 3600
  py plan "$n" > "$WORK/plan$n.json"
  py config "$WORK/r$n/config.json" --plan "$WORK/plan$n.json" --seccomp
done
rr=$WORK/root-runc pr=$WORK/root-purple
mkdir -p "$rr" "$pr"
on_exit remove_all "$RUNC" "$rr" "$TAG"
on_exit remove_all "$PURPLE_OCI" "$pr" "$TAG"

mib() { awk '{printf "%.1f", $1 / 1024}'; }
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

rows=()
sup=()
# case LABEL RUNTIME ROOT BUNDLE
case_() {
  local label=$1 rt=$2 root=$3 b=$4 i id rss=() bpf="n/a" m sum mem
  for ((i = 0; i < REPS; i++)); do
    id=${TAG}-$i
    /usr/bin/time -f %M -o "$WORK/rss" "$rt" --root "$root" create -b "$b" "$id" >/dev/null 2>&1 < /dev/null
    rss+=("$(tail -1 "$WORK/rss")")
    if [ -d "/sys/fs/bpf/purple/$id" ]; then
      sum=0
      for m in /sys/fs/bpf/purple/"$id"/*; do
        case $m in */link_*) continue ;; esac
        sum=$((sum + $(bpftool map show pinned "$m" | grep -o 'memlock [0-9]*' | awk '{print $2}')))
      done
      bpf=$(echo "$sum" | awk '{printf "%.0f KiB", $1 / 1024}')
    fi
    if [ -f "$root/.purple/$id/record.json" ]; then
      sleep 0.3 # the supervisor's start-up done
      mem=$(py supervisor-memory "$root" "$id")
      [ -z "$mem" ] || sup+=("$mem")
    fi
    "$rt" --root "$root" delete -f "$id" >/dev/null
  done
  local med max
  med=$(printf '%s\n' "${rss[@]}" | median | mib)
  max=$(printf '%s\n' "${rss[@]}" | sort -g | tail -1 | mib)
  rows+=("| $label | $med | $max | $bpf |")
  log "$label: create max RSS KiB ${rss[*]}; BPF maps $bpf"
}
case_ runc "$RUNC" "$rr" "$WORK/bare"
case_ "purple-oci bare" "$PURPLE_OCI" "$pr" "$WORK/bare"
case_ "purple-oci 100 rules + seccomp" "$PURPLE_OCI" "$pr" "$WORK/r100"
case_ "purple-oci 10,000 rules + seccomp" "$PURPLE_OCI" "$pr" "$WORK/r10000"

runc_path=$(readlink -f "$(command -v "$RUNC")")
size() { stat -c %s "$1" | awk '{printf "%.1f MiB", $1 / 1048576}'; }
{
  echo "## Footprint ($REPS creates per row)"
  echo
  host_description
  echo
  echo "| create | peak RSS, median (MiB) | peak RSS, max (MiB) | BPF map memory pinned per container |"
  echo "|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "| binary | size |"
  echo "|---|---|"
  echo "| purple-oci ($PURPLE_OCI) | $(size "$PURPLE_OCI") |"
  echo "| runc ($runc_path) | $(size "$runc_path") |"
  echo
  if [ ${#sup[@]} -gt 0 ]; then
    echo "Supervisor of a created container (${#sup[@]} samples, one supervisor running at a time; median, MiB):"
    echo
    echo "| RSS | of which: runtime binary | event ring buffer (BPF map, mapped twice) | shared libraries | anonymous | PSS |"
    echo "|---|---|---|---|---|---|"
    row="|"
    for col in 1 2 3 4 5 6; do
      row+=" $(printf '%s\n' "${sup[@]}" | cut -d' ' -f$col | median | mib) |"
    done
    echo "$row"
  else
    echo "Supervisor: no supervisor process was found."
  fi
} > "$OUT/footprint.md"
cat "$OUT/footprint.md"

left=$(remove_all "$RUNC" "$rr" "$TAG"; remove_all "$PURPLE_OCI" "$pr" "$TAG"; leftovers "$TAG" "$rr" "$pr")
[ -z "$left" ] || { log "left behind: $left"; exit 1; }
