#!/usr/bin/env bash
# LoRA training throughput, roe vs PyTorch on CPU, on the same step: writes
# benchmarks/results/train.md and train.json. Run from anywhere:
#
#   benchmarks/train/bench.sh [-time SECONDS]
#
# Installs Debian's python3-torch and libopenblas0-openmp with apt-get unless
# they are already installed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
secs=10
if [ "${1:-}" = "-time" ]; then secs=$2; fi
pkgs=(python3-torch python3-numpy libopenblas0-openmp)
if ! dpkg -s "${pkgs[@]}" >/dev/null 2>&1; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${pkgs[@]}"
fi
. "$root/benchmarks/peers/blas.sh"
echo "peer BLAS core type: ${BLAS_CORE:-not set (generic CPU)}" >&2
blasdir=$(dirname "$(find /usr/lib -path '*openblas-openmp*' -name 'libopenblas*.so*' | head -1)")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$root/benchmarks/results"
cd "$root"
go run ./benchmarks/train -write "$tmp" -json "$tmp/roe.json" -time "$secs"
# Debian's python (python3-torch lives in its dist-packages), OpenBLAS with
# OpenMP, two threads, and the OpenBLAS core type of this CPU (benchmarks/peers/blas.sh).
$BLAS_ENV LD_LIBRARY_PATH="$blasdir" OMP_NUM_THREADS=2 \
	/usr/bin/python3 "$here/torch_bench.py" --roe "$tmp/roe.json" --time "$secs" \
	--md "$root/benchmarks/results/train.md" --json "$root/benchmarks/results/train.json"
