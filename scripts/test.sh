#!/usr/bin/env bash
# Runs every Purple test, as root, on the real kernel (after scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "test: run as root (tests create real containers)" >&2; exit 2; }
cargo fmt --all -- --check
cargo build --release --locked
cargo clippy --release --all-targets --locked -- -D warnings
cargo test --release --workspace --locked
# One small iteration of every benchmark, so that they keep working (numbers
# are not judged here; see docs/benchmarks.md for real runs).
bench/run-all.sh --smoke
