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
. scripts/up_for_check.sh
start_up "$plexus" "$work"
"$venv/bin/python" scripts/openai_sdk_check.py "$work/up/network.json"
