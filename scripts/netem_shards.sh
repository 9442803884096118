#!/usr/bin/env bash
# Shards across emulated links, on this machine: a hub network namespace holds the ledger, the
# gateway and one whole-model node; each shard node runs in a namespace of its own, joined to
# the hub by a veth pair whose two ends carry `tc netem` (delay each way, and optionally loss
# and a rate limit). A kernel without netem (some VMs) gets a delay line instead: the shard
# listens on its namespace's loopback and scripts/delay_proxy.py, on the veth address, holds
# each chunk for the delay each way (and paces to RATE; no loss). For each delay,
# `plexus bench shards --network … --single` measures single-stream decode through the
# pipeline and through the whole node (JSON lines out, one per delay, with the model
# 1 / (compute + hops × RTT) beside the measurement). Needs root (ip netns; tc for netem).
# Everything it creates is removed when it ends.
#
#   scripts/netem_shards.sh                               # delays 0 5 20 50 ms, 2 shards
#   DELAYS="0 5" SHARDS=3 TOKENS=24 scripts/netem_shards.sh
#   LOSS=1% RATE=100mbit scripts/netem_shards.sh
set -euo pipefail
cd "$(dirname "$0")/.."
plexus=${PLEXUS:-.build/release/plexus}
delays=${DELAYS:-0 5 20 50}
shards=${SHARDS:-2}
tokens=${TOKENS:-64}
rounds=${ROUNDS:-1}
loss=${LOSS:-}
rate=${RATE:-}
threads=${THREADS:-1}
tag=plx$$
work=$(mktemp -d /tmp/plexus-netem-XXXXXX)
export PLEXUS_HOME=$work/home PLEXUS_PARENT_PID=$$
hub=$tag-hub
pids=()

cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for n in $(ip netns list | awk '{print $1}' | grep "^$tag-" || true); do ip netns del "$n" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# (Background processes are started with `ip netns exec` itself, which becomes them: their pid
# is the one killed, and their parent is this script, which they follow.)
in_hub() { ip netns exec "$hub" "$@"; }
wait_port() {  # file, seconds
  for _ in $(seq 1 $(( $2 * 10 ))); do [ -s "$1" ] && { cat "$1"; return; }; sleep 0.1; done
  echo "timed out waiting for $1" >&2; exit 1
}

ip netns add "$hub"
ip -n "$hub" link set lo up
link=netem
ip netns exec "$hub" tc qdisc add dev lo root netem delay 0ms 2>/dev/null && ip netns exec "$hub" tc qdisc del dev lo root || link=delay-proxy
[ "$link" = netem ] || echo "tc netem is not in this kernel: delays come from scripts/delay_proxy.py (no loss)" >&2
rate_bps=0
if [ -n "$rate" ]; then
  rate_bps=$(python3 -c "import re,sys; m=re.fullmatch(r'([0-9.]+)([kmg]?)bit', sys.argv[1]); print(int(float(m[1]) * {'':1,'k':1e3,'m':1e6,'g':1e9}[m[2]] / 8))" "$rate")
fi
for k in $(seq 1 "$shards"); do
  ip netns add "$tag-s$k"
  ip -n "$tag-s$k" link set lo up
  ip link add "$tag-h$k" netns "$hub" type veth peer name "$tag-v$k" netns "$tag-s$k"
  ip -n "$hub" addr add "10.77.$k.1/24" dev "$tag-h$k"
  ip -n "$tag-s$k" addr add "10.77.$k.2/24" dev "$tag-v$k"
  ip -n "$hub" link set "$tag-h$k" up
  ip -n "$tag-s$k" link set "$tag-v$k" up
done

# The ledger (development chain: the default key is funded and the default model listed), in the hub.
ip netns exec "$hub" "$plexus" ledger start --dev --data "$work/ledger" --host 0.0.0.0 --port 0 --port-file "$work/ledger.port" \
  --block-interval 50 > "$work/ledger.log" 2>&1 &
pids+=($!)
lport=$(wait_port "$work/ledger.port" 60)
ledger=http://127.0.0.1:$lport
run() { in_hub "$plexus" "$@" --ledger "$ledger" > /dev/null; }
names=(gateway whole)
for k in $(seq 1 "$shards"); do names+=("shard-$k"); done
for n in "${names[@]}"; do
  in_hub "$plexus" keys new --out "$work/$n.json" > /dev/null
  addr=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['address'])" "$work/$n.json")
  run tx transfer --to "$addr" --amount 1000
