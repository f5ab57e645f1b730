#!/usr/bin/env bash
# What Purple does, in a minute (scripts/setup.sh ends with it): what this
# host lets Purple enforce, then one agent under the secure-agent profile
# whose forbidden connection is refused in the kernel and recorded.
set -euo pipefail
cd "$(dirname "$0")/.."
purple="$(pwd)/target/release/purple"

echo "== purple doctor"
# 1 = degraded: Purple runs, with what the report says is missing.
"$purple" doctor || [ $? -eq 1 ]

work=$(mktemp -d)
# The sandbox (a stranger on the host) runs in it: let it pass.
chmod 0711 "$work"
trap 'rm -rf "$work"' EXIT
cp scripts/demo/agent.py "$work/"
id="demo-$$"
log="/var/log/purple/$id.jsonl"
echo
echo "== purple run --profile secure-agent -- python3 agent.py"
(cd "$work" && "$purple" run --profile secure-agent --id "$id" -- python3 agent.py)
echo
echo "== purple audit $id --kind network.blocked"
"$purple" audit "$id" --kind network.blocked
rm -f "$log"
