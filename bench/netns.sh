#!/usr/bin/env bash
# What the sandbox's private network namespace costs: `purple run` with the
# default private namespace (slirp4netns started and stopped by the runtime)
# against `network.namespace: host` (the caller's namespace shared), and TCP
# throughput of iperf3 from inside the sandbox through each, against iperf3
# run straight from the caller's namespace. `purple run` is invoked inside a
# client namespace (nsenter), the iperf3 server sits in a server namespace
# over veth (10.203.0.0/24): nothing is routed in the host's namespace.
#
#   sudo bench/netns.sh [--smoke]
#
# Latency: hyperfine, `purple run -q --no-workdir -- true`, RUNS runs each.
# Throughput: iperf3 -c 10.203.0.2 -t SECONDS, one stream, REPS repetitions,
# median reported (sender's bits per second).
# Writes bench/results/netns.md and netns-run.json.
# Env: PURPLE_OCI, RUNS (default 20), SECONDS_PER_TEST (default 5), REPS (default 3).
source "$(dirname "$0")/lib.sh"
need hyperfine iperf3 nsenter python3 slirp4netns

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
RUNS=${RUNS:-20} SECS=${SECONDS_PER_TEST:-5} REPS=${REPS:-3}
if [ "$SMOKE" = 1 ]; then RUNS=2 SECS=1 REPS=1; fi
PURPLE=$(dirname "$PURPLE_OCI")/purple

srv=10.203.0.2
cns=${TAG}c sns=${TAG}s
veth_pair "$cns" "$sns" 10.203.0
nsenter --net=/run/netns/"$sns" iperf3 -s -D -B $srv --logfile "$WORK/iperf3.log" --pidfile "$WORK/iperf3.pid"
# By its pid: `ip netns pids` misses a daemon whose namespace is being torn down.
on_exit 'kill "$(cat "$WORK/iperf3.pid")"'
for _ in $(seq 100); do nsenter --net=/run/netns/"$sns" ss -ltn | grep -q ":5201" && break; sleep 0.05; done

pr=$WORK/root-purple
mkdir -p "$pr"
on_exit remove_all "$PURPLE_OCI" "$pr" "$TAG"

# The two policies differ only in the namespace.
policy() {
  cat <<EOF
name: $1
network:
$2
filesystem:
  immutable_paths:
    - { host_path: /usr, sandbox_path: /usr }
    - { host_path: /bin, sandbox_path: /bin, optional: true }
    - { host_path: /lib, sandbox_path: /lib, optional: true }
    - { host_path: /lib64, sandbox_path: /lib64, optional: true }
  scratch_paths: ["/tmp"]
EOF
}
policy private "  isolated: false" > "$WORK/private.yaml"
policy host "  namespace: host" > "$WORK/host.yaml"

in_client="nsenter --net=/run/netns/$cns"
id="${TAG}-\$\$"
run() { echo "$in_client $PURPLE --root $pr run -q --no-workdir --profile $WORK/$1.yaml --id $id -- $2"; }

log "purple run -- true ($RUNS runs each)"
hyperfine --show-output --runs "$RUNS" --warmup 1 --export-json "$OUT/netns-run.json" \
  -n "private namespace + slirp4netns" "$(run private true)" \
  -n "shared namespace (namespace: host)" "$(run host true)" >&2

# throughput CMD...: the sender's bits per second of REPS iperf3 runs, median.
throughput() {
  local all=() i bps
  for ((i = 0; i < REPS; i++)); do
    bps=$("$@" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_sent"]["bits_per_second"])')
    all+=("$bps")
  done
  echo "$(printf '%s\n' "${all[@]}" | median) ${all[*]}"
}
iperf="iperf3 -c $srv -t $SECS -J"
log "iperf3 TCP, $SECS s x $REPS"
direct=$(throughput $in_client $iperf)
shared=$(throughput $in_client "$PURPLE" --root "$pr" run -q --no-workdir --profile "$WORK/host.yaml" -- $iperf)
private=$(throughput $in_client "$PURPLE" --root "$pr" run -q --no-workdir --profile "$WORK/private.yaml" -- $iperf)

left=$(leftovers "$TAG" "$pr"; grep -lz "^PURPLE_SANDBOX=$TAG" /proc/[0-9]*/environ 2>/dev/null || true)
[ -z "$left" ] || { log "left behind: $left"; exit 1; }

{
  echo "## Sandbox network: private namespace (slirp4netns) against the shared namespace"
  echo
  host_description
  echo "- load average at the start: $load_start"
  echo "- slirp4netns: $(slirp4netns --version | head -1), started with --configure --mtu 65520 --disable-host-loopback --enable-sandbox --enable-seccomp"
  echo
  echo "### \`purple run -- true\` ($RUNS runs, mean ± σ)"
  echo
  echo "| case | mean ms | σ ms | min ms |"
  echo "|---|---|---|---|"
  python3 - "$OUT/netns-run.json" <<'EOF'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print(f"| {r['command']} | {r['mean']*1000:.1f} | {r['stddev']*1000:.1f} | {r['min']*1000:.1f} |")
EOF
  echo
  echo "### iperf3 TCP, one stream, $SECS s ($REPS repetitions, median; Gbit/s)"
  echo
  echo "| case | Gbit/s (median) | all |"
  echo "|---|---|---|"
  for row in "caller's namespace, no sandbox|$direct" "sandbox, shared namespace (namespace: host)|$shared" "sandbox, private namespace + slirp4netns|$private"; do
    name=${row%%|*} vals=(${row#*|})
    # awk, not bc: bc reads neither "1e9" nor iperf3's exponent notation.
    gbit() { awk -v v="$1" 'BEGIN { printf "%.2f", v / 1e9 }'; }
    printf '| %s | %s | %s |\n' "$name" "$(gbit "${vals[0]}")" \
      "$(for v in "${vals[@]:1}"; do printf '%s ' "$(gbit "$v")"; done)"
  done
} > "$OUT/netns.md"
cat "$OUT/netns.md"
