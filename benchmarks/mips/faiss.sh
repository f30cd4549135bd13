#!/usr/bin/env bash
# Benchmarks roe's exact MIPS against FAISS IndexFlatIP on the same vectors and
# writes benchmarks/results/mips.md and mips.json. Run from anywhere:
#
#   benchmarks/mips/faiss.sh [extra flags for go run ./benchmarks/mips, e.g. -n 10000,100000]
#
# Installs Debian's python3-faiss, python3-numpy and libopenblas0-openmp with
# apt-get unless they are already installed. Needs ~3 GB free in $TMPDIR for N = 1M.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
pkgs=(python3-faiss python3-numpy libopenblas0-openmp)
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
go run ./benchmarks/mips -write "$tmp" -json "$tmp/roe.json" "$@"
# Debian's python (python3-faiss lives in its dist-packages), OpenBLAS with OpenMP,
# and the OpenBLAS core type of this CPU (benchmarks/peers/blas.sh).
$BLAS_ENV LD_LIBRARY_PATH="$blasdir" \
	/usr/bin/python3 "$here/faiss_bench.py" --dir "$tmp" --roe "$tmp/roe.json" \
	--md "$root/benchmarks/results/mips.md" --json "$root/benchmarks/results/mips.json"
