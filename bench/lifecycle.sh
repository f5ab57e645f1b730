#!/usr/bin/env bash
# Lifecycle latency, runc vs purple-oci, same busybox `true` bundle, one run.
#
#   sudo bench/lifecycle.sh [--smoke]
#
# Variants: runc; runc with the seccomp profile; purple-oci bare (no
# annotation: Purple still attaches its 5 eBPF programs with the default
# cloud-metadata rules, there is no switch to turn that off); purple-oci full
# (100 CIDR rules in io.purple.network plus the seccomp profile); and, for
# `run` only, `purple run --profile secure-agent -- true` (policy to exit).
# (a) hyperfine: `run ID` to exit and delete (runc's `run` deletes unless --keep,
#     like purple-oci's), and `create && start && delete -f` as one command;
# (b) benchlib.py steps: create, start, delete timed separately (the container
#     is waited for, untimed, until `state` says stopped, so delete needs no -f).
# Writes bench/results/lifecycle*.{json,md} and docs/benchmarks-lifecycle.png.
# Env: PURPLE_OCI (binary), RUNC, RUNS (hyperfine runs, default 30), BASELINES
# ("NAME=BINARY ...": other purple-oci builds, measured in the same run as
# rows "... [NAME]": bare, full and, in (a) with the `purple` beside BINARY,
# `purple run`; for before/after tables. (b) interleaves them with the rest,
# which makes its table the fairest comparison on a busy host.)
source "$(dirname "$0")/lib.sh"
need hyperfine python3

RUNS=${RUNS:-30}
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
WARMUP=3
if [ "$SMOKE" = 1 ]; then RUNS=1; WARMUP=0; fi

bare=$WORK/bare full=$WORK/full
bundle "$bare" true
bundle "$full" true
py plan 100 > "$WORK/plan100.json"
py config "$full/config.json" --plan "$WORK/plan100.json" --seccomp

rr=$WORK/root-runc pr=$WORK/root-purple
mkdir -p "$rr" "$pr"
on_exit remove_all "$RUNC" "$rr" "$TAG"
on_exit remove_all "$PURPLE_OCI" "$pr" "$TAG"

# `$$` is expanded by hyperfine's sh -c: a fresh ID per iteration.
id="${TAG}-\$\$"
runc_c="$RUNC --root $rr"
purple_c="$PURPLE_OCI --root $pr"
# `purple run` builds its bundle from the profile each time (host binds, no rootfs).
purple_run="$(dirname "$PURPLE_OCI")/purple --root $pr run -q --no-workdir --profile secure-agent --id $id -- true"

run_cmd() { echo "$1 run -b $2 $id"; }
chain() { echo "$1 create -b $2 $id && $1 start $id && $1 delete -f $id"; }
# `baseline_rows CMD`: hyperfine arguments for each baseline's bare and full
# rows, CMD being run_cmd or chain.
baseline_rows() {
  local b name bin
  for b in ${BASELINES:-}; do
    name=${b%%=*} bin=${b#*=}
    printf '%s\0' -n "purple-oci bare [$name]" "$($1 "$bin --root $pr" "$bare")" \
      -n "purple-oci full (100 rules + seccomp) [$name]" "$($1 "$bin --root $pr" "$full")"
    [ "$1" = run_cmd ] && [ -x "$(dirname "$bin")/purple" ] &&
      printf '%s\0' -n "purple run --profile secure-agent [$name]" \
        "$(dirname "$bin")/purple --root $pr run -q --no-workdir --profile secure-agent --id $id -- true"
  done
  return 0
}
for b in ${BASELINES:-}; do
  [ -x "${b#*=}" ] || { log "baseline ${b%%=*}: ${b#*=} is not executable"; exit 2; }
done
mapfile -d '' run_baselines < <(baseline_rows run_cmd)
mapfile -d '' chain_baselines < <(baseline_rows chain)
step_baselines=()
for b in ${BASELINES:-}; do
  step_baselines+=("purple-bare [${b%%=*}]" "${b#*=}" "$pr" "$bare" "purple-full [${b%%=*}]" "${b#*=}" "$pr" "$full")
done

log "run to exit and delete ($RUNS runs each)"
hyperfine --style basic --runs "$RUNS" --warmup "$WARMUP" --export-json "$OUT/lifecycle-run.json" \
  -n runc "$runc_c run -b $bare $id" \
  -n "runc + seccomp" "$runc_c run -b $full $id" \
  -n "purple-oci bare" "$purple_c run -b $bare $id" \
  -n "purple-oci full (100 rules + seccomp)" "$purple_c run -b $full $id" \
  "${run_baselines[@]}" \
  -n "purple run --profile secure-agent" "$purple_run" >&2

log "create && start && delete -f as one command ($RUNS runs each)"
hyperfine --style basic --runs "$RUNS" --warmup "$WARMUP" --export-json "$OUT/lifecycle-chain.json" \
  -n runc "$(chain "$runc_c" "$bare")" \
  -n "runc + seccomp" "$(chain "$runc_c" "$full")" \
  -n "purple-oci bare" "$(chain "$purple_c" "$bare")" \
  -n "purple-oci full (100 rules + seccomp)" "$(chain "$purple_c" "$full")" \
  "${chain_baselines[@]}" >&2

log "create, start, delete separately ($RUNS runs each, interleaved)"
py steps "$OUT/lifecycle-steps.json" "$RUNS" \
  runc "$RUNC" "$rr" "$bare" \
  runc+seccomp "$RUNC" "$rr" "$full" \
  purple-bare "$PURPLE_OCI" "$pr" "$bare" \
  purple-full "$PURPLE_OCI" "$pr" "$full" \
  "${step_baselines[@]}"

py hyperfine-table "$WORK/run.md" runc "$OUT/lifecycle-run.json"
py hyperfine-table "$WORK/chain.md" runc "$OUT/lifecycle-chain.json"
py steps-table "$WORK/steps.md" runc "$OUT/lifecycle-steps.json"
{
  echo "## Lifecycle ($RUNS runs per row)"
  echo
  host_description
  echo "- load average at the start: $load_start"
  for b in ${BASELINES:-}; do
    echo "- baseline ${b%%=*}: ${b#*=} (sha256 $(sha256sum "${b#*=}" | cut -c1-12))"
  done
  echo
  echo "### run to exit and delete"
  echo
  cat "$WORK/run.md"
  echo
  echo "### create && start && delete -f (one hyperfine command)"
  echo
  cat "$WORK/chain.md"
  echo
  echo "### create, start, delete timed separately (mean ± sd, ms)"
  echo
  cat "$WORK/steps.md"
} > "$OUT/lifecycle.md"
cat "$OUT/lifecycle.md"

pyplot=$(plot_python)
if [ -n "$pyplot" ]; then
  png=$REPO/docs/benchmarks-lifecycle.png
  [ "$SMOKE" = 1 ] && png=$WORK/lifecycle.png
  "$pyplot" "$BENCH/benchlib.py" plot "$png" "$OUT"
  log "plot: $png"
else
  log "matplotlib not found (apt-get install python3-matplotlib): no plot"
fi

left=$(remove_all "$RUNC" "$rr" "$TAG"; remove_all "$PURPLE_OCI" "$pr" "$TAG"; leftovers "$TAG" "$rr" "$pr")
[ -z "$left" ] || { log "left behind: $left"; exit 1; }
