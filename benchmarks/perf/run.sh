#!/usr/bin/env bash
# roe's performance benchmark (make bench): installs the PyTorch reference when
# Debian has it, then runs benchmarks/perf, which measures everything in one run
# and writes benchmarks/results/perf.{json,md} and the plots.
set -u
cd "$(dirname "$0")/../.."

PY=/usr/bin/python3
TORCH_CMD=""
if ! "$PY" -c 'import torch' 2>/dev/null; then
	if command -v apt-get >/dev/null 2>&1; then
		echo "perf: installing python3-torch and libopenblas0-openmp (apt-get)" >&2
		(apt-get install -y -q python3-torch libopenblas0-openmp >/dev/null 2>&1 ||
			(apt-get update -q >/dev/null 2>&1 && apt-get install -y -q python3-torch libopenblas0-openmp >/dev/null 2>&1)) ||
			echo "perf: could not install python3-torch; the PyTorch column will be empty" >&2
	fi
fi
if "$PY" -c 'import torch' 2>/dev/null; then
	# OpenMP OpenBLAS for torch, with the core type of this CPU
	# (benchmarks/peers/blas.sh: Debian's OpenBLAS may detect a generic one).
	. benchmarks/peers/blas.sh
	echo "perf: peer BLAS core type ${BLAS_CORE:-not set (generic CPU)}" >&2
	BLASDIR=/usr/lib/x86_64-linux-gnu/openblas-openmp
	TORCH_CMD="$BLAS_ENV LD_LIBRARY_PATH=$BLASDIR\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH} $PY benchmarks/perf/torch_perf.py"
fi
# LLAMA_BENCH=PATH (llama.cpp's llama-bench, built by you elsewhere) runs it on
# the same GGUF files in the same run, for same-machine ratios; LLAMA_BUILD
# names its version when llama-bench reports "unknown".
LLAMA_FLAGS=()
if [ -n "${LLAMA_BENCH:-}" ]; then
	LLAMA_FLAGS=(-llama-bench "$LLAMA_BENCH" -llama-build "${LLAMA_BUILD:-}")
fi
# A roe binary for the peak-RSS-from-outside measurement (roe generate under
# /usr/bin/time, next to llama-cli when LLAMA_BENCH is set).
ROE_BIN=$(mktemp -d)/roe
go build -o "$ROE_BIN" ./cmd/roe && LLAMA_FLAGS+=(-roe-bin "$ROE_BIN")
# GOEXPERIMENT=simd adds the simd/archsimd kernel sets to the comparison; the
# default kernels (generated assembly) are the same either way.
env GOEXPERIMENT=simd go run ./benchmarks/perf -torch "$TORCH_CMD" "${LLAMA_FLAGS[@]}" "$@"
rc=$?
rm -rf "$(dirname "$ROE_BIN")"
exit $rc
