# Shared by bench/*.sh (sourced, not run). Sets:
#   REPO, BENCH, PURPLE_OCI (env, default REPO/target/release/purple-oci), RUNC (env, default runc),
#   SMOKE (1 with --smoke), WORK (a fresh temp dir), OUT (results dir: bench/results, or WORK/results
#   in smoke mode so a smoke run never overwrites real results), TAG (unique per run, prefixes IDs).
# and a cleanup stack: `on_exit CMD...` runs CMD at exit, last registered first, even on failure.
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH")
PURPLE_OCI=${PURPLE_OCI:-$REPO/target/release/purple-oci}
RUNC=${RUNC:-runc}
SMOKE=0
for arg in "$@"; do
  case $arg in
    --smoke) SMOKE=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "$(basename "$0"): unknown argument $arg (only --smoke)" >&2; exit 2 ;;
  esac
done

[ "$(id -u)" = 0 ] || { echo "$(basename "$0"): run as root" >&2; exit 2; }
[ -x "$PURPLE_OCI" ] || { echo "$(basename "$0"): $PURPLE_OCI missing: build it (cargo build --release) or set PURPLE_OCI" >&2; exit 2; }
command -v "$RUNC" >/dev/null || { echo "$(basename "$0"): $RUNC missing: apt-get install runc" >&2; exit 2; }

TAG=pb$$
export BENCH_TAG=$TAG
WORK=$(mktemp -d /tmp/purple-bench.XXXXXX)
# Sandboxes in a user namespace mount from inside it: let them pass (not list).
chmod 711 "$WORK"
# `purple run` makes the profile's ./output where it runs: here, not in the caller's directory.
cd "$WORK"
if [ "$SMOKE" = 1 ]; then OUT=$WORK/results; else OUT=${BENCH_OUT:-$BENCH/results}; fi
mkdir -p "$OUT"

_cleanups=()
on_exit() { _cleanups+=("$*"); }
_run_cleanups() {
  local rc=$? i
  trap - EXIT INT TERM
  trap '' PIPE
  for ((i = ${#_cleanups[@]} - 1; i >= 0; i--)); do eval "${_cleanups[i]}" >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
  exit "$rc"
}
trap _run_cleanups EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

need() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null || { echo "$(basename "$0"): $c missing: apt-get install $c" >&2; exit 2; }
  done
}

log() { printf '[%s] %s\n' "$(basename "$0" .sh)" "$*" >&2; }

py() { python3 "$BENCH/benchlib.py" "$@"; }

# A python3 that has matplotlib (Debian's python3-matplotlib lives in
# /usr/bin/python3, which a pyenv python3 first on PATH does not see), or nothing.
plot_python() {
  local p
  for p in python3 /usr/bin/python3; do
    if "$p" -c 'import matplotlib' 2>/dev/null; then echo "$p"; return; fi
  done
}

# bundle DIR CMD...: a busybox bundle (quietly).
# veth_pair CLIENT_NS SERVER_NS NET: two network namespaces joined by veth,
# the client NET.1/24 and the server NET.2/24, loopback up in both; removed at
# exit with every process in them. Nothing is routed in the host's namespace.
veth_pair() {
  local c=$1 s=$2 net=$3
  ip netns add "$c"; on_exit ip netns del "$c"
  ip netns add "$s"; on_exit ip netns del "$s"
  on_exit 'for p in $(ip netns pids '"$s"'; ip netns pids '"$c"'); do kill -9 $p; done'
  ip link add "${TAG}v0" netns "$c" type veth peer name "${TAG}v1" netns "$s"
  ip -n "$c" link set lo up
  ip -n "$c" addr add "$net.1/24" dev "${TAG}v0"
  ip -n "$c" link set "${TAG}v0" up
  ip -n "$s" link set lo up
  ip -n "$s" addr add "$net.2/24" dev "${TAG}v1"
  ip -n "$s" link set "${TAG}v1" up
}

# The median of numbers on stdin (space or newline separated).
median() { tr ' ' '\n' | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

bundle() { "$REPO/bundles/make-busybox-bundle.sh" "$@" >/dev/null; }

# Forcibly removes every container whose ID starts with PREFIX from ROOT.
remove_all() {
  local rt=$1 root=$2 prefix=$3 id
  [ -d "$root" ] || return 0
  for id in $("$rt" --root "$root" list -q 2>/dev/null | grep "^$prefix" || true); do
    "$rt" --root "$root" delete --force "$id" >/dev/null 2>&1 || true
  done
}

# Prints what is left of containers whose IDs start with PREFIX (nothing if clean).
leftovers() {
  local prefix=$1 root
  shift
  for root in "$@"; do
    find "$root" "$root/.purple" -mindepth 1 -maxdepth 1 -name "$prefix*" 2>/dev/null || true
  done
  find /sys/fs/cgroup/*/purple /sys/fs/cgroup/unified/purple /sys/fs/bpf/purple \
    -mindepth 1 -maxdepth 1 -name "$prefix*" 2>/dev/null || true
  find /sys/fs/cgroup/* -mindepth 1 -maxdepth 2 -name "$prefix*" 2>/dev/null || true
}

host_description() {
  printf -- '- date: %s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
  printf -- '- host: %s CPUs (%s), %s GiB RAM, kernel %s\n' "$(nproc)" \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')" \
    "$(awk '/MemTotal/ {printf "%.0f", $2/1048576}' /proc/meminfo)" "$(uname -r)"
  printf -- '- cgroups: /sys/fs/cgroup is %s, /sys/fs/cgroup/unified is %s\n' \
    "$(stat -fc %T /sys/fs/cgroup)" "$(stat -fc %T /sys/fs/cgroup/unified 2>/dev/null || echo absent)"
  printf -- '- purple-oci: %s (sha256 %s)\n' "$PURPLE_OCI" "$(sha256sum "$PURPLE_OCI" | cut -c1-12)"
  printf -- '- runc: %s\n' "$("$RUNC" --version | head -1)"
  printf -- '- load average at the end: %s (other engineers build on this host)\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
}
