#!/usr/bin/env bash
# eBPF overhead: TCP connect() rate and iperf3 TCP throughput from a client
# network namespace to a server namespace over veth (10.201.0.0/24; no route
# is ever added in the host's namespace, no traffic leaves the two namespaces).
#
#   sudo bench/ebpf.sh [--smoke]
#
# Cases: no programs (a runc container; iperf3 in the caller's own cgroup),
# then purple-oci with 0 extra rules (only the default metadata rules), the
# same with `network.allowed` recorded (every allowed connect an event and an
# audit record), 100 and 10,000 random /32 and /24 deny rules that do not
# cover the server.
# connect rate: `netprobe connect-rate` (integration/probe/netprobe.c, static) exec'd in
# the sleeping container. Throughput: iperf3 is dynamic and not in the busybox
# rootfs, so the iperf3 client runs with `ip netns exec CLIENT` and moves itself
# into the container's cgroup2 directory first, where Purple's programs judge
# its sockets and packets exactly like the container's own.
# 3 repetitions per case (1 with --smoke), median reported.
# Env: PURPLE_OCI, RUNC, CONNECTS (default 20000), IPERF_SECONDS (default 5).
source "$(dirname "$0")/lib.sh"
need iperf3 cc ip python3

REPS=3 CONNECTS=${CONNECTS:-20000} SECS=${IPERF_SECONDS:-5}
# A case is a rule count; a trailing r records network.allowed too.
CASES="0 0r 100 10000"
if [ "$SMOKE" = 1 ]; then REPS=1 CONNECTS=500 SECS=1 CASES="0 0r 100"; fi

srv=10.201.0.2 port=9000
cns=${TAG}c sns=${TAG}s
cc -static -O2 -o "$WORK/netprobe" "$BENCH/../integration/probe/netprobe.c"

veth_pair "$cns" "$sns" 10.201.0

ip netns exec "$sns" "$WORK/netprobe" serve $srv $port > "$WORK/serve.log" 2>&1 &
ip netns exec "$sns" iperf3 -s -B $srv -p 5201 > "$WORK/iperf3-server.log" 2>&1 &
for _ in $(seq 100); do
  grep -q listening "$WORK/serve.log" && ip netns exec "$sns" ss -ltn | grep -q ':5201' && break
  sleep 0.05
done

rr=$WORK/root-runc pr=$WORK/root-purple
mkdir -p "$rr" "$pr"
on_exit remove_all "$RUNC" "$rr" "$TAG"
on_exit remove_all "$PURPLE_OCI" "$pr" "$TAG"

# mkbundle NAME [PLAN_FILE [CONFIG_OPTION...]]
mkbundle() {
  local b=$WORK/$1
  bundle "$b" sleep 3600
  cp "$WORK/netprobe" "$b/rootfs/netprobe"
  py config "$b/config.json" --netns "/var/run/netns/$cns" ${2:+--plan "$2"} "${@:3}"
  echo "$b"
}

# All containers first, then the repetitions round-robin over the cases, so
# that drift in the machine's load hits every case alike.
labels=() rts=() roots=() ids=() cgs=()
log "no programs: a runc container"
b=$(mkbundle runc)
"$RUNC" --root "$rr" create -b "$b" "${TAG}r" >/dev/null 2>&1 < /dev/null
"$RUNC" --root "$rr" start "${TAG}r"
self_cg=/sys/fs/cgroup/unified$(awk -F: '$1 == 0 {print $3}' /proc/self/cgroup)
log "iperf3 baseline runs in the caller's cgroup2 $self_cg: $(bpftool cgroup show "$self_cg" effective 2>/dev/null | tail -n +2 | wc -l) effective BPF programs"
labels+=("no programs (runc)") rts+=("$RUNC") roots+=("$rr") ids+=("${TAG}r") cgs+=("")

for c in $CASES; do
  n=${c%r} plan="" rec=() label="purple-oci, ${c%r} extra rules"
  if [ "$c" != "$n" ]; then rec=(--record-allowed) label="$label, network.allowed recorded"; fi
  if [ "$n" != 0 ]; then py plan "$n" > "$WORK/plan$n.json"; plan=$WORK/plan$n.json; fi
  b=$(mkbundle "p$c" "$plan" "${rec[@]}")
  id=${TAG}p$c
  log "$label"
  "$PURPLE_OCI" --root "$pr" create -b "$b" "$id" >/dev/null 2>&1 < /dev/null
  "$PURPLE_OCI" --root "$pr" start "$id"
  cg=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["cgroup2_dir"])' "$pr/.purple/$id/record.json")
  nprog=$(bpftool cgroup show "$cg" | tail -n +2 | wc -l)
  [ "$nprog" -ge 5 ] || { log "expected 5 programs on $cg, found $nprog"; exit 1; }
  labels+=("$label") rts+=("$PURPLE_OCI") roots+=("$pr") ids+=("$id") cgs+=("$cg")
done

declare -A rates gbits
for ((r = 0; r < REPS; r++)); do
  for i in "${!labels[@]}"; do
    line=$("${rts[i]}" --root "${roots[i]}" exec "${ids[i]}" /netprobe connect-rate $srv $port "$CONNECTS")
    rate=$(awk '$4 == 0 {print $8}' <<< "$line")
    [ -n "$rate" ] || { log "${labels[i]}: $line"; exit 1; }
    # ip netns exec remounts /sys: join the cgroup before entering the namespace.
    sh -c '[ -z "$1" ] || echo $$ > "$1/cgroup.procs" || exit 1; shift; exec "$@"' _ "${cgs[i]}" \
      ip netns exec "$cns" iperf3 -c $srv -p 5201 -t "$SECS" -J > "$WORK/iperf.json"
    g=$(python3 -c 'import json,sys; print("%.3f" % (json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"] / 1e9))' "$WORK/iperf.json")
    rates[$i]="${rates[$i]:-} $rate" gbits[$i]="${gbits[$i]:-} $g"
    log "${labels[i]}: $rate connect/s, $g Gbit/s"
  done
done
for i in "${!labels[@]}"; do
  printf '%s\t%s\t%s\t%s\t%s\n' "${labels[i]}" "$(median <<< "${rates[$i]# }")" \
    "$(median <<< "${gbits[$i]# }")" "${rates[$i]# }" "${gbits[$i]# }" >> "$WORK/rows.tsv"
done

{
  echo "## eBPF overhead ($REPS repetitions, median; $CONNECTS connects, iperf3 ${SECS}s)"
  echo
  host_description
  echo
  echo "| case | connect/s (median) | ratio | iperf3 Gbit/s (median) | ratio | all connect/s | all Gbit/s |"
  echo "|---|---|---|---|---|---|---|"
  awk -F'\t' 'NR == 1 {c0 = $2; g0 = $3}
    {printf "| %s | %.0f | %.3f | %.2f | %.3f | %s | %s |\n", $1, $2, $2 / c0, $3, $3 / g0, $4, $5}' "$WORK/rows.tsv"
} > "$OUT/ebpf.md"
cp "$WORK/rows.tsv" "$OUT/ebpf.tsv"
cat "$OUT/ebpf.md"

left=$(remove_all "$RUNC" "$rr" "$TAG"; remove_all "$PURPLE_OCI" "$pr" "$TAG"; leftovers "$TAG" "$rr" "$pr")
[ -z "$left" ] || { log "left behind: $left"; exit 1; }
