#!/bin/bash
# scripts/fuzz.sh TARGET|all SECONDS — runs libFuzzer on one decoder of outside bytes (or on
# each in turn), starting from its committed seeds in Fuzz/corpus/TARGET. The first run builds
# the targets with coverage and AddressSanitizer in .build/fuzz (some minutes). A crash or a
# failed property stops the run with a non-zero status and leaves the input in
# .build/fuzz-crashes/; turn it into a regression test.
#   PLEXUS_FUZZ_CORPUS=DIR keeps what a run finds in DIR/TARGET (a long run's corpus).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target=${1:?usage: scripts/fuzz.sh TARGET|all SECONDS}
seconds=${2:-30}
build=${PLEXUS_FUZZ_BUILD:-$root/.build/fuzz}
PLEXUS_FUZZ=1 swift build --package-path "$root" --build-path "$build" --product plexus-fuzz >&2
bin=$build/debug/plexus-fuzz
targets=(transaction block receipt snapshot shard-frame envelope json generate-request chat-request node-event gguf http-server http-client ledger-json market-record)
[ "$target" = all ] || targets=("$target")
crashes=$root/.build/fuzz-crashes
mkdir -p "$crashes"
for t in "${targets[@]}"; do
    seeds=$root/Fuzz/corpus/$t
    [ -d "$seeds" ] || { echo "no target '$t' (seeds in Fuzz/corpus: $(ls "$root/Fuzz/corpus" | tr '\n' ' '))" >&2; exit 2; }
    if [ -n "${PLEXUS_FUZZ_CORPUS:-}" ]; then work=$PLEXUS_FUZZ_CORPUS/$t; mkdir -p "$work"; keep=1; else work=$(mktemp -d); keep=0; fi
    echo "fuzz $t: ${seconds} s" >&2
    status=0
    PLEXUS_FUZZ_TARGET=$t "$bin" -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=4096 \
        -artifact_prefix="$crashes/$t-" -print_final_stats=1 "$work" "$seeds" > "$crashes/$t.log" 2>&1 || status=$?
    grep -E "^stat::(number_of_executed_units|peak_rss_mb)|cov: |Done [0-9]+ runs" "$crashes/$t.log" | tail -n 4 >&2 || true
    [ "$keep" = 1 ] || rm -rf "$work"
    if [ "$status" != 0 ]; then
        echo "fuzz $t FAILED (status $status): see $crashes/$t.log" >&2
        grep -E "property failed|ERROR: AddressSanitizer|Fatal error|SUMMARY" "$crashes/$t.log" | head -n 5 >&2 || true
        exit 1
    fi
done
