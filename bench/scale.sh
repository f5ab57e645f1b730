#!/usr/bin/env bash
# Scale: N sleeping busybox containers alive at once (default 200), purple-oci
# and runc one after the other: total time to create+start all, p50/p99 create
# latency, memory per container (drop of MemAvailable / N, after a 1 s
# settle), then delete all and verify nothing is left: state dirs,
# /sys/fs/cgroup/*/purple/<id>, /sys/fs/bpf/purple/<id>, processes.
#
#   sudo bench/scale.sh [--smoke]
#
# Env: PURPLE_OCI, RUNC, N.
source "$(dirname "$0")/lib.sh"
need python3

N=${N:-200}
[ "$SMOKE" = 1 ] && N=3

bundle "$WORK/sleep" sleep 3600
rr=$WORK/root-runc pr=$WORK/root-purple
mkdir -p "$rr" "$pr"
on_exit remove_all "$RUNC" "$rr" "$TAG"
on_exit remove_all "$PURPLE_OCI" "$pr" "$TAG"

rows=()
for rt_label in runc purple-oci; do
  if [ "$rt_label" = runc ]; then rt=$RUNC root=$rr; else rt=$PURPLE_OCI root=$pr; fi
  log "$rt_label: creating and starting $N containers"
  py scale "$WORK/$rt_label.json" "$N" "$rt_label" "$rt" "$root" "$WORK/sleep" "${TAG}-"
  alive=$("$rt" --root "$root" list -q | grep -c "^${TAG}-" || true)
  running=$("$rt" --root "$root" list | grep "^${TAG}-" | grep -c running || true)
  log "$rt_label: $alive listed, $running running"
  [ "$running" = "$N" ] || { log "$rt_label: expected $N running"; exit 1; }
  pids=$("$rt" --root "$root" list --format json | python3 -c 'import json, sys
print(" ".join(str(c["pid"]) for c in json.load(sys.stdin) if c["id"].startswith(sys.argv[1])))' "${TAG}-")
  t0=$(date +%s.%N)
  for ((i = 0; i < N; i++)); do "$rt" --root "$root" delete -f "${TAG}-$i" >/dev/null; done
  del=$(echo "$(date +%s.%N) - $t0" | bc)
  # A killed init is reaped by PID 1 (or a subreaper) a moment later: allow 5 s.
  alive_pids() { for p in $pids; do grep -qs '^State:[[:space:]]*[^Z]' "/proc/$p/status" && echo "pid $p"; done; true; }
  for _ in $(seq 50); do [ -z "$(alive_pids)" ] && break; sleep 0.1; done
  left=$(leftovers "$TAG" "$root"; alive_pids)
  [ -z "$left" ] || { log "$rt_label: left behind after delete: $left"; exit 1; }
  rows+=("$(python3 - "$WORK/$rt_label.json" "$del" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
c, s = r["create_ms"], r["start_ms"]
print(f"| {r['label']} | {r['n']} | {r['total_s']:.1f} | {c['median']:.1f} | {c['p99']:.1f} | {c['mean']:.1f} ± {c['sd']:.1f} | "
      f"{s['median']:.1f} | {r['mem_per_container_bytes'] / 1048576:.2f} | {float(sys.argv[2]):.1f} |")
EOF
)")
  cp "$WORK/$rt_label.json" "$OUT/scale-$rt_label.json"
done

{
  echo "## Scale ($N sleeping containers)"
  echo
  host_description
  echo
  echo "| runtime | N | create+start all (s) | create p50 (ms) | create p99 (ms) | create mean ± sd (ms) | start p50 (ms) | memory per container (MiB) | delete all (s) |"
  echo "|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "After delete: no state dir, cgroup (v1, unified), BPF pin or process with the benchmark's IDs was left."
} > "$OUT/scale.md"
cat "$OUT/scale.md"
