# Sourced by the peer benchmarks (perf, mips, train): picks the OpenBLAS
# kernel family (OPENBLAS_CORETYPE) of the best instruction set this CPU has,
# so the peer runs on its best kernel: Debian's OpenBLAS 0.3.21 detects some
# CPUs as Prescott (no AVX), and an OPENBLAS_CORETYPE inherited from the
# environment may name an older family than the CPU's (a sandbox exporting
# Haswell on an AVX-512 CPU halved PyTorch's prefill). PEER_BLAS_CORETYPE=NAME
# forces a family. Exports BLAS_CORE and BLAS_ENV, the env(1) prefix of the
# peer's command, which sets it (and drops OPENBLAS_L2_SIZE).
blas_core() {
	if [ -n "${PEER_BLAS_CORETYPE:-}" ]; then
		echo "$PEER_BLAS_CORETYPE"
		return
	fi
	local flags
	flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
	case " $flags " in
	*" avx512f "*" avx512bw "*|*" avx512bw "*" avx512f "*) echo SkylakeX ;;
	*" avx2 "*) echo Haswell ;;
	*" avx "*) echo Sandybridge ;;
	*) echo "" ;;
	esac
}
BLAS_CORE=$(blas_core)
BLAS_ENV="env -u OPENBLAS_L2_SIZE -u OPENBLAS_CORETYPE"
if [ -n "$BLAS_CORE" ]; then
	BLAS_ENV="$BLAS_ENV OPENBLAS_CORETYPE=$BLAS_CORE"
fi
export BLAS_CORE BLAS_ENV
