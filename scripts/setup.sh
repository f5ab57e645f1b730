#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine and builds Purple (run as root).
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  build-essential pkg-config libseccomp-dev clang llvm libelf-dev libbpf-dev \
  busybox-static runc podman containerd uidmap slirp4netns passt fuse-overlayfs \
  bpftool iproute2 iperf3 hyperfine strace linux-perf python3 python3-venv curl ca-certificates man-db bash-completion >/dev/null

# The LLM gateway's tests: the agent uses the providers' real SDKs (a venv,
# so that Debian's Python stays as it is; the sandbox binds it read-only).
if [ ! -x /opt/purple-test/bin/pip ]; then
  python3 -m venv /opt/purple-test
fi
/opt/purple-test/bin/pip install -q --upgrade openai anthropic

if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found: install Rust (rustup) first" >&2
  exit 2
fi
cargo build --release --locked
# Man pages and bash completions, generated from the commands' own flags;
# the binaries on PATH, where docs/podman.md and docs/containerd.md register
# the runtime.
install -d /usr/local/share/man/man1 /usr/local/share/bash-completion/completions
for bin in purple purple-oci; do
  "target/release/$bin" man /usr/local/share/man/man1
  "target/release/$bin" completions bash >"/usr/local/share/bash-completion/completions/$bin"
  ln -sf "$(pwd)/target/release/$bin" "/usr/local/bin/$bin"
done
echo "setup: built $(pwd)/target/release/purple-oci, linked from /usr/local/bin (man purple, man purple-oci)"
echo
bash scripts/demo.sh
