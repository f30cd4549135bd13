#!/usr/bin/env bash
# The peer baselines in one run (make bench-peers; not part of make test):
#   1. llama.cpp side by side with roe on the same GGUF files (F32, BF16,
#      Q8_0, Q4_0, Q4_K_M of the SmolLM2-135M shape, written by roe's own
#      writer and quantizer): benchmarks/results/gguf.md. llama.cpp is built
#      from the source folder LLAMA_CPP_DIR points to (nothing is fetched or
#      committed), into LLAMA_CPP_DIR/build-roe; LLAMA_BENCH=PATH takes an
#      llama-bench built elsewhere instead. Without either, the llama.cpp rows
#      are quoted from SHARED/golden/gguf/PERF.md (another machine), labelled
#      as quoted and never counted as goals.
#   2. Exact MIPS against FAISS (benchmarks/mips/faiss.sh): mips.md.
#   3. LoRA training against PyTorch (benchmarks/train/bench.sh): train.md.
# The Python peers run on Debian's OpenBLAS with this CPU's core type
# (benchmarks/peers/blas.sh), named in each result.
set -euo pipefail
cd "$(dirname "$0")/../.."
SHARED=${SHARED:-../shared}
LLAMA_BENCH=${LLAMA_BENCH:-}
LLAMA_BUILD=${LLAMA_BUILD:-}
if [ -z "$LLAMA_BENCH" ] && [ -n "${LLAMA_CPP_DIR:-}" ]; then
	[ -f "$LLAMA_CPP_DIR/CMakeLists.txt" ] || { echo "bench-peers: LLAMA_CPP_DIR=$LLAMA_CPP_DIR has no CMakeLists.txt" >&2; exit 2; }
	command -v cmake >/dev/null || { echo "bench-peers: building llama.cpp needs cmake (apt-get install cmake)" >&2; exit 2; }
	build="$LLAMA_CPP_DIR/build-roe"
	echo "bench-peers: building llama.cpp in $build (-DGGML_NATIVE=ON, its CPU backend)" >&2
	cmake -S "$LLAMA_CPP_DIR" -B "$build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF >/dev/null
	cmake --build "$build" -j "$(nproc)" --target llama-bench llama-cli >/dev/null
	LLAMA_BENCH="$build/bin/llama-bench"
	if [ -z "$LLAMA_BUILD" ] && git -C "$LLAMA_CPP_DIR" rev-parse --short HEAD >/dev/null 2>&1; then
		LLAMA_BUILD="$(git -C "$LLAMA_CPP_DIR" describe --tags --always 2>/dev/null) ($(git -C "$LLAMA_CPP_DIR" rev-parse --short HEAD))"
	fi
fi
if [ -n "$LLAMA_BENCH" ]; then
	LLAMA_BENCH="$LLAMA_BENCH" LLAMA_BUILD="$LLAMA_BUILD" bash benchmarks/perf/run.sh -only gguf
else
	echo "bench-peers: no LLAMA_CPP_DIR (or LLAMA_BENCH): llama.cpp is not run; its figures are quoted from $SHARED/golden/gguf/PERF.md (another machine)" >&2
	bash benchmarks/perf/run.sh -only gguf -llama-quoted "$SHARED/golden/gguf/PERF.md"
fi
bash benchmarks/mips/faiss.sh
bash benchmarks/train/bench.sh
echo "bench-peers: benchmarks/results/{gguf,mips,train}.md" >&2
