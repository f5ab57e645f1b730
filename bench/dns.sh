#!/usr/bin/env bash
# DNS latency through Purple's resolver against asking the same server
# directly: `netprobe dns-rate` (sequential A queries over UDP, each waiting
# for its answer) exec'd in a sleeping container in a client network
# namespace, against the test host's authoritative server
# (integration/probe/testhost.py) in a server namespace over veth
# (10.202.0.0/24; nothing is routed in the host's namespace).
#
#   sudo bench/dns.sh [--smoke]
#
# Cases: purple-oci with no plan (queries go straight to 10.202.0.2:53);
# an allow-list plan with allowed.test (every query is redirected to the
# resolver, forwarded to 10.202.0.2 and its answer learned into the allow map
# before the reply); the same plan asking for evil.test (refused by the
# resolver itself, one dns.denied audit record per query).
# 3 repetitions per case (1 with --smoke), median of the mean latency reported.
# Env: PURPLE_OCI, QUERIES (default 2000).
source "$(dirname "$0")/lib.sh"
need cc ip python3

REPS=3 QUERIES=${QUERIES:-2000}
if [ "$SMOKE" = 1 ]; then REPS=1 QUERIES=100; fi

srv=10.202.0.2
cns=${TAG}c sns=${TAG}s
cc -static -O2 -o "$WORK/netprobe" "$BENCH/../integration/probe/netprobe.c"

veth_pair "$cns" "$sns" 10.202.0

ip netns exec "$sns" python3 "$REPO/integration/probe/testhost.py" "$WORK/host.log" $srv 80 > /dev/null 2>&1 &
for _ in $(seq 200); do [ -e "$WORK/host.log.ready" ] && break; sleep 0.05; done
[ -e "$WORK/host.log.ready" ] || { log "test host did not start"; exit 1; }

pr=$WORK/root-purple
mkdir -p "$pr"
on_exit remove_all "$PURPLE_OCI" "$pr" "$TAG"
printf '{"mode":"allow-list","allowed_domains":["allowed.test"],"dns_servers":["%s"]}\n' $srv > "$WORK/plan.json"

# start ID [PLAN_FILE]
start() {
  local b=$WORK/$1
  bundle "$b" sleep 3600
  cp "$WORK/netprobe" "$b/rootfs/netprobe"
  py config "$b/config.json" --netns "/var/run/netns/$cns" ${2:+--plan "$2"}
  "$PURPLE_OCI" --root "$pr" create -b "$b" "$TAG$1" >/dev/null 2>&1 < /dev/null
  "$PURPLE_OCI" --root "$pr" start "$TAG$1"
}
start direct
start proxy "$WORK/plan.json"

labels=("direct to the server (no plan)" "Purple's resolver, allowed name (forwarded, learned)" "Purple's resolver, refused name (NXDOMAIN, audited)")
ids=(direct proxy proxy) names=(allowed.test allowed.test evil.test)
declare -A us
for ((r = 0; r < REPS; r++)); do
  for i in "${!labels[@]}"; do
    line=$("$PURPLE_OCI" --root "$pr" exec "$TAG${ids[i]}" /netprobe dns-rate $srv "${names[i]}" "$QUERIES")
    m=$(awk '$4 == 0 {print $8}' <<< "$line")
    [ -n "$m" ] || { log "${labels[i]}: $line"; exit 1; }
    us[$i]="${us[$i]:-} $m"
    log "${labels[i]}: $m us/query"
  done
done

{
  echo "## DNS latency ($REPS repetitions, median of the mean; $QUERIES sequential UDP queries)"
  echo
  host_description
  echo
  echo "| case | µs per query (median) | ratio | all |"
  echo "|---|---|---|---|"
  base=$(median <<< "${us[0]# }")
  for i in "${!labels[@]}"; do
    m=$(median <<< "${us[$i]# }")
    printf '| %s | %.1f | %.2f | %s |\n' "${labels[i]}" "$m" "$(python3 -c "print($m / $base)")" "${us[$i]# }"
  done
} > "$OUT/dns.md"
cat "$OUT/dns.md"

left=$(remove_all "$PURPLE_OCI" "$pr" "$TAG"; leftovers "$TAG" "$pr")
[ -z "$left" ] || { log "left behind: $left"; exit 1; }
