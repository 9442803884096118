#!/usr/bin/env bash
# Starts a local network with `plexus up`, runs the official OpenAI Python SDK
# against its gateway (scripts/openai_sdk_check.py), and stops the network.
set -euo pipefail
cd "$(dirname "$0")/.."
plexus=${PLEXUS_BIN:-.build/debug/plexus}
work=$(mktemp -d /tmp/plexus-sdk.XXXXXX)
venv=${OPENAI_VENV:-$work/venv}
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" 2>/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv && python3 -m venv "$venv"; }
    "$venv/bin/pip" install -q openai
fi
PLEXUS_HOME="$work/home" "$plexus" up --dir "$work/up" --port 0 > "$work/up.out" 2>&1 &
up=$!
trap 'kill $up 2>/dev/null || true; wait $up 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 600); do
    [ -s "$work/up/network.json" ] && break
    kill -0 $up 2>/dev/null || { cat "$work/up.out"; exit 1; }
    sleep 0.5
done
[ -s "$work/up/network.json" ] || { echo "plexus up did not start"; cat "$work/up.out"; exit 1; }
"$venv/bin/python" scripts/openai_sdk_check.py "$work/up/network.json"
