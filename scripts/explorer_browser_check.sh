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
. scripts/up_for_check.sh
start_up "$plexus" "$work"
python3 scripts/explorer_browser_check.py "$work/up/network.json" "$shots"
