package kernels

import (
	"fmt"
	"os"
	"strings"
)

// impl is one complete set of kernel bodies for one instruction set. The
// exported functions check lengths and dispatch through cur; tests switch cur
// to run every available set against the reference twins.
//
// All slice arguments have matching, non-zero lengths unless stated.
type impl struct {
	name     string
	dot      func(a, b []float32) float32
	axpy     func(alpha float32, x, y []float32)
	add      func(dst, x []float32)
	mulScale func(dst, x, w []float32, s float32) // dst = w ⊙ (x·s)
	scale    func(x []float32, s float32)
	rope     func(x0, x1, cos, sin []float32)
	max      func(x []float32) float32
	expSum   func(x []float32, mx float32) float32 // x = exp(x-mx), returns Σx
	siluMul  func(g, u []float32)

	// GEMM micro-kernels: dst[i*ldd+j] = x_i · w_j over k (or += when acc)
	// for a tile of mr rows of x (stride ldx) by nr rows of w (stride ldw):
	//	tile: mr×nr, tileM1: 1×nr, tileN1: mr×1.
	mr, nr int
	tile   func(dst []float32, ldd int, acc bool, x []float32, ldx int, w []float32, ldw, k int)
	tileM1 func(dst []float32, acc bool, x, w []float32, ldw, k int)
	tileN1 func(dst []float32, ldd int, acc bool, x []float32, ldx int, w []float32, k int)

	// bf16-weight micro-kernels: as tile and tileM1 but w holds bf16 bit
	// patterns, widened to float32 on load. k must be a multiple of bk (the
	// driver does the rest of k in Go).
	bk         int
	tileBF16   func(dst []float32, ldd int, acc bool, x []float32, ldx int, w []uint16, ldw, k int)
	tileM1BF16 func(dst []float32, acc bool, x []float32, w []uint16, ldw, k int)
	widen      func(dst []float32, src []uint16) // len(src) a multiple of bk; nil: Go loop
	// axpyRowsBF16 (nil: Go): see AxpyRowsBF16; len(y) a multiple of the
	// vector width, len(a) ≥ 1.
	axpyRowsBF16 func(y []float32, b []uint16, ldb int, a []float32, split int)
	// axpyRowsF16 (nil: Go): see AxpyRowsF16; as axpyRowsBF16.
	axpyRowsF16 func(y []float32, b []uint16, ldb int, a []float32, split int)
	// axpyRows (nil: axpy row by row): see AxpyRows; the same bits as axpy,
	// len(y) a multiple of axpyRowsW, len(a) ≥ 1; split 0 (all rows into y)
	// or in (0, len(a)) (two parts, see AxpyRowsSplit).
	axpyRows  func(y, b []float32, ldb int, a []float32, split int)
	axpyRowsW int // the width len(y) must be a multiple of

	// Packed prefill GEMM (nil: none; the driver uses the tiles above).
	// gemmPacked computes tiles consecutive 8-row groups of x (stride ldx)
	// times a k×pnr panel b packed by packB: dst[i*ldd+j] (+)= Σ_p
	// x[i*ldx+p]·b[p*pnr+j]. packB writes dst[p*pnr+j] = w[j*ldw+p] for
	// j < pnr, p < k.
	pmr, pnr   int
	gemmPacked func(dst []float32, ldd int, acc bool, x []float32, ldx int, b []float32, k, tiles int)
	packB      func(dst, w []float32, ldw, k int)

	// Fused quantized GEMV per weight type (nil: none; quant_go.go).
	qgemv [32]qgemvFunc
	// qgemvNoSums: the types whose qgemv never reads the sums of x, which
	// prepQ then leaves uncomputed.
	qgemvNoSums [32]bool
	// Exact dequantization of whole rows per weight type (nil: Go).
	dequant [32]func(dst []float32, src []byte)
	// Opt-in int8 activations (q8act.go): integer dot products per weight
	// type (nil: the exact float path) and the row quantizer (nil: Go).
	q8dot   [32]q8dotFunc
	quantQ8 func(a *q8Row, x []float32)
	// q8Note names the instructions of q8dot where they differ from the
	// set's name ("" otherwise).
	q8Note string
	// q8Lanes: some q8dot kernel reads the rows' int32 lanes (q8Row.p, dx).
	q8Lanes bool

	// accRows (nil: Axpy row by row): see AccRows; d a multiple of 64.
	accRows func(dst, table, weight []float32, rows []uint32, d int)

	// fmaLoop runs n iterations of fmaPerIter float32 FLOPs with no memory
	// traffic: the peak-throughput probe behind PeakFLOPs.
	fmaLoop    func(n int)
	fmaPerIter int
}

// impls lists the sets this CPU can run, best first; cur is the one in use.
var (
	impls = []*impl{}
	cur   *impl
)

func init() {
	// Generated assembly first (measured fastest), then the archsimd sets
	// (built only with GOEXPERIMENT=simd), then portable Go.
	impls = append(append(simdImpls(), archsimdImpls()...), goImpl)
	cur = impls[0]
	if name := os.Getenv("ROE_KERNELS"); name != "" {
		_ = UsePath(name) // an unknown name keeps the default; Path tells which
	}
}

// Path names the kernel set in use: "avx512", "avx2", "archsimd-avx512",
// "archsimd-avx2" or "go".
func Path() string { return cur.name }

// Q8Note says which instructions the current set's int8-activation kernels
// use where the set's name does not ("" otherwise), for reports.
func Q8Note() string { return cur.q8Note }

// Paths lists the kernel sets this CPU and build can run, best first.
func Paths() []string {
	s := make([]string, len(impls))
	for i, im := range impls {
		s[i] = im.name
	}
	return s
}

// UsePath switches every kernel to the named set: one of Paths, or a family
// ("archsimd") for its best set here. The environment variable ROE_KERNELS
// does the same at start-up. It is for comparisons and tests: switch before
// any kernel runs, not while one does.
func UsePath(name string) error {
	for _, im := range impls {
		if im.name == name {
			cur = im
			return nil
		}
	}
	for _, im := range impls {
		if strings.HasPrefix(im.name, name+"-") {
			cur = im
			return nil
		}
	}
	return fmt.Errorf("kernels: no kernel set %q here (have %s)", name, strings.Join(Paths(), ", "))
}
