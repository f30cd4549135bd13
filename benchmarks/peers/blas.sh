# Sourced by the peer benchmarks (perf, mips, train): sets OPENBLAS_CORETYPE
# to the kernel family this CPU supports, so Debian's OpenBLAS does not fall
# back to a generic core (0.3.21 detects some CPUs as Prescott: no AVX), and
# exports BLAS_ENV, the env(1) prefix of the peer's command.
# A core type the caller already set is kept.
blas_core() {
	if [ -n "${OPENBLAS_CORETYPE:-}" ]; then
		echo "$OPENBLAS_CORETYPE"
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
BLAS_ENV="env -u OPENBLAS_L2_SIZE"
if [ -n "$BLAS_CORE" ]; then
	BLAS_ENV="$BLAS_ENV OPENBLAS_CORETYPE=$BLAS_CORE"
fi
export BLAS_CORE BLAS_ENV
