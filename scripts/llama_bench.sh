#!/usr/bin/env bash
# Builds llama.cpp's llama-bench from the PyPI source package llama-cpp-python
# (which vendors llama.cpp) into /tmp, for the speed comparison recorded in
# docs/performance.md, and runs it on the default model with 2 threads.
# Nothing it builds is part of Plexus.
#
# The vector units are named explicitly (no -march=native: the host's AMX
# state is not usable in some virtual machines, and a native build then dies
# with SIGILL); on the project's machine this enables AVX2, FMA, F16C, AVX-512
# and VNNI, llama.cpp's fastest CPU paths there.
set -euo pipefail
work=${WORK:-/tmp/plexus-llama-bench}
version=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
model=${MODEL:-$HOME/.cache/plexus/models/SmolLM2-135M-Instruct.Q4_1.gguf}
mkdir -p "$work"
# AVX-VNNI (the VEX form) only where the CPU has it: some AVX-512 machines (AMD EPYC) lack it.
avxvnni=$(grep -qw avx_vnni /proc/cpuinfo && echo ON || echo OFF)
if [ ! -x "$work/build/bin/llama-bench" ]; then
  command -v cmake >/dev/null || { apt-get update && apt-get install -y cmake; }
  pip download --no-deps --no-binary :all: "llama-cpp-python==$version" -d "$work"
  tar -xzf "$work/llama_cpp_python-$version.tar.gz" -C "$work"
  cmake -S "$work/llama_cpp_python-$version/vendor/llama.cpp" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
    -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX_VNNI="$avxvnni" -DGGML_OPENMP=OFF \
    -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF
  cmake --build "$work/build" --target llama-bench -j"$(nproc)"
fi
"$work/build/bin/llama-bench" -m "$model" -t "${THREADS:-2}" -p 512 -n 128
