#!/usr/bin/env bash
# Serving under concurrent load, side by side: builds llama.cpp's llama-server from the PyPI
# source package llama-cpp-python (which vendors llama.cpp) into /tmp, starts it on the same
# GGUF with N parallel slots and 2 threads, and runs `plexus bench serve`, which measures a
# Plexus node and that server with the same client, alternating, in one run (JSON out).
# Nothing it builds is part of Plexus. The vector units are named as in scripts/llama_bench.sh.
#
#   scripts/serve_bench.sh            # 8 streams, 3 rounds
#   N=4 ROUNDS=5 scripts/serve_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
work=${WORK:-/tmp/plexus-llama-bench}
version=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
model=${MODEL:-$HOME/.cache/plexus/models/SmolLM2-135M-Instruct.Q4_1.gguf}
n=${N:-8}
threads=${THREADS:-2}
port=${PORT:-8091}
mkdir -p "$work"
# AVX-VNNI (the VEX form) only where the CPU has it: some AVX-512 machines (AMD EPYC) lack it.
avxvnni=$(grep -qw avx_vnni /proc/cpuinfo && echo ON || echo OFF)
if [ ! -x "$work/build/bin/llama-server" ]; then
  command -v cmake >/dev/null || { apt-get update && apt-get install -y cmake; }
  [ -f "$work/llama_cpp_python-$version.tar.gz" ] || pip download --no-deps --no-binary :all: "llama-cpp-python==$version" -d "$work"
  [ -d "$work/llama_cpp_python-$version" ] || tar -xzf "$work/llama_cpp_python-$version.tar.gz" -C "$work"
  cmake -S "$work/llama_cpp_python-$version/vendor/llama.cpp" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
    -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX_VNNI="$avxvnni" -DGGML_OPENMP=OFF \
    -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_EXAMPLES=OFF
  cmake --build "$work/build" --target llama-server -j"$(nproc)"
fi
[ -f "$model" ] || swift run -c release plexus models pull smollm2-135m
swift build -c release --product plexus
# Each slot gets 2,048 positions of context, as the Plexus node's requests may use.
"$work/build/bin/llama-server" -m "$model" -np "$n" -t "$threads" -c $((2048 * n)) --host 127.0.0.1 --port "$port" \
  > "$work/llama-server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null' EXIT
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
  sleep 0.5
done
.build/release/plexus bench serve --concurrency "$n" --threads "$threads" --rounds "${ROUNDS:-3}" --anchor "http://127.0.0.1:$port" --json