done
layers=$(python3 - "$shards" <<'EOF'
import sys
n = int(sys.argv[1]); L = 30
print(" ".join(f"{i * L // n}-{(i + 1) * L // n}" for i in range(n)))
EOF
)
common=(--model smollm2-135m --weights smollm2-135m --price-in 0.1 --price-out 0.2 --threads "$threads" --concurrency 4 --prefix-cache-mb 0)
ip netns exec "$hub" "$plexus" node start --ledger "$ledger" --key "$work/whole.json" "${common[@]}" --port 0 --port-file "$work/whole.port" > "$work/whole.log" 2>&1 &
pids+=($!)
k=0
for span in $layers; do
  k=$((k + 1))
  if [ "$link" = netem ]; then
    where=(--host "10.77.$k.2" --port 0)
  else
    # Behind the delay line: loopback inside the namespace, the veth address registered.
    where=(--host 127.0.0.1 --port 18080 --frame-port 18081 --public-url "http://10.77.$k.2:18080")
  fi
  ip netns exec "$tag-s$k" "$plexus" node start --ledger "http://10.77.$k.1:$lport" --key "$work/shard-$k.json" "${common[@]}" \
    --layers "$span" "${where[@]}" --port-file "$work/shard-$k.port" > "$work/shard-$k.log" 2>&1 &
  pids+=($!)
done
proxies=()
start_proxies() {  # delay in ms
  # SIGKILL: a TERM ignored by whatever started this script stays ignored in its children.
  for p in "${proxies[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  proxies=()
  for k in $(seq 1 "$shards"); do
    ip netns exec "$tag-s$k" python3 scripts/delay_proxy.py "10.77.$k.2" 127.0.0.1 "$1" "$rate_bps" 18080 18081 &
    proxies+=($!)
    pids+=($!)
  done
  sleep 0.5
}
[ "$link" = netem ] || start_proxies 0
nodes=("http://127.0.0.1:$(wait_port "$work/whole.port" 120)")
for k in $(seq 1 "$shards"); do wait_port "$work/shard-$k.port" 120 > /dev/null; nodes+=("http://10.77.$k.2:$(cat "$work/shard-$k.port")"); done
key=$(in_hub "$plexus" gateway keys create --account "$(python3 -c "import json; print(json.load(open('$PLEXUS_HOME/keys/default.json'))['address'])")" --data "$work/gw" | tail -1)
run tx deposit --amount 100
ip netns exec "$hub" "$plexus" gateway start --ledger "$ledger" --key "$work/gateway.json" --owner-key "$PLEXUS_HOME/keys/default.json" --data "$work/gw" \
  --port 0 --port-file "$work/gw.port" --settle-interval-ms 500 > "$work/gateway.log" 2>&1 &
pids+=($!)
gport=$(wait_port "$work/gw.port" 60)
python3 - "$work/network.json" "$gport" "$key" "$ledger" "$PLEXUS_HOME/keys/default.json" "${nodes[@]}" <<'EOF'
import json, sys
out, port, key, ledger, keyfile, *nodes = sys.argv[1:]
json.dump({"baseURL": f"http://127.0.0.1:{port}/v1", "apiKey": key, "ledger": ledger,
           "requestor": json.load(open(keyfile))["address"], "nodes": nodes, "pids": []}, open(out, "w"))
EOF

for d in $delays; do
  if [ "$link" = netem ]; then
    for k in $(seq 1 "$shards"); do
      args=(delay "${d}ms")
      [ -n "$loss" ] && args+=(loss "$loss")
      [ -n "$rate" ] && args+=(rate "$rate")
      ip netns exec "$hub" tc qdisc replace dev "$tag-h$k" root netem "${args[@]}"
      ip netns exec "$tag-s$k" tc qdisc replace dev "$tag-v$k" root netem "${args[@]}"
    done
  else
    start_proxies "$d"
  fi
  result=$(in_hub "$plexus" bench shards --network "$work/network.json" --single --tokens "$tokens" --rounds "$rounds" --json)
  python3 - "$d" "$shards" "$loss" "$rate" "$result" "$link" <<'EOF'
import json, sys
d, hops, loss, rate, result, link = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], json.loads(sys.argv[5]), sys.argv[6]
r = result["rounds"][0]
compute = r["whole_itl_p50_ms"]  # the same layers in one process: compute per token
model = 1000 / (compute + hops * 2 * d)
print(json.dumps({"link": link, "one_way_delay_ms": d, "loss": loss or None, "rate": rate or None, "hops": hops,
                  "pipeline_tokens_per_s": round(1000 / r["pipeline_itl_p50_ms"], 2), "whole_tokens_per_s": round(1000 / compute, 2),
                  "model_tokens_per_s": round(model, 2), "pipeline_itl_p50_ms": r["pipeline_itl_p50_ms"],
                  "bytes_per_token_per_hop": result["bytes_per_token_per_hop"]}))
EOF
done
