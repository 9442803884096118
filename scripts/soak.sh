#!/usr/bin/env bash
# A soak under chaos (docs/reliability.md): a whole local network under mixed load while
# processes are killed, paused and restarted at random, then checked.
#   scripts/soak.sh --minutes M [more `plexus bench soak` options, e.g. --json, --backend echo]
# Built as users run it (release). The default model comes through `plexus models pull`.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product plexus >&2
exec .build/release/plexus bench soak "$@"
