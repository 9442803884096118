#!/usr/bin/env bash
# Starts a local network with `plexus up` (the default model) and drives headless Chromium
# through its explorer (scripts/explorer_browser_check.py): every page kind, the trace of a
# request that failed over mid-stream, search, live updates. Screenshots go to
# ${EXPLORER_SHOTS:-.build/explorer-screenshots} (CI artefacts, not committed).
set -euo pipefail
cd "$(dirname "$0")/.."
plexus=${PLEXUS_BIN:-.build/debug/plexus}
shots=${EXPLORER_SHOTS:-$PWD/.build/explorer-screenshots}
if ! command -v "${CHROMIUM:-chromium}" >/dev/null 2>&1; then
    echo "explorer check: installing chromium"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi
work=$(mktemp -d /tmp/plexus-explorer.XXXXXX)
PLEXUS_HOME="$work/home" "$plexus" up --dir "$work/up" --port 0 > "$work/up.out" 2>&1 &
up=$!
trap 'kill $up 2>/dev/null || true; wait $up 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 600); do
    [ -s "$work/up/network.json" ] && break
    kill -0 $up 2>/dev/null || { cat "$work/up.out"; exit 1; }
    sleep 0.5
done
[ -s "$work/up/network.json" ] || { echo "plexus up did not start"; cat "$work/up.out"; exit 1; }
python3 scripts/explorer_browser_check.py "$work/up/network.json" "$shots"
