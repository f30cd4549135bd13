//go:build ignore

// gen_asm writes the amd64 assembly kernels, one file per ISA:
//
//	go run gen_asm.go   (from kernels/; also via go generate)
//
// The same generator emits the AVX-512 (zmm, 16 lanes, k-mask tails) and the
// AVX2+FMA (ymm, 8 lanes, VMASKMOVPS tails) variants so the two cannot drift.
package main

import (
	"fmt"
	"math"
	"os"
	"strings"
)

type isa struct {
	name string // suffix of every function: AVX512 or AVX2
	w    int    // float32 lanes per vector
	r    string // register prefix: Z or Y
	mr   int    // GEMM tile rows of x
	nr   int    // GEMM tile rows of w
}

func (s isa) v(i int) string { return fmt.Sprintf("%s%d", s.r, i) }
func (s isa) is512() bool    { return s.w == 16 }
func (s isa) vb() int        { return s.w * 4 } // vector bytes

type gen struct {
	isa
	b strings.Builder
	// f16tab: the GEMV being emitted looks its full-width f16 scales up
	// in f16tab (base in R13, index in R10) instead of widening them.
	f16tab bool
	// blk is the block's place in qgemvX's unrolled loop (0 in the loop
	// of single blocks): bodies may alternate accumulators by it.
	blk int
}

func (g *gen) p(format string, args ...any) { fmt.Fprintf(&g.b, format+"\n", args...) }

// Registers shared by all functions. AVX2 keeps the tail mask in Y15.
const maskReg = 15

// setMask builds the tail mask for CX (< w) remaining lanes; clobbers AX, DX.
func (g *gen) setMask() {
	if g.is512() {
		g.p("\tMOVL $1, AX")
		g.p("\tSHLL CX, AX")
		g.p("\tDECL AX")
		g.p("\tKMOVW AX, K1")
		return
	}
	g.p("\tMOVQ $8, AX")
	g.p("\tSUBQ CX, AX")
	g.p("\tLEAQ masktab<>(SB), DX")
	g.p("\tVMOVUPS (DX)(AX*4), Y15")
}

// load and store move one vector; masked ones touch only the tail lanes and
// zero the rest on load.
func (g *gen) load(masked bool, mem string, dst int) {
	switch {
	case !masked:
		g.p("\tVMOVUPS %s, %s", mem, g.v(dst))
	case g.is512():
		g.p("\tVMOVUPS.Z %s, K1, %s", mem, g.v(dst))
	default:
		g.p("\tVMASKMOVPS %s, Y15, %s", mem, g.v(dst))
	}
}

func (g *gen) store(masked bool, src int, mem string) {
	switch {
	case !masked:
		g.p("\tVMOVUPS %s, %s", g.v(src), mem)
	case g.is512():
		g.p("\tVMOVUPS %s, K1, %s", g.v(src), mem)
	default:
		g.p("\tVMASKMOVPS %s, Y15, %s", g.v(src), mem)
	}
}

// hsum reduces vector register a to a scalar in X<a>'s low lane (a < 16),
// using tmp (< 16) as scratch.
func (g *gen) hsum(a, tmp int) {
	if g.is512() {
		g.p("\tVEXTRACTF64X4 $1, Z%d, Y%d", a, tmp)
		g.p("\tVADDPS Y%d, Y%d, Y%d", tmp, a, a)
	}
	g.p("\tVEXTRACTF128 $1, Y%d, X%d", a, tmp)
	g.p("\tVADDPS X%d, X%d, X%d", tmp, a, a)
	g.p("\tVPERMILPS $0x4e, X%d, X%d", a, tmp)
	g.p("\tVADDPS X%d, X%d, X%d", tmp, a, a)
	g.p("\tVPERMILPS $0xb1, X%d, X%d", a, tmp)
	g.p("\tVADDSS X%d, X%d, X%d", tmp, a, a)
}

// hsumTo reduces accumulator acc (any register) and stores the scalar at mem;
// scratch registers 0 and 1 are clobbered.
func (g *gen) hsumTo(acc int, mem string, add bool) {
	if g.is512() {
		g.p("\tVEXTRACTF64X4 $1, Z%d, Y0", acc)
		g.p("\tVADDPS Y%d, Y0, Y0", acc)
	} else {
		g.p("\tVMOVUPS Y%d, Y0", acc)
	}
	g.p("\tVEXTRACTF128 $1, Y0, X1")
	g.p("\tVADDPS X1, X0, X0")
	g.p("\tVPERMILPS $0x4e, X0, X1")
	g.p("\tVADDPS X1, X0, X0")
	g.p("\tVPERMILPS $0xb1, X0, X1")
	g.p("\tVADDSS X1, X0, X0")
	if add {
		g.p("\tVADDSS %s, X0, X0", mem)
	}
	g.p("\tVMOVSS X0, %s", mem)
}

func (g *gen) text(name, frame string) {
	g.p("")
	g.p("TEXT ·%s%s(SB), NOSPLIT, %s", name, g.name, frame)
}

func (g *gen) ret() {
	g.p("\tVZEROUPPER")
	g.p("\tRET")
}

// stream emits the common shape of an element-wise kernel over CX elements:
// an unrolled-by-one vector loop, then one masked tail. body(masked) emits one
// vector's work; adv lists the pointer registers to advance.
func (g *gen) stream(label string, adv []string, body func(masked bool)) {
	g.p("%s_loop:", label)
	g.p("\tCMPQ CX, $%d", g.w)
	g.p("\tJB %s_tail", label)
	body(false)
	for _, r := range adv {
		g.p("\tADDQ $%d, %s", g.vb(), r)
	}
	g.p("\tSUBQ $%d, CX", g.w)
	g.p("\tJMP %s_loop", label)
	g.p("%s_tail:", label)
	g.p("\tTESTQ CX, CX")
	g.p("\tJZ %s_done", label)
	g.setMask()
	body(true)
	g.p("%s_done:", label)
}

// func dot(a, b *float32, n int) float32
func (g *gen) dot() {
	g.text("dot", "$0-28")
	g.p("\tMOVQ a+0(FP), SI")
	g.p("\tMOVQ b+8(FP), DI")
	g.p("\tMOVQ n+16(FP), CX")
	for i := 0; i < 4; i++ {
		g.p("\tVXORPS %s, %s, %s", g.v(i), g.v(i), g.v(i))
	}
	// 4 independent accumulators hide the FMA latency.
	g.p("dot4:")
	g.p("\tCMPQ CX, $%d", 4*g.w)
	g.p("\tJB dot1")
	for i := 0; i < 4; i++ {
		g.p("\tVMOVUPS %d(SI), %s", i*g.vb(), g.v(4+i))
	}
	for i := 0; i < 4; i++ {
		g.p("\tVFMADD231PS %d(DI), %s, %s", i*g.vb(), g.v(4+i), g.v(i))
	}
	g.p("\tADDQ $%d, SI", 4*g.vb())
	g.p("\tADDQ $%d, DI", 4*g.vb())
	g.p("\tSUBQ $%d, CX", 4*g.w)
	g.p("\tJMP dot4")
	g.p("dot1:")
	g.stream("dotv", []string{"SI", "DI"}, func(masked bool) {
		g.load(masked, "(SI)", 4)
		g.load(masked, "(DI)", 5)
		g.p("\tVFMADD231PS %s, %s, %s", g.v(5), g.v(4), g.v(0))
	})
	g.p("\tVADDPS %s, %s, %s", g.v(1), g.v(0), g.v(0))
	g.p("\tVADDPS %s, %s, %s", g.v(3), g.v(2), g.v(2))
	g.p("\tVADDPS %s, %s, %s", g.v(2), g.v(0), g.v(0))
	g.hsum(0, 1)
	g.p("\tVMOVSS X0, ret+24(FP)")
	g.ret()
}

// func axpy(x, y *float32, n int, alpha float32)
func (g *gen) axpy() {
	g.text("axpy", "$0-28")
	g.p("\tMOVQ x+0(FP), SI")
	g.p("\tMOVQ y+8(FP), DI")
	g.p("\tMOVQ n+16(FP), CX")
	g.p("\tVBROADCASTSS alpha+24(FP), %s", g.v(2))
	g.stream("axpy", []string{"SI", "DI"}, func(masked bool) {
		g.load(masked, "(SI)", 0)
		g.load(masked, "(DI)", 1)
		g.p("\tVFMADD231PS %s, %s, %s", g.v(2), g.v(0), g.v(1))
		g.store(masked, 1, "(DI)")
	})
	g.ret()
}

// func add(dst, x *float32, n int)
func (g *gen) add() {
	g.text("add", "$0-24")
	g.p("\tMOVQ dst+0(FP), DI")
	g.p("\tMOVQ x+8(FP), SI")
	g.p("\tMOVQ n+16(FP), CX")
	g.stream("add", []string{"SI", "DI"}, func(masked bool) {
		g.load(masked, "(SI)", 0)
		g.load(masked, "(DI)", 1)
		g.p("\tVADDPS %s, %s, %s", g.v(0), g.v(1), g.v(1))
		g.store(masked, 1, "(DI)")
	})
	g.ret()
}

// func mulScale(dst, x, w *float32, n int, s float32): dst = w * (x * s)
func (g *gen) mulScale() {
	g.text("mulScale", "$0-36")
	g.p("\tMOVQ dst+0(FP), DI")
	g.p("\tMOVQ x+8(FP), SI")
	g.p("\tMOVQ w+16(FP), BX")
	g.p("\tMOVQ n+24(FP), CX")
	g.p("\tVBROADCASTSS s+32(FP), %s", g.v(2))
	g.stream("mulScale", []string{"SI", "DI", "BX"}, func(masked bool) {
		g.load(masked, "(SI)", 0)
		g.load(masked, "(BX)", 1)
		g.p("\tVMULPS %s, %s, %s", g.v(2), g.v(0), g.v(0))
		g.p("\tVMULPS %s, %s, %s", g.v(1), g.v(0), g.v(0))
		g.store(masked, 0, "(DI)")
	})
	g.ret()
}

// func scale(x *float32, n int, s float32): x *= s
func (g *gen) scale() {
	g.text("scale", "$0-20")
	g.p("\tMOVQ x+0(FP), DI")
	g.p("\tMOVQ n+8(FP), CX")
	g.p("\tVBROADCASTSS s+16(FP), %s", g.v(2))
	g.stream("scale", []string{"DI"}, func(masked bool) {
		g.load(masked, "(DI)", 0)
		g.p("\tVMULPS %s, %s, %s", g.v(2), g.v(0), g.v(0))
		g.store(masked, 0, "(DI)")
	})
	g.ret()
}

// func rope(x0, x1, cos, sin *float32, n int):
// x0, x1 = x0*cos - x1*sin, x1*cos + x0*sin
func (g *gen) rope() {
	g.text("rope", "$0-40")
	g.p("\tMOVQ x0+0(FP), DI")
	g.p("\tMOVQ x1+8(FP), SI")
	g.p("\tMOVQ cos+16(FP), BX")
	g.p("\tMOVQ sin+24(FP), R8")
	g.p("\tMOVQ n+32(FP), CX")
	g.stream("rope", []string{"DI", "SI", "BX", "R8"}, func(masked bool) {
		g.load(masked, "(DI)", 0)                               // a
		g.load(masked, "(SI)", 1)                               // b
		g.load(masked, "(BX)", 2)                               // c
		g.load(masked, "(R8)", 3)                               // s
		g.p("\tVMULPS %s, %s, %s", g.v(3), g.v(1), g.v(4))      // b*s
		g.p("\tVMULPS %s, %s, %s", g.v(3), g.v(0), g.v(5))      // a*s
		g.p("\tVFMSUB231PS %s, %s, %s", g.v(2), g.v(0), g.v(4)) // a*c - b*s
		g.p("\tVFMADD231PS %s, %s, %s", g.v(2), g.v(1), g.v(5)) // b*c + a*s
		g.store(masked, 4, "(DI)")
		g.store(masked, 5, "(SI)")
	})
	g.ret()
}

// func max(x *float32, n int) float32; n >= 1
func (g *gen) max() {
	g.text("max", "$0-20")
	g.p("\tMOVQ x+0(FP), SI")
	g.p("\tMOVQ n+8(FP), CX")
	g.p("\tVBROADCASTSS (SI), %s", g.v(0))
	g.p("\tVMOVUPS %s, %s", g.v(0), g.v(1))
	g.p("max2:")
	g.p("\tCMPQ CX, $%d", 2*g.w)
	g.p("\tJB max1")
	g.p("\tVMAXPS (SI), %s, %s", g.v(0), g.v(0))
	g.p("\tVMAXPS %d(SI), %s, %s", g.vb(), g.v(1), g.v(1))
	g.p("\tADDQ $%d, SI", 2*g.vb())
	g.p("\tSUBQ $%d, CX", 2*g.w)
	g.p("\tJMP max2")
	g.p("max1:")
	g.p("\tVMAXPS %s, %s, %s", g.v(1), g.v(0), g.v(0))
	g.p("\tCMPQ CX, $%d", g.w)
	g.p("\tJB maxr")
	g.p("\tVMAXPS (SI), %s, %s", g.v(0), g.v(0))
	g.p("\tADDQ $%d, SI", g.vb())
	g.p("\tSUBQ $%d, CX", g.w)
	g.p("maxr:")
	if g.is512() {
		g.p("\tVEXTRACTF64X4 $1, Z0, Y1")
		g.p("\tVMAXPS Y1, Y0, Y0")
	}
	g.p("\tVEXTRACTF128 $1, Y0, X1")
	g.p("\tVMAXPS X1, X0, X0")
	g.p("\tVPERMILPS $0x4e, X0, X1")
	g.p("\tVMAXPS X1, X0, X0")
	g.p("\tVPERMILPS $0xb1, X0, X1")
	g.p("\tVMAXSS X1, X0, X0")
	// The tail is scalar, after the reduction: masked-out lanes must not win.
	g.p("maxs:")
	g.p("\tTESTQ CX, CX")
	g.p("\tJZ maxd")
	g.p("\tVMAXSS (SI), X0, X0")
	g.p("\tADDQ $4, SI")
	g.p("\tDECQ CX")
	g.p("\tJMP maxs")
	g.p("maxd:")
	g.p("\tVMOVSS X0, ret+16(FP)")
	g.ret()
}

// expRegs names the registers of one exp chain: x in place, the rest scratch.
type expRegs struct{ x, n, p, r2, t int }

// expConst is where an exp constant lives: a register when preloaded
// (AVX-512 has room for all of them), else a 64-byte vector in memory.
func (g *gen) expConst(name string) string {
	if g.is512() {
		i := strings.Index(" hi lo log2e c1 c2 p0 p1 p2 p3 p4 p5 one bias ", " "+name+" ")
		return g.v(16 + strings.Count(" hi lo log2e c1 c2 p0 p1 p2 p3 p4 p5 one bias "[:i], " "))
	}
	return "exp_" + name + "<>(SB)"
}

// loadExpConsts preloads the exp constants into Z16..Z28 (AVX-512 only).
func (g *gen) loadExpConsts() {
	if !g.is512() {
		return
	}
	for _, name := range strings.Fields("hi lo log2e c1 c2 p0 p1 p2 p3 p4 p5 one bias") {
		g.p("\tVMOVUPS exp_%s<>(SB), %s", name, g.expConst(name))
	}
}

// exp computes exp(x) in place for each chain, interleaving the chains so
// their latencies overlap. Cephes expf: x = n·ln2 + r, |r| ≤ ln2/2, e^r by a
// polynomial, 2^n via the exponent bits. Inputs are clamped so 2^n stays a
// normal float; NaN survives (it is the second source of min/max).
func (g *gen) exp(rs ...expRegs) {
	c := g.expConst
	each := func(f func(X, N, P, R2, T string)) {
		for _, r := range rs {
			f(g.v(r.x), g.v(r.n), g.v(r.p), g.v(r.r2), g.v(r.t))
		}
	}
	each(func(X, N, P, R2, T string) {
		if g.is512() {
			g.p("\tVMINPS %s, %s, %s", X, c("hi"), X)
			g.p("\tVMAXPS %s, %s, %s", X, c("lo"), X)
		} else {
			g.p("\tVMOVUPS %s, %s", c("hi"), T)
			g.p("\tVMINPS %s, %s, %s", X, T, X)
			g.p("\tVMOVUPS %s, %s", c("lo"), T)
			g.p("\tVMAXPS %s, %s, %s", X, T, X)
		}
	})
	each(func(X, N, P, R2, T string) { g.p("\tVMULPS %s, %s, %s", c("log2e"), X, N) })
	each(func(X, N, P, R2, T string) {
		if g.is512() {
			g.p("\tVRNDSCALEPS $0, %s, %s", N, N)
		} else {
			g.p("\tVROUNDPS $0, %s, %s", N, N)
		}
	})
	each(func(X, N, P, R2, T string) { g.p("\tVFNMADD231PS %s, %s, %s", c("c1"), N, X) })
	each(func(X, N, P, R2, T string) { g.p("\tVFNMADD231PS %s, %s, %s", c("c2"), N, X) })
	each(func(X, N, P, R2, T string) { g.p("\tVMOVUPS %s, %s", c("p0"), P) })
	for i := 1; i <= 5; i++ {
		each(func(X, N, P, R2, T string) {
			g.p("\tVFMADD213PS %s, %s, %s", c(fmt.Sprintf("p%d", i)), X, P)
		})
	}
	each(func(X, N, P, R2, T string) { g.p("\tVMULPS %s, %s, %s", X, X, R2) })
	each(func(X, N, P, R2, T string) { g.p("\tVFMADD213PS %s, %s, %s", X, R2, P) }) // p·r² + r
	each(func(X, N, P, R2, T string) { g.p("\tVADDPS %s, %s, %s", c("one"), P, P) })
	each(func(X, N, P, R2, T string) { g.p("\tVCVTPS2DQ %s, %s", N, N) })
	each(func(X, N, P, R2, T string) { g.p("\tVPADDD %s, %s, %s", c("bias"), N, N) })
	each(func(X, N, P, R2, T string) { g.p("\tVPSLLD $23, %s, %s", N, N) })
	each(func(X, N, P, R2, T string) { g.p("\tVMULPS %s, %s, %s", N, P, X) })
}

// unrolled2 emits a loop doing two vectors per iteration while CX ≥ 2w;
// the single-vector stream that follows finishes the rest.
func (g *gen) unrolled2(label string, adv []string, body func()) {
	g.p("%s_loop2:", label)
	g.p("\tCMPQ CX, $%d", 2*g.w)
	g.p("\tJB %s_loop", label)
	body()
	for _, r := range adv {
		g.p("\tADDQ $%d, %s", 2*g.vb(), r)
	}
	g.p("\tSUBQ $%d, CX", 2*g.w)
	g.p("\tJMP %s_loop2", label)
}

// func expSum(x *float32, n int, mx float32) float32: x = exp(x - mx), returns Σx.
func (g *gen) expSum() {
	g.text("expSum", "$0-28")
	g.p("\tMOVQ x+0(FP), DI")
	g.p("\tMOVQ n+8(FP), CX")
	g.loadExpConsts()
	g.p("\tVBROADCASTSS mx+16(FP), %s", g.v(8))
	g.p("\tVXORPS %s, %s, %s", g.v(9), g.v(9), g.v(9))
	g.p("\tVXORPS %s, %s, %s", g.v(7), g.v(7), g.v(7))
	g.unrolled2("expSum", []string{"DI"}, func() {
		g.p("\tVMOVUPS (DI), %s", g.v(0))
		g.p("\tVMOVUPS %d(DI), %s", g.vb(), g.v(10))
		g.p("\tVSUBPS %s, %s, %s", g.v(8), g.v(0), g.v(0))
		g.p("\tVSUBPS %s, %s, %s", g.v(8), g.v(10), g.v(10))
		g.exp(expRegs{0, 1, 2, 3, 4}, expRegs{10, 11, 12, 13, 14})
		g.p("\tVADDPS %s, %s, %s", g.v(0), g.v(9), g.v(9))
		g.p("\tVADDPS %s, %s, %s", g.v(10), g.v(7), g.v(7))
		g.p("\tVMOVUPS %s, (DI)", g.v(0))
		g.p("\tVMOVUPS %s, %d(DI)", g.v(10), g.vb())
	})
	g.stream("expSum", []string{"DI"}, func(masked bool) {
		g.load(masked, "(DI)", 0)
		g.p("\tVSUBPS %s, %s, %s", g.v(8), g.v(0), g.v(0))
		g.exp(expRegs{0, 1, 2, 3, 4})
		if masked {
			if g.is512() {
				g.p("\tVMOVUPS.Z %s, K1, %s", g.v(0), g.v(0))
			} else {
				g.p("\tVANDPS Y15, Y0, Y0")
			}
		}
		g.p("\tVADDPS %s, %s, %s", g.v(0), g.v(9), g.v(9))
		g.store(masked, 0, "(DI)")
	})
	g.p("\tVADDPS %s, %s, %s", g.v(7), g.v(9), g.v(0))
	g.hsum(0, 1)
	g.p("\tVMOVSS X0, ret+24(FP)")
	g.ret()
}

// func siluMul(gate, up *float32, n int): g = g / (1 + exp(-g)) * u
func (g *gen) siluMul() {
	g.text("siluMul", "$0-24")
	g.p("\tMOVQ gate+0(FP), DI")
	g.p("\tMOVQ up+8(FP), SI")
	g.p("\tMOVQ n+16(FP), CX")
	g.loadExpConsts()
	g.p("\tVXORPS %s, %s, %s", g.v(8), g.v(8), g.v(8))
	g.unrolled2("siluMul", []string{"DI", "SI"}, func() {
		g.p("\tVMOVUPS (DI), %s", g.v(5))
		g.p("\tVMOVUPS %d(DI), %s", g.vb(), g.v(7))
		g.p("\tVSUBPS %s, %s, %s", g.v(5), g.v(8), g.v(0)) // -g
		g.p("\tVSUBPS %s, %s, %s", g.v(7), g.v(8), g.v(10))
		g.exp(expRegs{0, 1, 2, 3, 4}, expRegs{10, 11, 12, 13, 14})
		g.p("\tVADDPS exp_one<>(SB), %s, %s", g.v(0), g.v(0))
		g.p("\tVADDPS exp_one<>(SB), %s, %s", g.v(10), g.v(10))
		g.p("\tVDIVPS %s, %s, %s", g.v(0), g.v(5), g.v(5))
		g.p("\tVDIVPS %s, %s, %s", g.v(10), g.v(7), g.v(7))
		g.p("\tVMULPS (SI), %s, %s", g.v(5), g.v(5))
		g.p("\tVMULPS %d(SI), %s, %s", g.vb(), g.v(7), g.v(7))
		g.p("\tVMOVUPS %s, (DI)", g.v(5))
		g.p("\tVMOVUPS %s, %d(DI)", g.v(7), g.vb())
	})
	g.stream("siluMul", []string{"DI", "SI"}, func(masked bool) {
		g.load(masked, "(DI)", 5)
		g.load(masked, "(SI)", 6)
		g.p("\tVSUBPS %s, %s, %s", g.v(5), g.v(8), g.v(0)) // -g
		g.exp(expRegs{0, 1, 2, 3, 4})
		g.p("\tVADDPS exp_one<>(SB), %s, %s", g.v(0), g.v(0))
		g.p("\tVDIVPS %s, %s, %s", g.v(0), g.v(5), g.v(5))
		g.p("\tVMULPS %s, %s, %s", g.v(6), g.v(5), g.v(5))
		g.store(masked, 5, "(DI)")
	})
	g.ret()
}

// GEMM micro-kernels: out[i*nr+j] = Σ_k x[i*ldx+k]·w[j*ldw+k] for a tile of
// mr rows of x and nr rows of w, with one vector accumulator per output and a
// horizontal sum at the end. ldx, ldw are in elements.
//
// Register use: accumulators from accBase up, x rows in xr.., w rows in wr...
type tileShape struct {
	name     string
	mr, nr   int
	xInReg   bool // load all mr x vectors, then one w at a time (else the reverse)
	accBase  int
	ldx, ldw bool // whether the rows need a stride argument
	bf16     bool // w is bf16 (uint16): widened on load; k must be a multiple of w lanes (no tail)
}

func (g *gen) tile(t tileShape) {
	// Arguments per shape: tile (dst *float32, ldd, acc int, x *float32,
	// ldx int, w *float32, ldw, k int); tileM1 drops ldd and ldx; tileN1 drops ldw.
	var frame string
	switch {
	case t.mr > 1 && t.nr > 1:
		frame = "$0-64"
		g.text(t.name, frame)
		g.p("\tMOVQ ldd+8(FP), R13")
		g.p("\tMOVQ x+24(FP), SI")
		g.p("\tMOVQ ldx+32(FP), DX")
		g.p("\tMOVQ w+40(FP), DI")
		g.p("\tMOVQ ldw+48(FP), R8")
		g.p("\tMOVQ k+56(FP), CX")
	case t.mr == 1:
		frame = "$0-48"
		g.text(t.name, frame)
		g.p("\tMOVQ x+16(FP), SI")
		g.p("\tMOVQ w+24(FP), DI")
		g.p("\tMOVQ ldw+32(FP), R8")
		g.p("\tMOVQ k+40(FP), CX")
	default:
		frame = "$0-56"
		g.text(t.name, frame)
		g.p("\tMOVQ ldd+8(FP), R13")
		g.p("\tMOVQ x+24(FP), SI")
		g.p("\tMOVQ ldx+32(FP), DX")
		g.p("\tMOVQ w+40(FP), DI")
		g.p("\tMOVQ k+48(FP), CX")
	}
	g.p("\tMOVQ dst+0(FP), R12")
	if t.mr > 1 {
		g.p("\tSHLQ $2, R13")
	}
	if t.mr > 1 {
		g.p("\tSHLQ $2, DX")
		g.p("\tLEAQ (SI)(DX*2), BX") // x row 2
	}
	if t.nr > 1 {
		if t.bf16 {
			g.p("\tSHLQ $1, R8")
		} else {
			g.p("\tSHLQ $2, R8")
		}
		g.p("\tLEAQ (DI)(R8*2), R9")  // w row 2
		g.p("\tLEAQ (R9)(R8*2), R10") // w row 4
	}
	// GEMV rows are short streams (k·2 or k·4 bytes) that the hardware
	// prefetcher barely ramps up on: touch the same columns of the next
	// tile's rows (nr rows on; DX = nr rows, BX = nr+1 rows, in bytes).
	// Xeon, 135M-shape f32 decode, alternating runs (medians of 3): 23.3 →
	// 25.1 tok/s at 1 thread, 43.8 → 46.5 at 2 (once measured to add only
	// traffic at two threads; PREFETCHT1 here gained less).
	prefetch := t.mr == 1
	if prefetch {
		g.p("\tIMUL3Q $%d, R8, DX", t.nr)
		g.p("\tLEAQ (DX)(R8*1), BX")
	}
	// Row addresses: x rows 0..3 = SI, SI+DX, BX, BX+DX; w rows 0..5 = DI,
	// DI+R8, R9, R9+R8, R10, R10+R8.
	xaddr := func(i int) string {
		return [...]string{"(SI)", "(SI)(DX*1)", "(BX)", "(BX)(DX*1)"}[i]
	}
	waddr := func(j int) string {
		return [...]string{"(DI)", "(DI)(R8*1)", "(R9)", "(R9)(R8*1)", "(R10)", "(R10)(R8*1)"}[j]
	}
	xptrs, wptrs := []string{"SI"}, []string{"DI"}
	if t.mr > 2 {
		xptrs = append(xptrs, "BX")
	}
	if t.nr > 2 {
		wptrs = append(wptrs, "R9")
	}
	if t.nr > 4 {
		wptrs = append(wptrs, "R10")
	}
	// loadW loads w row j's next vector into register r, widening bf16.
	loadW := func(masked bool, j, r int) {
		if !t.bf16 {
			g.load(masked, waddr(j), r)
			return
		}
		g.p("\tVPMOVZXWD %s, %s", waddr(j), g.v(r))
		g.p("\tVPSLLD $16, %s, %s", g.v(r), g.v(r))
	}
	acc := func(i, j int) int { return t.accBase + i*t.nr + j }
	for i := 0; i < t.mr; i++ {
		for j := 0; j < t.nr; j++ {
			a := g.v(acc(i, j))
			g.p("\tVXORPS %s, %s, %s", a, a, a)
		}
	}
	lbl := t.name
	step := func(masked bool) {
		// AVX2 masked tiles run short of registers: the mask is reloaded into
		// the x register before each masked x load (VMASKMOVPS mem, Yx, Yx).
		reloadMask := masked && !g.is512()
		if t.xInReg {
			for i := 0; i < t.mr; i++ {
				xr := 0 + i
				if reloadMask {
					g.p("\tVMOVUPS (R11), %s", g.v(xr))
					g.p("\tVMASKMOVPS %s, %s, %s", xaddr(i), g.v(xr), g.v(xr))
				} else {
					g.load(masked, xaddr(i), xr)
				}
			}
			for j := 0; j < t.nr; j++ {
				wr := t.mr + j%2
				if reloadMask {
					g.p("\tVMOVUPS (R11), %s", g.v(wr))
					g.p("\tVMASKMOVPS %s, %s, %s", waddr(j), g.v(wr), g.v(wr))
				} else {
					loadW(masked, j, wr)
				}
				for i := 0; i < t.mr; i++ {
					g.p("\tVFMADD231PS %s, %s, %s", g.v(wr), g.v(i), g.v(acc(i, j)))
				}
			}
		} else {
			for j := 0; j < t.nr; j++ {
				if reloadMask {
					g.p("\tVMOVUPS (R11), %s", g.v(j))
					g.p("\tVMASKMOVPS %s, %s, %s", waddr(j), g.v(j), g.v(j))
				} else {
					loadW(masked, j, j)
				}
			}
			for i := 0; i < t.mr; i++ {
				xr := t.nr
				if reloadMask {
					g.p("\tVMOVUPS (R11), %s", g.v(xr))
					g.p("\tVMASKMOVPS %s, %s, %s", xaddr(i), g.v(xr), g.v(xr))
				} else {
					g.load(masked, xaddr(i), xr)
				}
				for j := 0; j < t.nr; j++ {
					g.p("\tVFMADD231PS %s, %s, %s", g.v(j), g.v(xr), g.v(acc(i, j)))
				}
			}
		}
	}
	g.p("%s_loop:", lbl)
	g.p("\tCMPQ CX, $%d", g.w)
	g.p("\tJB %s_tail", lbl)
	if prefetch {
		for _, a := range []string{"(DI)(DX*1)", "(DI)(BX*1)", "(R9)(DX*1)", "(R9)(BX*1)", "(R10)(DX*1)", "(R10)(BX*1)"}[:t.nr] {
			g.p("\tPREFETCHT0 %s", a)
		}
	}
	step(false)
	for _, r := range xptrs {
		g.p("\tADDQ $%d, %s", g.vb(), r)
	}
	wstep := g.vb()
	if t.bf16 {
		wstep /= 2
	}
	for _, r := range wptrs {
		g.p("\tADDQ $%d, %s", wstep, r)
	}
	g.p("\tSUBQ $%d, CX", g.w)
	g.p("\tJMP %s_loop", lbl)
	g.p("%s_tail:", lbl)
	if t.bf16 {
		g.p("\tJMP %s_sum", lbl) // the caller keeps k a multiple of the vector width
	}
	g.p("\tTESTQ CX, CX")
	g.p("\tJZ %s_sum", lbl)
	if g.is512() {
		g.setMask()
	} else {
		g.p("\tMOVQ $8, AX")
		g.p("\tSUBQ CX, AX")
		g.p("\tLEAQ masktab<>(SB), R11")
		g.p("\tLEAQ (R11)(AX*4), R11")
	}
	step(true)
	g.p("%s_sum:", lbl)
	// Sum each accumulator into dst[i*ldd+j], storing or adding per acc.
	if t.mr == 1 {
		g.p("\tMOVQ acc+8(FP), AX")
	} else {
		g.p("\tMOVQ acc+16(FP), AX")
	}
	g.p("\tTESTQ AX, AX")
	g.p("\tJNZ %s_add", lbl)
	for _, add := range []bool{false, true} {
		if add {
			g.p("%s_add:", lbl)
		}
		g.p("\tMOVQ R12, R11")
		if g.is512() && t.mr == 4 && t.nr == 6 {
			g.sum4x6(acc, add)
			continue
		}
		for i := 0; i < t.mr; i++ {
			for j := 0; j < t.nr; j++ {
				g.hsumTo(acc(i, j), fmt.Sprintf("%d(R11)", 4*j), add)
			}
			if i < t.mr-1 {
				g.p("\tADDQ R13, R11")
			}
		}
		g.ret()
	}
}

// reduce4 sums four zmm accumulators into X1 = [Σa, Σb, Σc, Σd] with
// cross-lane shuffles (18 ops instead of 32 for four separate reductions).
// Z0..Z3 are scratch; Z6 must hold the lane index table permidx.
func (g *gen) reduce4(a, b, c, d int) {
	g.p("\tVSHUFF64X2 $0x44, Z%d, Z%d, Z0", b, a) // [a0 a1 b0 b1] (128-bit blocks)
	g.p("\tVSHUFF64X2 $0xee, Z%d, Z%d, Z1", b, a) // [a2 a3 b2 b3]
	g.p("\tVADDPS Z1, Z0, Z0")
	g.p("\tVSHUFF64X2 $0x44, Z%d, Z%d, Z2", d, c)
	g.p("\tVSHUFF64X2 $0xee, Z%d, Z%d, Z3", d, c)
	g.p("\tVADDPS Z3, Z2, Z2")
	g.p("\tVSHUFF32X4 $0x88, Z2, Z0, Z1") // [a b c d] halves
	g.p("\tVSHUFF32X4 $0xdd, Z2, Z0, Z3")
	g.p("\tVADDPS Z3, Z1, Z1") // block i: 4 partial sums of accumulator i
	g.p("\tVPERMILPS $0x4e, Z1, Z3")
	g.p("\tVADDPS Z3, Z1, Z1")
	g.p("\tVPERMILPS $0xb1, Z1, Z3")
	g.p("\tVADDPS Z3, Z1, Z1")  // every lane of block i: Σ accumulator i
	g.p("\tVPERMPS Z1, Z6, Z1") // lanes 0, 4, 8, 12 to the bottom
}

// sum4x6 stores the 4×6 tile at R11 (row stride R13): columns 0..3 of each
// row as one vector, columns 4..5 of two rows at a time.
func (g *gen) sum4x6(acc func(i, j int) int, add bool) {
	g.p("\tVMOVUPS permidx<>(SB), Z6")
	for i := 0; i < 4; i++ {
		g.reduce4(acc(i, 0), acc(i, 1), acc(i, 2), acc(i, 3))
		if add {
			g.p("\tVADDPS (R11), X1, X1")
		}
		g.p("\tVMOVUPS X1, (R11)")
		if i%2 == 1 {
			g.reduce4(acc(i-1, 4), acc(i-1, 5), acc(i, 4), acc(i, 5))
			// R11 is row i; row i-1 is 16(R11) minus R13.
			g.p("\tMOVQ R11, AX")
			g.p("\tSUBQ R13, AX")
			if add {
				g.p("\tVMOVSD 16(AX), X2")
				g.p("\tVMOVHPS 16(R11), X2, X2")
				g.p("\tVADDPS X2, X1, X1")
			}
			g.p("\tVMOVSD X1, 16(AX)")
			g.p("\tVMOVHPS X1, 16(R11)")
		}
		if i < 3 {
			g.p("\tADDQ R13, R11")
		}
	}
	g.ret()
}

func (g *gen) tiles() {
	mr, nr := g.mr, g.nr
	if g.is512() {
		// 4×6: 24 accumulators Z8..Z31, x in Z0..Z3, w in Z4/Z5.
		g.tile(tileShape{name: "tile", mr: mr, nr: nr, xInReg: true, accBase: 8})
		g.tile(tileShape{name: "tileM1", mr: 1, nr: nr, xInReg: false, accBase: 8})
		g.tile(tileShape{name: "tileN1", mr: mr, nr: 1, xInReg: true, accBase: 8})
		g.tile(tileShape{name: "tileBF16", mr: mr, nr: nr, xInReg: true, accBase: 8, bf16: true})
		g.tile(tileShape{name: "tileM1BF16", mr: 1, nr: nr, xInReg: false, accBase: 8, bf16: true})
		return
	}
	// 4×3: 12 accumulators Y4..Y15, w in Y0..Y2, x in Y3.
	g.tile(tileShape{name: "tile", mr: mr, nr: nr, xInReg: false, accBase: 4})
	g.tile(tileShape{name: "tileM1", mr: 1, nr: nr, xInReg: false, accBase: 4})
	g.tile(tileShape{name: "tileN1", mr: mr, nr: 1, xInReg: true, accBase: 6})
	g.tile(tileShape{name: "tileBF16", mr: mr, nr: nr, xInReg: false, accBase: 4, bf16: true})
	g.tile(tileShape{name: "tileM1BF16", mr: 1, nr: nr, xInReg: false, accBase: 4, bf16: true})
}

// fmaLoop runs n iterations of independent FMA chains (16 on AVX-512, 12 on
// AVX2, enough to cover the FMA latency on two ports): a peak-FLOP probe.
// func fmaLoop(n int)
// widen converts n bf16 values (n a multiple of the vector width) to float32.
// func widen(dst *float32, src *uint16, n int)
func (g *gen) widen() {
	g.text("widen", "$0-24")
	g.p("\tMOVQ dst+0(FP), DI")
	g.p("\tMOVQ src+8(FP), SI")
	g.p("\tMOVQ n+16(FP), CX")
	g.p("widen_loop2:")
	g.p("\tCMPQ CX, $%d", 2*g.w)
	g.p("\tJB widen_loop")
	g.p("\tVPMOVZXWD (SI), %s", g.v(0))
	g.p("\tVPMOVZXWD %d(SI), %s", g.vb()/2, g.v(1))
	g.p("\tVPSLLD $16, %s, %s", g.v(0), g.v(0))
	g.p("\tVPSLLD $16, %s, %s", g.v(1), g.v(1))
	g.p("\tVMOVUPS %s, (DI)", g.v(0))
	g.p("\tVMOVUPS %s, %d(DI)", g.v(1), g.vb())
	g.p("\tADDQ $%d, SI", g.vb())
	g.p("\tADDQ $%d, DI", 2*g.vb())
	g.p("\tSUBQ $%d, CX", 2*g.w)
	g.p("\tJMP widen_loop2")
	g.p("widen_loop:")
	g.p("\tCMPQ CX, $%d", g.w)
	g.p("\tJB widen_done")
	g.p("\tVPMOVZXWD (SI), %s", g.v(0))
	g.p("\tVPSLLD $16, %s, %s", g.v(0), g.v(0))
	g.p("\tVMOVUPS %s, (DI)", g.v(0))
	g.p("\tADDQ $%d, SI", g.vb()/2)
	g.p("\tADDQ $%d, DI", g.vb())
	g.p("\tSUBQ $%d, CX", g.w)
	g.p("\tJMP widen_loop")
	g.p("widen_done:")
	g.ret()
}

func (g *gen) fmaLoop() {
	g.text("fmaLoop", "$0-8")
	g.p("\tMOVQ n+0(FP), CX")
	chains := 12
	if g.is512() {
		chains = 16
	}
	g.p("\tVXORPS %s, %s, %s", g.v(0), g.v(0), g.v(0))
	g.p("\tVXORPS %s, %s, %s", g.v(1), g.v(1), g.v(1))
	for i := 0; i < chains; i++ {
		g.p("\tVXORPS %s, %s, %s", g.v(2+i), g.v(2+i), g.v(2+i))
	}
	g.p("fma_loop:")
	g.p("\tTESTQ CX, CX")
	g.p("\tJZ fma_done")
	for i := 0; i < chains; i++ {
		g.p("\tVFMADD231PS %s, %s, %s", g.v(0), g.v(1), g.v(2+i))
	}
	g.p("\tDECQ CX")
	g.p("\tJMP fma_loop")
	g.p("fma_done:")
	g.ret()
}

// gemmP is the packed-GEMM micro-kernel, pmr rows × pnr = nv vectors: for
// each of tiles pmr-row groups of x (row stride ldx, the next group at
// x+pmr·ldx) it computes the tile dst[i*ldd+j] (+)= Σ_p x[i*ldx+p]·b[p*pnr+j]
// over p < k, b being a k×pnr panel of w packed k-major (packB). Each x
// element is broadcast and FMA'd into nv accumulators: no horizontal sums.
// AVX-512: 8×48 (24 accumulators Z8..Z31, w in Z0..Z2, x in Z3..Z7);
// AVX2: 4×24 (12 accumulators Y4..Y15, w in Y0..Y2, x in Y3). k ≥ 1.
// func gemmP(dst *float32, ldd, acc int, x *float32, ldx int, b *float32, k, tiles int)
func (g *gen) gemmP() {
	mr, nv, abase, ntmp := 8, 3, 8, 5
	if !g.is512() {
		mr, nv, abase, ntmp = 4, 3, 4, 1
	}
	rowB := nv * g.vb() // bytes of one packed k step
	g.text("gemmP", "$0-64")
	g.p("\tMOVQ dst+0(FP), R12")
	g.p("\tMOVQ ldd+8(FP), R13")
	g.p("\tSHLQ $2, R13")
	g.p("\tMOVQ x+24(FP), SI")
	g.p("\tMOVQ ldx+32(FP), DX")
	g.p("\tSHLQ $2, DX")
	g.p("\tMOVQ b+40(FP), DI")
	g.p("\tMOVQ tiles+56(FP), R11")
	// Row i of the group is at AX + i·ldx: one moving pointer, with 3, 5 and
	// 7·ldx in R9, R10, R14. CX = where the k-pairs of the panel end.
	g.p("\tLEAQ (DX)(DX*2), R9")
	g.p("\tLEAQ (DX)(DX*4), R10")
	g.p("\tLEAQ (R9)(DX*4), R14")
	g.p("\tMOVQ k+48(FP), CX")
	g.p("\tSHRQ $1, CX")
	g.p("\tIMUL3Q $%d, CX, CX", 2*rowB)
	g.p("\tADDQ DI, CX")
	acc := func(i, j int) string { return g.v(abase + nv*i + j) }
	rowOff := [...]string{"(AX)", "(AX)(DX*1)", "(AX)(DX*2)", "(AX)(R9*1)", "(AX)(DX*4)", "(AX)(R10*1)", "(AX)(R9*2)", "(AX)(R14*1)"}
	step := func(u int) { // k step u of the pair (0 or 1)
		for j := 0; j < nv; j++ {
			g.p("\tVMOVUPS %d(R8), %s", rowB*u+g.vb()*j, g.v(j))
		}
		for i := 0; i < mr; i++ {
			t := g.v(nv + i%ntmp)
			g.p("\tVBROADCASTSS %d%s, %s", 4*u, rowOff[i], t)
			for j := 0; j < nv; j++ {
				g.p("\tVFMADD231PS %s, %s, %s", g.v(j), t, acc(i, j))
			}
		}
	}
	g.p("gp_tile:")
	for i := 0; i < mr; i++ {
		for j := 0; j < nv; j++ {
			if g.is512() {
				g.p("\tVPXORD %s, %s, %s", acc(i, j), acc(i, j), acc(i, j))
			} else {
				g.p("\tVXORPS %s, %s, %s", acc(i, j), acc(i, j), acc(i, j))
			}
		}
	}
	g.p("\tMOVQ SI, AX")
	g.p("\tMOVQ DI, R8")
	g.p("\tCMPQ R8, CX")
	g.p("\tJEQ gp_odd")
	g.p("gp_k:")
	step(0)
	step(1)
	g.p("\tADDQ $8, AX")
	g.p("\tADDQ $%d, R8", 2*rowB)
	g.p("\tCMPQ R8, CX")
	g.p("\tJNE gp_k")
	g.p("gp_odd:")
	g.p("\tMOVQ k+48(FP), BX")
	g.p("\tTESTQ $1, BX")
	g.p("\tJZ gp_out")
	step(0)
	g.p("gp_out:")
	g.p("\tMOVQ R12, BX")
	g.p("\tCMPQ acc+16(FP), $0")
	g.p("\tJEQ gp_store")
	for i := 0; i < mr; i++ {
		for j := 0; j < nv; j++ {
			g.p("\tVADDPS %d(BX), %s, %s", g.vb()*j, acc(i, j), acc(i, j))
		}
		g.p("\tADDQ R13, BX")
	}
	g.p("\tMOVQ R12, BX")
	g.p("gp_store:")
	for i := 0; i < mr; i++ {
		for j := 0; j < nv; j++ {
			g.p("\tVMOVUPS %s, %d(BX)", acc(i, j), g.vb()*j)
		}
		g.p("\tADDQ R13, BX")
	}
	g.p("\tMOVQ BX, R12") // next group of dst rows
	g.p("\tLEAQ (SI)(DX*%d), SI", mr)
	g.p("\tDECQ R11")
	g.p("\tJNZ gp_tile")
	g.ret()
}

// packB2 is packB for AVX2: 24 rows of w k-major into dst[p*24+j], k a
// positive multiple of 8, by 8×8 in-register transposes.
// func packB(dst, w *float32, ldw, k int)
func (g *gen) packB2() {
	g.text("packB", "$0-32")
	g.p("\tMOVQ dst+0(FP), DI")
	g.p("\tMOVQ w+8(FP), SI")
	g.p("\tMOVQ ldw+16(FP), DX")
	g.p("\tSHLQ $2, DX")
	g.p("\tMOVQ k+24(FP), CX")
	g.p("\tSHRQ $3, CX")
	g.p("\tMOVQ DX, R9")
	g.p("\tSHLQ $3, R9") // 8 rows
	y := func(i int) string { return fmt.Sprintf("Y%d", i) }
	g.p("packB_loop:")
	for G := 0; G < 3; G++ {
		switch G {
		case 0:
			g.p("\tMOVQ SI, R8")
		case 1:
			g.p("\tLEAQ (SI)(R9*1), R8")
		case 2:
			g.p("\tLEAQ (SI)(R9*2), R8")
		}
		for j := 0; j < 8; j++ {
			g.p("\tVMOVUPS (R8), %s", y(j))
			if j < 7 {
				g.p("\tADDQ DX, R8")
			}
		}
		t := func(i int) int { return 8 + i }
		for i := 0; i < 4; i++ {
			g.p("\tVUNPCKLPS %s, %s, %s", y(2*i+1), y(2*i), y(t(2*i)))
			g.p("\tVUNPCKHPS %s, %s, %s", y(2*i+1), y(2*i), y(t(2*i+1)))
		}
		u := func(gr, q int) int { return 4*gr + q }
		for gr := 0; gr < 2; gr++ {
			g.p("\tVUNPCKLPD %s, %s, %s", y(t(4*gr+2)), y(t(4*gr)), y(u(gr, 0)))
			g.p("\tVUNPCKHPD %s, %s, %s", y(t(4*gr+2)), y(t(4*gr)), y(u(gr, 1)))
			g.p("\tVUNPCKLPD %s, %s, %s", y(t(4*gr+3)), y(t(4*gr+1)), y(u(gr, 2)))
			g.p("\tVUNPCKHPD %s, %s, %s", y(t(4*gr+3)), y(t(4*gr+1)), y(u(gr, 3)))
		}
		for q := 0; q < 4; q++ {
			for L := 0; L < 2; L++ {
				imm := "0x20"
				if L == 1 {
					imm = "0x31"
				}
				g.p("\tVPERM2F128 $%s, %s, %s, Y8", imm, y(u(1, q)), y(u(0, q)))
				g.p("\tVMOVUPS Y8, %d(DI)", (4*L+q)*96+G*32)
			}
		}
	}
	g.p("\tADDQ $32, SI")
	g.p("\tADDQ $768, DI")
	g.p("\tDECQ CX")
	g.p("\tJNZ packB_loop")
	g.ret()
}

// packB48 packs 48 rows of w (row stride ldw) k-major into dst[p*48+j] for
// p < k, k a positive multiple of 16: each 16×16 block is loaded as 16 rows
// and transposed in registers (32-bit, 64-bit, then two 128-bit lane
// shuffle stages), so there are no gathers.
// func packB48(dst, w *float32, ldw, k int)
func (g *gen) packB48() {
	g.text("packB", "$0-32")
	g.p("\tMOVQ dst+0(FP), DI")
	g.p("\tMOVQ w+8(FP), SI")
	g.p("\tMOVQ ldw+16(FP), DX")
	g.p("\tSHLQ $2, DX")
	g.p("\tMOVQ k+24(FP), CX")
	g.p("\tSHRQ $4, CX")
	g.p("\tMOVQ DX, R9")
	g.p("\tSHLQ $4, R9") // 16 rows
	z := func(i int) string { return fmt.Sprintf("Z%d", i) }
	g.p("packB_loop:")
	for G := 0; G < 3; G++ {
		switch G {
		case 0:
			g.p("\tMOVQ SI, R8")
		case 1:
			g.p("\tLEAQ (SI)(R9*1), R8")
		case 2:
			g.p("\tLEAQ (SI)(R9*2), R8")
		}
		for j := 0; j < 16; j++ {
			g.p("\tVMOVUPS (R8), %s", z(j))
			if j < 15 {
				g.p("\tADDQ DX, R8")
			}
		}
		// Stage 1: t[2i], t[2i+1] = interleaved low/high of rows 2i, 2i+1.
		t := func(i int) int { return 16 + i }
		for i := 0; i < 8; i++ {
			g.p("\tVUNPCKLPS %s, %s, %s", z(2*i+1), z(2*i), z(t(2*i)))
			g.p("\tVUNPCKHPS %s, %s, %s", z(2*i+1), z(2*i), z(t(2*i+1)))
		}
		// Stage 2: u(g, q) holds, per 128-bit lane L, column 4L+q of rows 4g..4g+3.
		u := func(gr, q int) int { return 4*gr + q }
		for gr := 0; gr < 4; gr++ {
			g.p("\tVUNPCKLPD %s, %s, %s", z(t(4*gr+2)), z(t(4*gr)), z(u(gr, 0)))
			g.p("\tVUNPCKHPD %s, %s, %s", z(t(4*gr+2)), z(t(4*gr)), z(u(gr, 1)))
			g.p("\tVUNPCKLPD %s, %s, %s", z(t(4*gr+3)), z(t(4*gr+1)), z(u(gr, 2)))
			g.p("\tVUNPCKHPD %s, %s, %s", z(t(4*gr+3)), z(t(4*gr+1)), z(u(gr, 3)))
		}
		// Stages 3 and 4: a 4×4 transpose of 128-bit lanes across the groups.
		for q := 0; q < 4; q++ {
			A, B, C, D := z(u(0, q)), z(u(1, q)), z(u(2, q)), z(u(3, q))
			E, F, Gg, H := z(16+4*q), z(17+4*q), z(18+4*q), z(19+4*q)
			g.p("\tVSHUFF32X4 $0x44, %s, %s, %s", B, A, E)
			g.p("\tVSHUFF32X4 $0xee, %s, %s, %s", B, A, F)
			g.p("\tVSHUFF32X4 $0x44, %s, %s, %s", D, C, Gg)
			g.p("\tVSHUFF32X4 $0xee, %s, %s, %s", D, C, H)
		}
		for q := 0; q < 4; q++ {
			E, F, Gg, H := z(16+4*q), z(17+4*q), z(18+4*q), z(19+4*q)
			for L := 0; L < 4; L++ {
				src1, src2, imm := E, Gg, "0x88"
				if L >= 2 {
					src1, src2 = F, H
				}
				if L%2 == 1 {
					imm = "0xdd"
				}
				col := 4*L + q
				g.p("\tVSHUFF32X4 $%s, %s, %s, Z0", imm, src2, src1)
				g.p("\tVMOVUPS Z0, %d(DI)", col*192+G*64)
			}
		}
	}
	g.p("\tADDQ $64, SI")
	g.p("\tADDQ $3072, DI")
	g.p("\tDECQ CX")
	g.p("\tJNZ packB_loop")
	g.ret()
}

func f32bits(f float32) uint32 { return math.Float32bits(f) }

// iq4Values is qtype.go's IQ4 table (this generator is a program of its own;
// TestQGEMV checks the kernels built from it against the reference).
var iq4Values = [16]int8{-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113}

func (g *gen) consts() {
	vec := func(name string, bits uint32) {
		for i := 0; i < 16; i++ {
			g.p("DATA %s<>+%d(SB)/4, $0x%08x", name, 4*i, bits)
		}
		g.p("GLOBL %s<>(SB), RODATA|NOPTR, $64", name)
	}
	vec("exp_hi", f32bits(88.3762626647949))
	vec("exp_lo", f32bits(-87.33654475))
	vec("exp_log2e", f32bits(1.44269504088896341))
	vec("exp_c1", f32bits(0.693359375))
	vec("exp_c2", f32bits(-2.12194440e-4))
	vec("exp_p0", f32bits(1.9875691500e-4))
	vec("exp_p1", f32bits(1.3981999507e-3))
	vec("exp_p2", f32bits(8.3334519073e-3))
	vec("exp_p3", f32bits(4.1665795894e-2))
	vec("exp_p4", f32bits(1.6666665459e-1))
	vec("exp_p5", f32bits(5.0000001201e-1))
	vec("exp_one", f32bits(1))
	vec("exp_bias", 127)
	vec("q_0f", 0x0f)
	vec("q_30", 0x30)
	vec("q_32", 32)
	vec("q_8", f32bits(8))
	vec("q_8i", 8)
	vec("q_3", 3)
	// IQ4_XS's scale nibbles and bit pairs: lane ib shifts by 4·ib and 2·ib.
	for i := 0; i < 8; i++ {
		g.p("DATA iq4sl<>+%d(SB)/4, $%d", 4*i, 4*i)
		g.p("DATA iq4sh<>+%d(SB)/4, $%d", 4*i, 2*i)
	}
	g.p("GLOBL iq4sl<>(SB), RODATA|NOPTR, $32")
	g.p("GLOBL iq4sh<>(SB), RODATA|NOPTR, $32")
	if !g.is512() { // the constants of the AVX2-only quantized kernels (see main)
		vec("q_10", 0x10)
		// The IQ4 table as int8 in both 16-byte lanes, for VPSHUFB.
		for i := 0; i < 32; i++ {
			g.p("DATA iq4b<>+%d(SB)/1, $%d", i, uint8(iq4Values[i%16]))
		}
		g.p("GLOBL iq4b<>(SB), RODATA|NOPTR, $32")
		vec("q_16", f32bits(16))
		vec("q_16i", 16)
		// Q5 high bits: lane i of group 0 takes bit i of qh<<4, groups 1..3
		// bits 8g+i of qh, each shifted to bit 4.
		for gi, base := range []int{0, 4, 12, 20} {
			for i := 0; i < 8; i++ {
				g.p("DATA q5sh<>+%d(SB)/4, $%d", 32*gi+4*i, base+i)
			}
		}
		g.p("GLOBL q5sh<>(SB), RODATA|NOPTR, $128")
		g.q8Consts()
	}
	// Byte constants of the kernels that put quants together 32 bytes at a
	// time: the AVX2 K-quants, and at both widths Q5_K's (b_0f, b_10).
	for _, c := range []struct {
		name string
		v    uint64
	}{{"b_0f", 0x0f}, {"b_10", 0x10}, {"b_03", 0x03}, {"b_04", 0x04},
		{"b_08", 0x08}, {"b_20", 0x20}, {"b_30", 0x30}} {
		if g.is512() && c.v != 0x0f && c.v != 0x10 {
			continue
		}
		for i := 0; i < 32; i += 8 {
			g.p("DATA %s<>+%d(SB)/8, $0x%016x", c.name, i, c.v*0x0101010101010101)
		}
		g.p("GLOBL %s<>(SB), RODATA|NOPTR, $32", c.name)
	}
	if g.is512() {
		for i := 0; i < 16; i++ {
			g.p("DATA q4lut<>+%d(SB)/4, $0x%08x", 4*i, f32bits(float32(i-8)))
		}
		g.p("GLOBL q4lut<>(SB), RODATA|NOPTR, $64")
		for i := 0; i < 16; i++ {
			g.p("DATA iq4lut<>+%d(SB)/4, $0x%08x", 4*i, f32bits(float32(iq4Values[i])))
			g.p("DATA q4id<>+%d(SB)/4, $0x%08x", 4*i, f32bits(float32(i)))
			g.p("DATA q2id<>+%d(SB)/4, $0x%08x", 4*i, f32bits(float32(i&3)))
			g.p("DATA q3lut<>+%d(SB)/4, $0x%08x", 4*i, f32bits(float32(i&7-4)))
		}
		g.p("GLOBL q4id<>(SB), RODATA|NOPTR, $64")
		g.p("GLOBL q2id<>(SB), RODATA|NOPTR, $64")
		g.p("GLOBL q3lut<>(SB), RODATA|NOPTR, $64")
		g.p("GLOBL iq4lut<>(SB), RODATA|NOPTR, $64")
		for i := 0; i < 32; i++ {
			g.p("DATA q5lut<>+%d(SB)/4, $0x%08x", 4*i, f32bits(float32(i-16)))
		}
		g.p("GLOBL q5lut<>(SB), RODATA|NOPTR, $128")
		for _, c := range []struct {
			name string
			v    uint64
		}{{"q6b_0f", 0x0f}, {"q6b_30", 0x30}, {"q6b_20", 0x20}} {
			for i := 0; i < 64; i += 8 {
				g.p("DATA %s<>+%d(SB)/8, $0x%016x", c.name, i, c.v*0x0101010101010101)
			}
			g.p("GLOBL %s<>(SB), RODATA|NOPTR, $64", c.name)
		}
		// Word shifts of Q6_K's qh: the low 16 words for q1 (<<4) or q3
		// (>>0), the high 16 for q2 (<<2) or q4 (>>2).
		for i := 0; i < 32; i++ {
			l, r := 4, 0
			if i >= 16 {
				l, r = 2, 2
			}
			g.p("DATA q6shl<>+%d(SB)/2, $%d", 2*i, l)
			g.p("DATA q6shr<>+%d(SB)/2, $%d", 2*i, r)
		}
		g.p("GLOBL q6shl<>(SB), RODATA|NOPTR, $64")
		g.p("GLOBL q6shr<>(SB), RODATA|NOPTR, $64")
		for i := 0; i < 16; i++ {
			g.p("DATA permidx<>+%d(SB)/4, $%d", 4*i, 4*(i%4))
		}
		g.p("GLOBL permidx<>(SB), RODATA|NOPTR, $64")
	} else {
		for i := 0; i < 16; i++ {
			v := uint32(0)
			if i < 8 {
				v = 0xffffffff
			}
			g.p("DATA masktab<>+%d(SB)/4, $0x%08x", 4*i, v)
		}
		g.p("GLOBL masktab<>(SB), RODATA|NOPTR, $64")
	}
}

func main() {
	for _, s := range []isa{
		{name: "AVX512", w: 16, r: "Z", mr: 4, nr: 6},
		{name: "AVX2", w: 8, r: "Y", mr: 4, nr: 3},
	} {
		g := &gen{isa: s}
		g.p("// Code generated by gen_asm.go; DO NOT EDIT.")
		g.p("")
		g.p("//go:build amd64 && !purego")
		g.p("")
		g.p("#include \"textflag.h\"")
		g.p("")
		g.consts()
		g.dot()
		g.axpy()
		g.add()
		g.mulScale()
		g.scale()
		g.rope()
		g.max()
		g.expSum()
		g.siluMul()
		g.tiles()
		g.gemmP()
		if g.is512() {
			g.packB48()
		} else {
			g.packB2()
		}
		g.widen()
		g.axpyRows("")
		g.axpyRows("BF16")
		g.axpyRows("F16")
		if !g.is512() {
			g.qgemvs()
			g.dequants()
			g.q8Kernels()
		} else {
			// The fused GEMVs whose code is width-generic, and the
			// legacy types' own 16-lane form; Q2_K, Q3_K and Q5_K use
			// 32-byte constants and stay AVX2.
			g.f16tab = true
			g.qgemvQ8_0()
			g.qgemvQ4_0()
			g.qgemvQ4_K()
			g.qgemvQ6_K()
			g.qgemvQ6_KBW()
			for _, b := range legacyBlocks {
				g.qgemvLegacy512(b)
			}
			g.qgemvIQ4_NL()
			g.f16tab = false
			g.qgemvIQ4_XS()
			g.qgemvQ2_K512()
			g.qgemvQ3_K512()
			g.qgemvQ5_K512()
			g.q8VNNI()
			g.accRows()
		}
		g.qgemvFloats()
		g.fmaLoop()
		file := "kernels_" + strings.ToLower(s.name) + "_amd64.s"
		if err := os.WriteFile(file, []byte(g.b.String()), 0o644); err != nil {
			panic(err)
		}
	}
}

// Fused quantized GEMV kernels: for each of rows weight rows (rb bytes
// apart) of nb blocks, dst[j] = Σ x·w_j with the blocks unpacked in
// registers (never stored). Quants are widened to int32 lanes (VPMOVZXBD /
// VPMOVSXBD from memory), masked and shifted into place, converted to float
// (or, for AVX-512 Q4_0 and Q5_0, looked up as q-offset floats by VPERMPS /
// VPERMI2PS) and multiplied with x; each block's scale multiplies the
// block's partial sum once. Every block prefetches its weights qPrefetch
// bytes ahead. The same code serves both widths: w bytes of quants per group.
// Scale vectors go through a 32-byte stack slot for broadcasts.
//
// func qgemvT(dst, x, xs *float32, w *byte, rb, nb, rows int)

// vand, vor: the integer ops' mnemonic differs between VEX and EVEX.
func (g *gen) vand(a, b, dst int) {
	if g.is512() {
		g.p("\tVPANDD %s, %s, %s", g.v(a), g.v(b), g.v(dst))
	} else {
		g.p("\tVPAND %s, %s, %s", g.v(a), g.v(b), g.v(dst))
	}
}

func (g *gen) vor(a, b, dst int) {
	if g.is512() {
		g.p("\tVPORD %s, %s, %s", g.v(a), g.v(b), g.v(dst))
	} else {
		g.p("\tVPOR %s, %s, %s", g.v(a), g.v(b), g.v(dst))
	}
}

// f16Bcast broadcasts the f16 at mem as float32 into Y<r> (8 lanes, both
// widths: the scale vectors are 8 wide) or, with full, into every lane.
func (g *gen) f16Bcast(mem string, r int, full bool) {
	if full && g.f16tab {
		g.p("\tMOVWLZX %s, R10", mem)
		g.p("\tVBROADCASTSS (R13)(R10*4), %s", g.v(r))
		return
	}
	if full && g.is512() {
		g.p("\tVPBROADCASTW %s, Y%d", mem, r)
		g.p("\tVCVTPH2PS Y%d, Z%d", r, r)
		return
	}
	g.p("\tVPBROADCASTW %s, X%d", mem, r)
	g.p("\tVCVTPH2PS X%d, Y%d", r, r)
}

// hsumY reduces Y<a> (8 lanes) to X<a>'s low lane.
func (g *gen) hsumY(a, tmp int) {
	g.p("\tVEXTRACTF128 $1, Y%d, X%d", a, tmp)
	g.p("\tVADDPS X%d, X%d, X%d", tmp, a, a)
	g.p("\tVPERMILPS $0x4e, X%d, X%d", a, tmp)
	g.p("\tVADDPS X%d, X%d, X%d", tmp, a, a)
	g.p("\tVPERMILPS $0xb1, X%d, X%d", a, tmp)
	g.p("\tVADDSS X%d, X%d, X%d", tmp, a, a)
}

// toY folds a full-width register into its low 8 lanes (AVX-512 only).
func (g *gen) toY(a, tmp int) {
	if g.is512() {
		g.p("\tVEXTRACTF64X4 $1, Z%d, Y%d", a, tmp)
		g.p("\tVADDPS Y%d, Y%d, Y%d", tmp, a, a)
	}
}

// qgemv emits the row and block loops around body (one block at DI, its x
// at SI, its sums of x over 32 at DX) and the final sum (fin: leaves dst[j]
// in X0). blockBytes, blockW: bytes and weights per block; frame: stack
// bytes.
func (g *gen) qgemv(name string, blockBytes, blockW int, frame int, setup, zero, body, fin func()) {
	g.qgemvX(name, blockBytes, blockW, 4*blockW/32, frame, setup, zero, body, fin)
}

// qPrefetch is how far ahead (bytes) the quantized GEMVs prefetch their
// weights, a cache line per 64 bytes of block. Decode streams the weights
// from memory, and the hardware prefetcher alone left the kernels waiting on
// it: Intel Xeon (KVM, 2 vCPUs), 135M-shape Q4_K_M decode at 1 / 2 threads
// 37 / 75 tok/s with none, 72 / 134 at 1 KiB ahead, 86 / 154 at 2 KiB and
// 86–94 / 163–171 at 4 KiB; in-cache speed unchanged. The int8 kernels
// prefetched 512 bytes ahead before (AMD EPYC: 1.2× over none).
//
// The far prefetch goes to L2 (PREFETCHT1) and a near one, qNear ahead,
// into L1: a PREFETCHT0 from memory holds one of the core's few L1 fill
// buffers for a whole memory latency, which capped a core's stream below
// what its L2 can have in flight. Same Xeon, alternating runs (medians of
// 3–4): T0 at 4 KiB → T1 at 4 KiB + T0 at 1 KiB, Q8_0 56 → 67 tok/s at 1
// thread and 119 → 131 at 2, Q4_K_M 63 → 71 and 124 → 126, Q4_0 83 → 93
// and 172 → 176; int8 activations Q8_0 61 → 68 and 119 → 128. T1 alone
// took most of it, T2 the same as T1, NTA halved the speed. Then 6 KiB +
// 1.5 KiB against 4 + 1: Q8_0 +3% / +7% (1 / 2 threads), Q4_K_M +4% / +3%;
// 8 + 2 and 3 + 0.75 were slower.
const (
	qPrefetch = 6144
	qNear     = 1536
)

// qprefetch emits the prefetches for the weight line o bytes past DI.
func (g *gen) qprefetch(o int) {
	g.p("\tPREFETCHT1 %d(DI)", qPrefetch+o)
	g.p("\tPREFETCHT0 %d(DI)", qNear+o)
}

// qgemvX is qgemv with DX advancing xsStep bytes per block (its sums over 16
// take twice qgemv's step).
func (g *gen) qgemvX(name string, blockBytes, blockW, xsStep int, frame int, setup, zero, body, fin func()) {
	g.text(name, fmt.Sprintf("$%d-56", frame))
	g.p("\tMOVQ dst+0(FP), R8")
	g.p("\tMOVQ w+24(FP), R12")
	g.p("\tMOVQ rb+32(FP), R9")
	g.p("\tMOVQ rows+48(FP), R11")
	if g.f16tab {
		g.p("\tLEAQ ·f16tab(SB), R13")
	}
	setup()
	g.p("%s_row:", name)
	g.p("\tMOVQ x+8(FP), SI")
	g.p("\tMOVQ xs+16(FP), DX")
	g.p("\tMOVQ R12, DI")
	g.p("\tMOVQ nb+40(FP), CX")
	zero()
	step := func() {
		start := g.b.Len()
		body()
		g.p("\tADDQ $%d, DI", blockBytes)
		g.p("\tADDQ $%d, SI", 4*blockW)
		// Only bodies that read the sums of x step DX (a scalar add per
		// block on the ports the vector work needs is not free).
		if xsStep > 0 && strings.Contains(g.b.String()[start:], "(DX)") {
			g.p("\tADDQ $%d, DX", xsStep)
		}
	}
	// Blocks smaller than a cache line go u at a time with one prefetch per
	// line's worth of blocks: a prefetch per block asked for each line two
	// to four times (same bits: the blocks are summed in the same order).
	// Xeon, 135M-shape decode, alternating runs: Q8_0 +4–9% at 1 thread
	// (four batches), −2% ± 2 at 2; Q4_0 +4%; Q4_K_M (mostly Q5_0) ±1%.
	if u := qUnroll(blockBytes); u > 1 {
		g.p("\tCMPQ CX, $%d", u)
		g.p("\tJLT %s_blk", name)
		g.p("%s_blku:", name)
		g.qprefetch(0)
		for i := range u {
			g.blk = i
			step()
		}
		g.blk = 0
		g.p("\tSUBQ $%d, CX", u)
		g.p("\tJZ %s_fin", name)
		g.p("\tCMPQ CX, $%d", u)
		g.p("\tJGE %s_blku", name)
	}
	g.p("%s_blk:", name)
	for o := 0; o < blockBytes; o += 64 {
		g.qprefetch(o)
	}
	step()
	g.p("\tDECQ CX")
	g.p("\tJNZ %s_blk", name)
	g.p("%s_fin:", name)
	fin()
	g.nextRow(name, 0)
}

// qUnroll is how many blocks of blockBytes the GEMV loops take per
// prefetch: about a cache line's worth (Q8_0's 34 bytes two, Q4_0's 18
// four, Q5_0's 22 three), one for blocks of a line or more.
func qUnroll(blockBytes int) int {
	if blockBytes >= 64 {
		return 1
	}
	return (64 + blockBytes/2) / blockBytes
}

// nextRow stores the row's result from X<x> into dst, steps to the next
// weight row and loops back to name_row; after the last row it returns.
func (g *gen) nextRow(name string, x int) {
	g.p("\tVMOVSS X%d, (R8)", x)
	g.p("\tADDQ $4, R8")
	g.p("\tADDQ R9, R12")
	g.p("\tDECQ R11")
	g.p("\tJNZ %s_row", name)
	g.ret()
}

func (g *gen) vzero(r int) {
	if g.is512() {
		g.p("\tVPXORD %s, %s, %s", g.v(r), g.v(r), g.v(r))
		return
	}
	g.p("\tVXORPS %s, %s, %s", g.v(r), g.v(r), g.v(r))
}

// qgemvQ8_0: block = f16 d, 32 int8. acc (V13) += d · Σ q·x.
func (g *gen) qgemvQ8_0() {
	G := 32 / g.w
	g.qgemv("qgemvQ8_0", 34, 32, 0, func() {}, func() { g.vzero(13) }, func() {
		g.f16Bcast("(DI)", 8, true)
		for i := 0; i < G; i++ {
			g.p("\tVPMOVSXBD %d(DI), %s", 2+i*g.w, g.v(i))
		}
		for i := 0; i < G; i++ {
			g.p("\tVCVTDQ2PS %s, %s", g.v(i), g.v(i))
		}
		g.p("\tVMULPS (SI), %s, %s", g.v(0), g.v(0))
		for i := 1; i < G; i++ {
			g.p("\tVFMADD231PS %d(SI), %s, %s", i*g.vb(), g.v(i), g.v(0))
		}
		g.p("\tVFMADD231PS %s, %s, %s", g.v(8), g.v(0), g.v(13))
	}, func() {
		g.toY(13, 0)
		g.hsumY(13, 0)
		g.p("\tVMOVAPS X13, X0")
	})
}

// qgemvQ4_0: block = f16 d, 16 bytes: low nibbles are weights 0..15, high
// 16..31, offset by 8. acc (V13) += d · Σ q·x and X11 += d·Σx, so the
// result is acc - 8·X11. AVX-512 looks the weights up instead (LUT).
func (g *gen) qgemvQ4_0() {
	if g.is512() {
		g.qgemvQ4_0LUT()
		return
	}
	G := 16 / g.w
	g.qgemv("qgemvQ4_0", 18, 32, 0, func() {
		g.p("\tVMOVUPS q_0f<>(SB), %s", g.v(15))
	}, func() {
		g.vzero(13)
		g.p("\tVXORPS X11, X11, X11")
	}, func() {
		g.f16Bcast("(DI)", 8, true)
		for i := 0; i < G; i++ {
			g.p("\tVPMOVZXBD %d(DI), %s", 2+i*g.w, g.v(i))
		}
		for i := 0; i < G; i++ {
			g.p("\tVPSRLD $4, %s, %s", g.v(i), g.v(4+i))
			g.vand(15, i, i)
		}
		for i := 0; i < G; i++ {
			g.p("\tVCVTDQ2PS %s, %s", g.v(i), g.v(i))
			g.p("\tVCVTDQ2PS %s, %s", g.v(4+i), g.v(4+i))
		}
		g.p("\tVMULPS (SI), %s, %s", g.v(0), g.v(0))
		for i := 1; i < G; i++ {
			g.p("\tVFMADD231PS %d(SI), %s, %s", i*g.vb(), g.v(i), g.v(0))
		}
		for i := 0; i < G; i++ {
			g.p("\tVFMADD231PS %d(SI), %s, %s", 64+i*g.vb(), g.v(4+i), g.v(0))
		}
		g.p("\tVFMADD231PS %s, %s, %s", g.v(8), g.v(0), g.v(13))
		g.p("\tVMOVSS (DX), X9")
		g.p("\tVFMADD231SS X9, X8, X11")
	}, func() {
		g.toY(13, 0)
		g.hsumY(13, 0)
		g.p("\tVMULSS q_8<>(SB), X11, X11")
		g.p("\tVSUBSS X11, X13, X0")
	})
}

// qgemvQ4_0LUT is qgemvQ4_0 for AVX-512: VPERMPS looks each weight's q-8
// up as a float from Z14 by the nibble in its lane's low 4 bits (the bits
// above are ignored), in place of mask, convert and the offset sum.
func (g *gen) qgemvQ4_0LUT() { g.qgemvNibbleLUT("qgemvQ4_0", "q4lut") }

// qgemvNibbleLUT emits an AVX-512 GEMV of 18-byte blocks (f16 d, 16 nibble
// bytes) whose nibbles index the 16 floats at table (loaded into Z14).
func (g *gen) qgemvNibbleLUT(name, table string) {
	g.qgemv(name, 18, 32, 0, func() {
		g.p("\tVMOVUPS %s<>(SB), Z14", table)
	}, g.lutZero, func() {
		g.lutNibbles(2)
		g.lutBlock(0, 4)
	}, g.lutFin)
}

// lutNibbles looks the 32 nibbles of the 16 bytes at off(DI) up in Z14:
// weights 0..15 (low nibbles) into Z0, 16..31 (high) into Z4.
func (g *gen) lutNibbles(off int) {
	g.p("\tVPMOVZXBD %d(DI), Z0", off)
	g.p("\tVPSRLD $4, Z0, Z4")
	g.p("\tVPERMPS Z14, Z0, Z0")
	g.p("\tVPERMPS Z14, Z4, Z4")
}

// lutBlock adds d · (Z<lo>·x[0:16] + Z<hi>·x[16:32]) into Z13: a 32-weight
// block's looked-up quants, its f16 scale d at DI, its x at SI.
//
// Odd blocks of the unrolled loop add into Z10 instead: one accumulator
// made every block wait out the last one's FMA latency (4 cycles), longer
// than Q4_0's block takes on the ports.
func (g *gen) lutBlock(lo, hi int) {
	acc := 13
	if g.blk%2 == 1 {
		acc = 10
	}
	g.p("\tVMULPS (SI), Z%d, Z%d", lo, lo)
	g.p("\tVFMADD231PS 64(SI), Z%d, Z%d", hi, lo)
	g.f16Bcast("(DI)", 8, true)
	g.p("\tVFMADD231PS Z8, Z%d, Z%d", lo, acc)
}

// lutZero clears lutBlock's accumulators.
func (g *gen) lutZero() {
	g.vzero(13)
	g.vzero(10)
}

// lutFin leaves the sum of Z13's and Z10's lanes in X0.
func (g *gen) lutFin() {
	g.p("\tVADDPS Z10, Z13, Z13")
	g.toY(13, 0)
	g.hsumY(13, 0)
	g.p("\tVMOVAPS X13, X0")
}

// qgemvIQ4_NL: Q4_0's block, its nibbles indexing iq4Values. AVX-512
// looks them up as floats (VPERMPS from Z14, as qgemvQ4_0LUT); AVX2 as
// int8 (VPSHUFB from Y15), widened and converted.
func (g *gen) qgemvIQ4_NL() {
	if g.is512() {
		g.qgemvNibbleLUT("qgemvIQ4_NL", "iq4lut")
		return
	}
	g.qgemv("qgemvIQ4_NL", 18, 32, 0, g.iq4Setup, func() { g.vzero(13) }, func() {
		g.f16Bcast("(DI)", 8, true)
		g.iq4Quants(2, 0)
		g.p("\tVFMADD231PS Y8, Y2, Y13")
	}, func() {
		g.hsumY(13, 0)
		g.p("\tVMOVAPS X13, X0")
	})
}

// iq4Setup loads the AVX2 IQ4 constants: the int8 table (Y15), 0x0f bytes
// (Y14).
func (g *gen) iq4Setup() {
	g.p("\tVMOVDQU iq4b<>(SB), Y15")
	g.p("\tVMOVDQU b_0f<>(SB), Y14")
}

// iq4Quants (AVX2) leaves in Y2 the 32 weights at off(DI) looked up and
// multiplied with x at xo(SI), summed lane-wise.
func (g *gen) iq4Quants(off, xo int) {
	g.p("\tVMOVDQU %d(DI), X0", off)
	g.p("\tVPSRLW $4, X0, X1")
	g.p("\tVPAND X14, X0, X0")
	g.p("\tVPAND X14, X1, X1")
	g.p("\tVPSHUFB X0, X15, X0")
	g.p("\tVPSHUFB X1, X15, X1")
	g.p("\tVPMOVSXBD X0, Y2")
	g.p("\tVPSRLDQ $8, X0, X0")
	g.p("\tVPMOVSXBD X0, Y3")
	g.p("\tVPMOVSXBD X1, Y4")
	g.p("\tVPSRLDQ $8, X1, X1")
	g.p("\tVPMOVSXBD X1, Y5")
	for i := 2; i < 6; i++ {
		g.p("\tVCVTDQ2PS Y%d, Y%d", i, i)
	}
	g.p("\tVMULPS %d(SI), Y2, Y2", xo)
	for i := 3; i < 6; i++ {
		g.p("\tVFMADD231PS %d(SI), Y%d, Y2", xo+32*(i-2), i)
	}
}

// qgemvIQ4_XS: superblock = f16 d, 16 bits of scale high pairs, 4 bytes of
// scale low nibbles, 128 nibble bytes (8 IQ4_NL-style sub-blocks of 32).
// The eight sub-block scales d·(ls−32) are made at once in Y9 (lane ib:
// nibble ib of the low bytes | bit pair ib of the high bits << 4, as
// ggml, d times it rounded once) and go to 0(SP) for broadcasts.
func (g *gen) qgemvIQ4_XS() {
	setup := g.iq4Setup
	if g.is512() {
		setup = func() { g.p("\tVMOVUPS iq4lut<>(SB), Z14") }
	}
	g.qgemv("qgemvIQ4_XS", 136, 256, 32, setup, func() {
		g.vzero(13)
		if g.is512() {
			g.vzero(10)
		}
	}, func() {
		g.f16Bcast("(DI)", 8, false)
		g.p("\tVPBROADCASTD 4(DI), Y9")
		g.p("\tVPSRLVD iq4sl<>(SB), Y9, Y9")
		g.p("\tVPAND q_0f<>(SB), Y9, Y9")
		g.p("\tVPBROADCASTW 2(DI), Y1")
		g.p("\tVPSRLVD iq4sh<>(SB), Y1, Y1")
		g.p("\tVPAND q_3<>(SB), Y1, Y1")
		g.p("\tVPSLLD $4, Y1, Y1")
		g.p("\tVPOR Y1, Y9, Y9")
		g.p("\tVPSUBD q_32<>(SB), Y9, Y9")
		g.p("\tVCVTDQ2PS Y9, Y9")
		g.p("\tVMULPS Y8, Y9, Y9")
		g.p("\tVMOVUPS Y9, (SP)")
		for ib := 0; ib < 8; ib++ {
			if g.is512() {
				g.lutNibbles(8 + 16*ib)
				g.p("\tVMULPS %d(SI), Z0, Z0", 128*ib)
				g.p("\tVFMADD231PS %d(SI), Z4, Z0", 128*ib+64)
				g.p("\tVBROADCASTSS %d(SP), Z8", 4*ib)
				g.p("\tVFMADD231PS Z8, Z0, Z%d", []int{13, 10}[ib%2])
				continue
			}
			g.iq4Quants(8+16*ib, 128*ib)
			g.p("\tVBROADCASTSS %d(SP), Y8", 4*ib)
			g.p("\tVFMADD231PS Y8, Y2, Y13")
		}
	}, func() {
		if g.is512() {
			g.lutFin()
			return
		}
		g.hsumY(13, 0)
		g.p("\tVMOVAPS X13, X0")
	})
}

// qgemvQ4_K: superblock = f16 d, dmin, 12 bytes of six-bit scales and mins,
// 128 bytes of nibbles (per 32 bytes: 32 weights of low nibbles, then 32 of
// high). The 8 scales ·d go to the stack for broadcasts; the 8 mins ·dmin
// dot the 8 sums of x into V11 (subtracted at the end). Two accumulators:
// V13 (low-nibble sub-blocks) and V12 (high).
func (g *gen) qgemvQ4_K() {
	G := 32 / g.w
	// AVX-512 turns nibbles into floats by VPERMPS from the table 0..15
	// (Z15), which ignores the bits above a lane's low four: one uop for a
	// low nibble instead of a mask and a conversion, as qgemvQ4_0LUT.
	table := "q_0f"
	if g.is512() {
		table = "q4id"
	}
	g.qgemv("qgemvQ4_K", 144, 256, 32, func() {
		g.p("\tVMOVUPS %s<>(SB), %s", table, g.v(15))
	}, func() {
		g.vzero(13)
		g.vzero(12)
		g.p("\tVXORPS Y11, Y11, Y11")
	}, func() {
		g.q4kScales()
		g.p("\tVFMADD231PS (DX), Y9, Y11")
		for c := 0; c < 4; c++ {
			for i := 0; i < G; i++ {
				g.p("\tVPMOVZXBD %d(DI), %s", 16+32*c+i*g.w, g.v(i))
			}
			for i := 0; i < G; i++ {
				g.p("\tVPSRLD $4, %s, %s", g.v(i), g.v(4+i))
				if !g.is512() {
					g.vand(15, i, i)
				}
			}
			for i := 0; i < G; i++ {
				if g.is512() {
					g.p("\tVPERMPS Z15, Z%d, Z%d", i, i)
					g.p("\tVPERMPS Z15, Z%d, Z%d", 4+i, 4+i)
					continue
				}
				g.p("\tVCVTDQ2PS %s, %s", g.v(i), g.v(i))
				g.p("\tVCVTDQ2PS %s, %s", g.v(4+i), g.v(4+i))
			}
			xo := 4 * 64 * c
			g.p("\tVMULPS %d(SI), %s, %s", xo, g.v(0), g.v(0))
			g.p("\tVMULPS %d(SI), %s, %s", xo+128, g.v(4), g.v(4))
			for i := 1; i < G; i++ {
				g.p("\tVFMADD231PS %d(SI), %s, %s", xo+i*g.vb(), g.v(i), g.v(0))
				g.p("\tVFMADD231PS %d(SI), %s, %s", xo+128+i*g.vb(), g.v(4+i), g.v(4))
			}
			g.p("\tVBROADCASTSS %d(SP), %s", 8*c, g.v(8))
			g.p("\tVBROADCASTSS %d(SP), %s", 8*c+4, g.v(9))
			g.p("\tVFMADD231PS %s, %s, %s", g.v(8), g.v(0), g.v(13))
			g.p("\tVFMADD231PS %s, %s, %s", g.v(9), g.v(4), g.v(12))
		}
	}, func() {
		g.p("\tVADDPS %s, %s, %s", g.v(12), g.v(13), g.v(13))
		g.toY(13, 0)
		g.p("\tVSUBPS Y11, Y13, Y13")
		g.hsumY(13, 0)
		g.p("\tVMOVAPS X13, X0")
	})
}

// qgemvQ6_K: superblock = ql[128] (low 4 bits), qh[64] (high 2 bits),
// 16 int8 scales, f16 d; quants offset by 32. Per 128-weight half and
// group of lanes l: q1 = ql[l]&15 | (qh[l]&3)<<4 (weights l), q2 from
// ql[l+32] and qh bits 2..3 (l+32), q3 = ql[l]>>4 and bits 4..5 (l+64), q4
// = ql[l+32]>>4 and bits 6..7 (l+96); scale index l/16 + 0, 2, 4, 6.
// Constants: V15 = 0x0f, V14 = 0x30, V12 = 32; d in Y13's lane broadcast.
func (g *gen) qgemvQ6_K() {
	g.q6k("qgemvQ6_K", 32, func() {
		g.p("\tVMOVUPS q_0f<>(SB), %s", g.v(15))
		g.p("\tVMOVUPS q_30<>(SB), %s", g.v(14))
		g.p("\tVMOVUPS q_32<>(SB), %s", g.v(12))
	}, func(int) {}, g.q6kQuants)
}

// q6k emits a Q6_K GEMV around half, which prepares a 128-weight half block
// n, and quants, which leaves its quants q1..q4 for lanes l.. (see
// qgemvQ6_K) as floats less 32 in V4..V7; the scales (d times the int8
// ones) go to 0(SP).
func (g *gen) q6k(name string, frame int, setup func(), half func(n int), quants func(n, l int)) {
	g.qgemv(name, 210, 256, frame, setup, func() {
		g.vzero(10)
		g.vzero(11)
	}, func() {
		g.f16Bcast("208(DI)", 13, false)
		for n := 0; n < 2; n++ {
			g.p("\tVPMOVSXBD %d(DI), Y9", 192+8*n)
			g.p("\tVCVTDQ2PS Y9, Y9")
			g.p("\tVMULPS Y13, Y9, Y9")
			g.p("\tVMOVUPS Y9, (SP)")
			half(n)
			for l := 0; l < 32; l += g.w {
				quants(n, l)
				for q := 0; q < 4; q++ {
					g.p("\tVMULPS %d(SI), %s, %s", 4*(128*n+32*q+l), g.v(4+q), g.v(4+q))
				}
				is := l / 16
				for q := 0; q < 4; q++ {
					s := 8 + q%2
					g.p("\tVBROADCASTSS %d(SP), %s", 4*(is+2*q), g.v(s))
					g.p("\tVFMADD231PS %s, %s, %s", g.v(s), g.v(4+q), g.v(10+q%2))
				}
			}
		}
	}, func() {
		g.p("\tVADDPS %s, %s, %s", g.v(11), g.v(10), g.v(10))
		g.toY(10, 0)
		g.hsumY(10, 0)
		g.p("\tVMOVAPS X10, X0")
	})
}

// qgemvQ6_KBW is qgemvQ6_K for AVX-512 with BW: each half block's 128
// quants are put together as bytes, 64 at a time, instead of 16 int32
// lanes at a time: ql & 0x0f (q1, q2) and ql>>4 & 0x0f (q3, q4), ORed with
// qh's two bits per weight, which one broadcast of the half's 32 qh bytes
// gives both halves of a register and a per-word shift puts at bits 4..5
// (<<4 and <<2 for q1 and q2, >>0 and >>2 for q3 and q4), less 32. The
// bytes go through the stack slot at 32(SP) (q1, q2) and 96(SP) (q3, q4)
// into VPMOVSXBD; the products and sums are qgemvQ6_K's, in its order (the
// same bits). 41 vector uops per 128 weights against 68. Constants: Z15 =
// bytes 0x0f, Z14 = bytes 0x30, Z12 = bytes 32; the shifts from memory.
func (g *gen) qgemvQ6_KBW() {
	g.q6k("qgemvQ6_KBW", 160, func() {
		g.p("\tVMOVDQU64 q6b_0f<>(SB), Z15")
		g.p("\tVMOVDQU64 q6b_30<>(SB), Z14")
		g.p("\tVMOVDQU64 q6b_20<>(SB), Z12")
	}, func(n int) {
		g.p("\tVBROADCASTI64X4 %d(DI), Z1", 128+32*n)
		g.p("\tVPSLLVW q6shl<>(SB), Z1, Z2")
		g.p("\tVPSRLVW q6shr<>(SB), Z1, Z3")
		g.p("\tVPANDD %d(DI), Z15, Z4", 64*n)
		g.p("\tVPSRLW $4, %d(DI), Z5", 64*n)
		g.p("\tVPANDD Z15, Z5, Z5")
		g.p("\tVPTERNLOGD $0xf8, Z14, Z2, Z4") // Z4 |= Z2 & 0x30
		g.p("\tVPTERNLOGD $0xf8, Z14, Z3, Z5")
		g.p("\tVPSUBB Z12, Z4, Z4")
		g.p("\tVPSUBB Z12, Z5, Z5")
		g.p("\tVMOVDQU64 Z4, 32(SP)")
		g.p("\tVMOVDQU64 Z5, 96(SP)")
	}, func(n, l int) {
		for q := 0; q < 4; q++ {
			g.p("\tVPMOVSXBD %d(SP), Z%d", 32+32*q+l, 4+q)
			g.p("\tVCVTDQ2PS Z%d, Z%d", 4+q, 4+q)
		}
	})
}

// legacyBlock describes a 32-weight block of Q4_1, Q5_0 or Q5_1: f16 d at
// 0, f16 min m at 2 (mOff > 0), 32 high bits at qhOff (> 0), 16 nibble
// bytes at qsOff; weights are (q - off)·d or q·d + m.
type legacyBlock struct {
	name                      string
	bytes, mOff, qhOff, qsOff int
	off                       int
}

var legacyBlocks = []legacyBlock{
	{name: "Q4_1", bytes: 20, mOff: 2, qsOff: 4},
	{name: "Q5_0", bytes: 22, qhOff: 2, qsOff: 6, off: 16},
	{name: "Q5_1", bytes: 24, mOff: 2, qhOff: 4, qsOff: 8},
}

// legacyQuants leaves the block's 32 quants at DI as int32 in Y0 (weights
// 0..7), Y1 (8..15), Y4 (16..23), Y5 (24..31): nibbles from VPMOVZXBD, and
// for Q5 the fifth bit, broadcast qh shifted per lane (q5sh) into bit 4.
// Needs Y15 = 0x0f, Y14 = 0x10; clobbers Y2, Y3, Y6, Y7, Y9, Y10.
func (g *gen) legacyQuants(b legacyBlock) {
	g.p("\tVPMOVZXBD %d(DI), Y0", b.qsOff)
	g.p("\tVPMOVZXBD %d(DI), Y1", b.qsOff+8)
	g.p("\tVPSRLD $4, Y0, Y4")
	g.p("\tVPSRLD $4, Y1, Y5")
	g.p("\tVPAND Y15, Y0, Y0")
	g.p("\tVPAND Y15, Y1, Y1")
	if b.qhOff == 0 {
		return
	}
	g.p("\tVPBROADCASTD %d(DI), Y9", b.qhOff)
	g.p("\tVPSLLD $4, Y9, Y10")
	for gi, r := range []int{0, 1, 4, 5} {
		src, t := 9, []int{2, 3, 6, 7}[gi]
		if gi == 0 {
			src = 10
		}
		g.p("\tVPSRLVD q5sh<>+%d(SB), Y%d, Y%d", 32*gi, src, t)
		g.p("\tVPAND Y14, Y%d, Y%d", t, t)
		g.p("\tVPOR Y%d, Y%d, Y%d", t, r, r)
	}
}

// qgemvLegacy: acc (Y13) += d · Σ q·x per block, and X11 += d·Σx (offset
// types: the result is acc - off·X11) or m·Σx (the result is acc + X11).
// AVX2 only.
func (g *gen) qgemvLegacy(b legacyBlock) {
	name := "qgemv" + b.name
	g.qgemv(name, b.bytes, 32, 0, func() {
		g.p("\tVMOVUPS q_0f<>(SB), Y15")
		g.p("\tVMOVUPS q_10<>(SB), Y14")
	}, func() {
		g.p("\tVXORPS Y13, Y13, Y13")
		g.p("\tVXORPS X11, X11, X11")
	}, func() {
		g.legacyQuants(b)
		g.f16Bcast("(DI)", 8, true)
		for _, r := range []int{0, 1, 4, 5} {
			g.p("\tVCVTDQ2PS Y%d, Y%d", r, r)
		}
		g.p("\tVMULPS (SI), Y0, Y0")
		g.p("\tVMULPS 32(SI), Y1, Y1")
		g.p("\tVFMADD231PS 64(SI), Y4, Y0")
		g.p("\tVFMADD231PS 96(SI), Y5, Y1")
		g.p("\tVADDPS Y1, Y0, Y0")
		g.p("\tVFMADD231PS Y8, Y0, Y13")
		g.legacyOffset(b)
	}, func() {
		g.hsumY(13, 0)
		if b.mOff > 0 {
			g.p("\tVADDSS X11, X13, X0")
		} else {
			g.p("\tVMULSS q_%d<>(SB), X11, X11", b.off)
			g.p("\tVSUBSS X11, X13, X0")
		}
	})
}

// legacyOffset accumulates a legacy block's constant term into X11: the
// block's sum of activations (at DX) times m (Q4_1, Q5_1) or times d (in X8;
// Q4_0, Q5_0, whose offset the epilogue multiplies in).
func (g *gen) legacyOffset(b legacyBlock) {
	g.p("\tVMOVSS (DX), X9")
	if b.mOff > 0 {
		g.f16Bcast(fmt.Sprintf("%d(DI)", b.mOff), 10, false)
		g.p("\tVFMADD231SS X9, X10, X11")
	} else {
		g.p("\tVFMADD231SS X9, X8, X11")
	}
}

// legacyQuants512 leaves the block's 16 low-nibble quants at DI in Z0 and
// its 16 high in Z1 as int32, with Q5's fifth bits ORed in as 16 by the
// masks of qh. Needs Z15 = 0x0f, Z14 = 16.
func (g *gen) legacyQuants512(b legacyBlock) {
	g.p("\tVPMOVZXBD %d(DI), Z0", b.qsOff)
	g.p("\tVPSRLD $4, Z0, Z1")
	g.p("\tVPANDD Z15, Z0, Z0")
	if b.qhOff > 0 {
		g.p("\tKMOVW %d(DI), K1", b.qhOff)
		g.p("\tKMOVW %d(DI), K2", b.qhOff+2)
		g.p("\tVPORD Z14, Z0, K1, Z0")
		g.p("\tVPORD Z14, Z1, K2, Z1")
	}
}

// qgemvQ5_0LUT is qgemvLegacy512 for Q5_0: the five-bit quants index a
// 32-entry table of q-16 as floats (VPERMI2PS, Z11 and Z12), in place of
// convert and the offset sum.
func (g *gen) qgemvQ5_0LUT(b legacyBlock) {
	g.qgemv("qgemv"+b.name, b.bytes, 32, 0, func() {
		g.p("\tVMOVUPS q_0f<>(SB), Z15")
		g.p("\tMOVL $16, AX")
		g.p("\tVPBROADCASTD AX, Z14")
		g.p("\tVMOVUPS q5lut<>(SB), Z11")
		g.p("\tVMOVUPS q5lut<>+64(SB), Z12")
	}, g.lutZero, func() {
		g.legacyQuants512(b)
		g.p("\tVPERMI2PS Z12, Z11, Z0")
		g.p("\tVPERMI2PS Z12, Z11, Z1")
		g.lutBlock(0, 1)
	}, g.lutFin)
}

// qgemvLegacy512 is qgemvLegacy with 16 lanes: the 16 low nibbles widen
// into Z0 and the high into Z1 (one VPMOVZXBD), and Q5's fifth bits come
// from qh as two 16-bit masks (KMOVW) that OR 16 into their lanes.
func (g *gen) qgemvLegacy512(b legacyBlock) {
	if b.name == "Q5_0" {
		g.qgemvQ5_0LUT(b)
		return
	}
	g.qgemv("qgemv"+b.name, b.bytes, 32, 0, func() {
		g.p("\tVMOVUPS q_0f<>(SB), Z15")
		g.p("\tMOVL $16, AX")
		g.p("\tVPBROADCASTD AX, Z14")
	}, func() {
		g.p("\tVPXORD Z13, Z13, Z13")
		g.p("\tVXORPS X11, X11, X11")
	}, func() {
		g.legacyQuants512(b)
		g.p("\tVCVTDQ2PS Z0, Z0")
		g.p("\tVCVTDQ2PS Z1, Z1")
		g.p("\tVMULPS (SI), Z0, Z0")
		g.p("\tVFMADD231PS 64(SI), Z1, Z0")
		g.p("\tVPBROADCASTW (DI), Y8")
		g.p("\tVCVTPH2PS Y8, Z8")
		g.p("\tVFMADD231PS Z8, Z0, Z13")
		g.legacyOffset(b)
	}, func() {
		g.toY(13, 0)
		g.hsumY(13, 0)
		if b.mOff > 0 {
			g.p("\tVADDSS X11, X13, X0")
		} else {
			g.p("\tMOVL $0x%08x, AX", f32bits(float32(b.off)))
			g.p("\tVMOVD AX, X10")
			g.p("\tVMULSS X10, X11, X11")
			g.p("\tVSUBSS X11, X13, X0")
		}
	})
}

// Q5_K and Q3_K (and Q2_K's dequantization) unpack at byte level, 32
// weights per instruction, into a stack scratch (bytes at 64(SP) and up)
// that VPMOVZXBD/VPMOVSXBD widen from: by count about 2/3 of the
// instructions of widening first and unpacking every 8 lanes (the
// dword-lane form was not timed for these two). The GEMVs store a chunk's
// bytes one chunk ahead of widening them (Q5_K 10% faster on Zen 3).
// Measured slower there: widening by register shuffles instead of the
// store, byte-level Q5_0, and byte-level Q2_K (one VPMOVZXBD serves its
// four planes). AVX2 only.

// bmask sets Y<dst> to the bytes of Y<src>, each shifted so that its bit
// from moves to bit to, ANDed with Y<mask>. The shift is by 16-bit words:
// bits crossing into the neighbouring byte land outside the mask's bits
// (which lie within to-|from-to| .. to+|from-to| of each byte).
func (g *gen) bmask(src, dst, from, to, mask int) {
	switch {
	case from < to:
		g.p("\tVPSLLW $%d, Y%d, Y%d", to-from, src, dst)
		src = dst
	case from > to:
		g.p("\tVPSRLW $%d, Y%d, Y%d", from-to, src, dst)
		src = dst
	}
	g.p("\tVPAND Y%d, Y%d, Y%d", mask, src, dst)
}

// widen32 widens the 32 bytes at at(SP) into int32 Y0..Y3, signed or not,
// and converts them to float.
func (g *gen) widen32(signed bool, at int) {
	op := "VPMOVZXBD"
	if signed {
		op = "VPMOVSXBD"
	}
	for i := 0; i < 4; i++ {
		g.p("\t%s %d(SP), Y%d", op, at+8*i, i)
	}
	for i := 0; i < 4; i++ {
		g.p("\tVCVTDQ2PS Y%d, Y%d", i, i)
	}
}

// dot16x2 multiplies Y0..Y3 (32 weights) with x at off(SI) and adds the two
// 16-weight sums, scaled by the floats at s0(SP) and s0+4(SP), into Y<a0>
// and Y<a1>. Clobbers Y0..Y5.
func (g *gen) dot16x2(off, s0, a0, a1 int) {
	g.p("\tVMULPS %d(SI), Y0, Y0", off)
	g.p("\tVMULPS %d(SI), Y2, Y2", off+64)
	g.p("\tVFMADD231PS %d(SI), Y1, Y0", off+32)
	g.p("\tVFMADD231PS %d(SI), Y3, Y2", off+96)
	g.p("\tVBROADCASTSS %d(SP), Y4", s0)
	g.p("\tVBROADCASTSS %d(SP), Y5", s0+4)
	g.p("\tVFMADD231PS Y4, Y0, Y%d", a0)
	g.p("\tVFMADD231PS Y5, Y2, Y%d", a1)
}

// q5kBytes leaves chunk c's 64 quants of the Q5_K block at DI as bytes at
// 64(SP) (32 low-nibble weights) and 96(SP) (32 high), from qh in Y10;
// needs Y15 = b_0f, Y14 = b_10; clobbers Y0..Y3.
func (g *gen) q5kBytes(c, at int) {
	g.p("\tVMOVDQU %d(DI), Y0", 48+32*c)
	g.p("\tVPAND Y15, Y0, Y1")
	g.p("\tVPSRLW $4, Y0, Y0")
	g.p("\tVPAND Y15, Y0, Y0")
	g.bmask(10, 2, 2*c, 4, 14)
	g.p("\tVPOR Y2, Y1, Y1")
	g.bmask(10, 3, 2*c+1, 4, 14)
	g.p("\tVPOR Y3, Y0, Y0")
	g.p("\tVMOVDQU Y1, %d(SP)", at)
	g.p("\tVMOVDQU Y0, %d(SP)", at+32)
}

// qgemvQ5_K: as qgemvQ4_K (scales·d at 0(SP), mins·dmin dotted with the
// sums of x into Y11), quants from q5kBytes; accumulators Y13 (low-nibble
// sub-blocks) and Y12 (high).
func (g *gen) qgemvQ5_K() {
	g.qgemv("qgemvQ5_K", 176, 256, 192, func() {
		g.p("\tVMOVDQU b_0f<>(SB), Y15")
	}, func() {
		g.p("\tVXORPS Y13, Y13, Y13")
		g.p("\tVXORPS Y12, Y12, Y12")
		g.p("\tVXORPS Y11, Y11, Y11")
	}, func() {
		g.q4kScales()
		g.p("\tVFMADD231PS (DX), Y9, Y11")
		g.p("\tVMOVDQU 16(DI), Y10")
		g.p("\tVMOVDQU b_10<>(SB), Y14")
		g.q5kBytes(0, 64)
		for c := 0; c < 4; c++ { // chunk c's bytes are stored one chunk ahead
			if c < 3 {
				g.q5kBytes(c+1, 64+64*((c+1)%2))
			}
			for i := 0; i < 8; i++ {
				g.p("\tVPMOVZXBD %d(SP), Y%d", 64+64*(c%2)+8*i, i)
			}
			for i := 0; i < 8; i++ {
				g.p("\tVCVTDQ2PS Y%d, Y%d", i, i)
			}
			xo := 4 * 64 * c
			g.p("\tVMULPS %d(SI), Y0, Y0", xo)
			g.p("\tVMULPS %d(SI), Y4, Y4", xo+128)
			g.p("\tVMULPS %d(SI), Y1, Y1", xo+32)
			g.p("\tVMULPS %d(SI), Y5, Y5", xo+160)
			g.p("\tVFMADD231PS %d(SI), Y2, Y0", xo+64)
			g.p("\tVFMADD231PS %d(SI), Y6, Y4", xo+192)
			g.p("\tVFMADD231PS %d(SI), Y3, Y1", xo+96)
			g.p("\tVFMADD231PS %d(SI), Y7, Y5", xo+224)
			g.p("\tVADDPS Y1, Y0, Y0")
			g.p("\tVADDPS Y5, Y4, Y4")
			g.p("\tVBROADCASTSS %d(SP), Y8", 8*c)
			g.p("\tVBROADCASTSS %d(SP), Y9", 8*c+4)
			g.p("\tVFMADD231PS Y8, Y0, Y13")
			g.p("\tVFMADD231PS Y9, Y4, Y12")
		}
	}, func() {
		g.p("\tVADDPS Y12, Y13, Y13")
		g.p("\tVSUBPS Y11, Y13, Y13")
		g.hsumY(13, 0)
		g.p("\tVMOVAPS X13, X0")
	})
}

// q3kScales leaves Q3_K's 16 scales·d at 0(SP): six bits each, the low four
// in the nibbles of bytes 96..103 of the block, the high two in the bit
// pairs of bytes 104..107, offset by 32. Clobbers AX, BX, R10, R13, R14,
// Y8, Y9, Y14.
func (g *gen) q3kScales() {
	g.p("\tMOVL 96(DI), AX")  // low nibbles of scales 0..3 and 8..11
	g.p("\tMOVL 100(DI), BX") // of 4..7 and 12..15
	g.p("\tMOVL 104(DI), R10")
	lohi := func(src string, sh int, hiShift string) {
		// R13 = (src >> sh) & 0x0f0f0f0f | (R10 shifted) & 0x30303030
		g.p("\tMOVL %s, R13", src)
		if sh > 0 {
			g.p("\tSHRL $%d, R13", sh)
		}
		g.p("\tANDL $0x0f0f0f0f, R13")
		g.p("\tMOVL R10, R14")
		if hiShift != "" {
			g.p("\t%s, R14", hiShift)
		}
		g.p("\tANDL $0x30303030, R14")
		g.p("\tORL R14, R13")
	}
	lohi("AX", 0, "SHLL $4") // scales 0..3
	g.p("\tVMOVD R13, X8")
	lohi("BX", 0, "SHLL $2") // 4..7
	g.p("\tVPINSRD $1, R13, X8, X8")
	lohi("AX", 4, "") // 8..11
	g.p("\tVMOVD R13, X9")
	lohi("BX", 4, "SHRL $2") // 12..15
	g.p("\tVPINSRD $1, R13, X9, X9")
	g.f16Bcast("108(DI)", 14, false)
	for i, r := range []int{8, 9} {
		g.p("\tVPMOVZXBD X%d, Y%d", r, r)
		g.p("\tVPSUBD q_32<>(SB), Y%d, Y%d", r, r)
		g.p("\tVCVTDQ2PS Y%d, Y%d", r, r)
		g.p("\tVMULPS Y14, Y%d, Y%d", r, r)
		g.p("\tVMOVUPS Y%d, %d(SP)", r, 32*i)
	}
}

// q3kBytes leaves the 32 signed quants of 2-bit plane j of half n (weights
// 128n+32j..+32) as bytes at 64(SP): the bit pair from qs (Y9) with the
// hmask bit 4n+j (Y10) as bit 2, minus 4. Needs Y15 = b_03, Y14 = b_04;
// clobbers Y0, Y1.
func (g *gen) q3kBytes(n, j, at int) {
	g.bmask(9+2*n, 0, 2*j, 0, 15)
	g.bmask(10, 1, 4*n+j, 2, 14)
	g.p("\tVPOR Y1, Y0, Y0")
	g.p("\tVPSUBB Y14, Y0, Y0")
	g.p("\tVMOVDQU Y0, %d(SP)", at)
}

// qgemvQ3_K: superblock = hmask[32], qs[64], 12 bytes of scales, f16 d.
// Each 16 weights' scale (·d, at 0(SP)) multiplies their partial sum;
// accumulators Y12 (first 16 of each 32) and Y13.
func (g *gen) qgemvQ3_K() {
	g.qgemv("qgemvQ3_K", 110, 256, 128, func() {}, func() {
		g.p("\tVXORPS Y13, Y13, Y13")
		g.p("\tVXORPS Y12, Y12, Y12")
	}, func() {
		g.q3kScales()
		g.p("\tVMOVDQU b_03<>(SB), Y15")
		g.p("\tVMOVDQU b_04<>(SB), Y14")
		g.p("\tVMOVDQU (DI), Y10")
		g.p("\tVMOVDQU 32(DI), Y9")
		g.p("\tVMOVDQU 64(DI), Y11")
		g.q3kBytes(0, 0, 64)
		for u := 0; u < 8; u++ { // plane u's bytes are stored one plane ahead
			n, j := u/4, u%4
			at := 64 + 32*(u%2)
			if u < 7 {
				g.q3kBytes((u+1)/4, (u+1)%4, 64+32*((u+1)%2))
			}
			g.widen32(true, at)
			g.dot16x2(4*(128*n+32*j), 4*(8*n+2*j), 12, 13)
		}
	}, func() {
		g.p("\tVADDPS Y12, Y13, Y13")
		g.hsumY(13, 0)
		g.p("\tVMOVAPS X13, X0")
	})
}

// q2kScales leaves Q2_K's 16 scales·d at 0(SP) and their mins·dmin in Y8
// (0..7) and Y9 (8..15): low and high nibbles of bytes 0..15. Clobbers
// Y14, Y10.
func (g *gen) q2kScales() {
	g.f16Bcast("80(DI)", 14, false)
	g.f16Bcast("82(DI)", 10, false)
	for i, r := range []int{8, 9} {
		g.p("\tVPMOVZXBD %d(DI), Y%d", 8*i, r)
		g.p("\tVPAND q_0f<>(SB), Y%d, Y15", r)
		g.p("\tVPSRLD $4, Y%d, Y%d", r, r)
		g.p("\tVCVTDQ2PS Y15, Y15")
		g.p("\tVCVTDQ2PS Y%d, Y%d", r, r)
		g.p("\tVMULPS Y14, Y15, Y15")
		g.p("\tVMULPS Y10, Y%d, Y%d", r, r)
		g.p("\tVMOVUPS Y15, %d(SP)", 32*i)
	}
}

// qgemvQ2_K: superblock = 16 scale bytes (low nibble scale, high min),
// qs[64], f16 d, dmin; its x sums are over 16 weights (DX, 64 bytes a
// block). Mins·dmin dot those sums into Y11. Unlike Q3_K and Q5_K it widens
// first: one VPMOVZXBD serves four 2-bit planes, and the planes are two
// instructions each. Each pair of lane groups (16 weights of one scale per
// plane) is loaded once; accumulators Y12, Y13.
func (g *gen) qgemvQ2_K() {
	g.qgemvX("qgemvQ2_K", 84, 256, 64, 64, func() {}, func() {
		g.p("\tVXORPS Y13, Y13, Y13")
		g.p("\tVXORPS Y12, Y12, Y12")
		g.p("\tVXORPS Y11, Y11, Y11")
	}, func() {
		g.q2kScales()
		g.p("\tVFMADD231PS (DX), Y8, Y11")
		g.p("\tVFMADD231PS 32(DX), Y9, Y11")
		g.p("\tVMOVDQU q_3<>(SB), Y15")
		for n := 0; n < 2; n++ {
			for h := 0; h < 2; h++ {
				g.p("\tVPMOVZXBD %d(DI), Y6", 16+32*n+16*h)
				g.p("\tVPMOVZXBD %d(DI), Y7", 16+32*n+16*h+8)
				for j := 0; j < 4; j++ {
					for q := 0; q < 2; q++ {
						if j == 0 {
							g.p("\tVPAND Y15, Y%d, Y%d", 6+q, q)
						} else {
							g.p("\tVPSRLD $%d, Y%d, Y%d", 2*j, 6+q, q)
							g.p("\tVPAND Y15, Y%d, Y%d", q, q)
						}
						g.p("\tVCVTDQ2PS Y%d, Y%d", q, q)
					}
					off := 4 * (128*n + 32*j + 16*h)
					g.p("\tVMULPS %d(SI), Y0, Y0", off)
					g.p("\tVFMADD231PS %d(SI), Y1, Y0", off+32)
					g.p("\tVBROADCASTSS %d(SP), Y4", 4*(8*n+2*j+h))
					g.p("\tVFMADD231PS Y4, Y0, Y%d", 12+j%2)
				}
			}
		}
	}, func() {
		g.p("\tVADDPS Y12, Y13, Y13")
		g.p("\tVSUBPS Y11, Y13, Y13")
		g.hsumY(13, 0)
		g.p("\tVMOVAPS X13, X0")
	})
}

// accFin512 adds Z12 into Z13, subtracts the mins' Y11 when mins, and
// leaves the sum of the lanes in X0.
func (g *gen) accFin512(mins bool) {
	g.p("\tVADDPS Z12, Z13, Z13")
	g.toY(13, 0)
	if mins {
		g.p("\tVSUBPS Y11, Y13, Y13")
	}
	g.hsumY(13, 0)
	g.p("\tVMOVAPS X13, X0")
}

// scaleAcc multiplies the 16 weights in Z<w> by x at xo(SI) and adds them,
// scaled by the float at so(SP), into Z<acc>. Clobbers Z4.
func (g *gen) scaleAcc(w, xo, so, acc int) {
	g.p("\tVMULPS %d(SI), Z%d, Z%d", xo, w, w)
	g.p("\tVBROADCASTSS %d(SP), Z4", so)
	g.p("\tVFMADD231PS Z4, Z%d, Z%d", w, acc)
}

// qgemvQ2_K512 is qgemvQ2_K at 16 lanes: one VPMOVZXBD gives a 16-weight
// scale group's bytes, and each 2-bit plane is a shift and a VPERMPS from
// the table i&3 (Z3), which ignores the bits above a lane's low four.
func (g *gen) qgemvQ2_K512() {
	g.qgemvX("qgemvQ2_K", 84, 256, 64, 64, func() {
		g.p("\tVMOVUPS q2id<>(SB), Z3")
	}, func() {
		g.vzero(13)
		g.vzero(12)
		g.p("\tVXORPS Y11, Y11, Y11")
	}, func() {
		g.q2kScales()
		g.p("\tVFMADD231PS (DX), Y8, Y11")
		g.p("\tVFMADD231PS 32(DX), Y9, Y11")
		for n := 0; n < 2; n++ {
			for h := 0; h < 2; h++ {
				g.p("\tVPMOVZXBD %d(DI), Z6", 16+32*n+16*h)
				for j := 0; j < 4; j++ {
					src := 6
					if j > 0 {
						g.p("\tVPSRLD $%d, Z6, Z0", 2*j)
						src = 0
					}
					g.p("\tVPERMPS Z3, Z%d, Z0", src)
					g.scaleAcc(0, 4*(128*n+32*j+16*h), 4*(8*n+2*j+h), 12+j%2)
				}
			}
		}
	}, func() { g.accFin512(true) })
}

// qgemvQ3_K512 is qgemvQ3_K at 16 lanes, widening first: per 16 weights
// (one scale group) one VPMOVZXBD of their qs bytes serves the four 2-bit
// planes of a half and one of their hmask bytes all eight planes. A
// plane's index is the qs pair (shifted to bits 0..1) with the hmask bit
// (shifted to bit 2) merged by one VPTERNLOGD under the mask 3 (Z2), and
// VPERMPS looks it up in the table (i&7)−4 (Z3), which ignores bit 3 and
// above. Accumulators Z12, Z13.
func (g *gen) qgemvQ3_K512() {
	g.qgemv("qgemvQ3_K", 110, 256, 64, func() {
		g.p("\tVMOVDQU32 q_3<>(SB), Z2")
		g.p("\tVMOVUPS q3lut<>(SB), Z3")
	}, func() {
		g.vzero(13)
		g.vzero(12)
	}, func() {
		g.q3kScales()
		for h := 0; h < 2; h++ {
			g.p("\tVPMOVZXBD %d(DI), Z7", 16*h) // hmask bytes of weights 16h..16h+15
			for n := 0; n < 2; n++ {
				g.p("\tVPMOVZXBD %d(DI), Z6", 32+32*n+16*h)
				for j := 0; j < 4; j++ {
					// A (Z0 or Z6): the pair at bits 0..1; B (Z1 or Z7): the
					// hmask bit 4n+j at bit 2. The merge overwrites a shifted
					// copy, never Z6 or Z7.
					a, b := 6, 7
					if j > 0 {
						g.p("\tVPSRLD $%d, Z6, Z0", 2*j)
						a = 0
					}
					switch sh := 4*n + j - 2; {
					case sh > 0:
						g.p("\tVPSRLD $%d, Z7, Z1", sh)
						b = 1
					case sh < 0:
						g.p("\tVPSLLD $%d, Z7, Z1", -sh)
						b = 1
					}
					// mask ? A : B, into whichever of them is a copy.
					idx := 0
					if a == 0 {
						g.p("\tVPTERNLOGD $0xe4, Z2, Z%d, Z0", b)
					} else {
						g.p("\tVPTERNLOGD $0xd8, Z2, Z6, Z1")
						idx = 1
					}
					g.p("\tVPERMPS Z3, Z%d, Z0", idx)
					g.scaleAcc(0, 4*(128*n+32*j+16*h), 4*(8*n+2*j+h), 12+j%2)
				}
			}
		}
	}, func() { g.accFin512(false) })
}

// qgemvQ5_K512 is qgemvQ5_K at 16 lanes: the same bytes (q5kBytes), a
// 32-weight sub-block two vectors.
func (g *gen) qgemvQ5_K512() {
	g.qgemv("qgemvQ5_K", 176, 256, 192, func() {
		g.p("\tVMOVDQU b_0f<>(SB), Y15")
	}, func() {
		g.vzero(13)
		g.vzero(12)
		g.p("\tVXORPS Y11, Y11, Y11")
	}, func() {
		g.q4kScales()
		g.p("\tVFMADD231PS (DX), Y9, Y11")
		g.p("\tVMOVDQU 16(DI), Y10")
		g.p("\tVMOVDQU b_10<>(SB), Y14")
		g.q5kBytes(0, 64)
		for c := 0; c < 4; c++ { // chunk c's bytes are stored one chunk ahead
			if c < 3 {
				g.q5kBytes(c+1, 64+64*((c+1)%2))
			}
			at, xo := 64+64*(c%2), 4*64*c
			for i := 0; i < 4; i++ {
				g.p("\tVPMOVZXBD %d(SP), Z%d", at+16*i, i)
				g.p("\tVCVTDQ2PS Z%d, Z%d", i, i)
			}
			g.p("\tVMULPS %d(SI), Z0, Z0", xo)
			g.p("\tVFMADD231PS %d(SI), Z1, Z0", xo+64)
			g.p("\tVMULPS %d(SI), Z2, Z2", xo+128)
			g.p("\tVFMADD231PS %d(SI), Z3, Z2", xo+192)
			g.p("\tVBROADCASTSS %d(SP), Z8", 8*c)
			g.p("\tVBROADCASTSS %d(SP), Z9", 8*c+4)
			g.p("\tVFMADD231PS Z8, Z0, Z13")
			g.p("\tVFMADD231PS Z9, Z2, Z12")
		}
	}, func() { g.accFin512(true) })
}

func (g *gen) qgemvs() {
	g.f16tab = true
	g.qgemvQ8_0()
	g.qgemvQ4_0()
	for _, b := range legacyBlocks {
		g.qgemvLegacy(b)
	}
	g.qgemvIQ4_NL()
	g.f16tab = false
	g.qgemvIQ4_XS()
	g.qgemvQ2_K()
	g.qgemvQ3_K()
	g.qgemvQ5_K()
	g.qgemvQ4_K()
	g.qgemvQ6_K()
}

// qgemvFloats emits the GEMVs of a GGUF's float tensors, which stay in the
// file's mapping as the quantized ones do: F32, BF16 and F16 rows, widened
// exactly on load. A "block" is 64 weights (256 or 128 bytes, prefetched
// as the quantized blocks are) summed into four accumulators; the wrapper
// does each row's last k%64 in Go.
func (g *gen) qgemvFloats() {
	for _, t := range []struct {
		name string
		es   int // bytes per weight
		load func(mem string, r int)
	}{
		{"qgemvF32", 4, func(mem string, r int) { g.p("\tVMOVUPS %s, %s", mem, g.v(r)) }},
		{"qgemvBF16", 2, func(mem string, r int) {
			g.p("\tVPMOVZXWD %s, %s", mem, g.v(r))
			g.p("\tVPSLLD $16, %s, %s", g.v(r), g.v(r))
		}},
		{"qgemvF16", 2, func(mem string, r int) { g.p("\tVCVTPH2PS %s, %s", mem, g.v(r)) }},
	} {
		G := 64 / g.w // vectors per block
		g.qgemvX(t.name, 64*t.es, 64, 0, 0, func() {}, func() {
			for a := 12; a < 16; a++ {
				g.vzero(a)
			}
		}, func() {
			for i := 0; i < G; i++ {
				t.load(fmt.Sprintf("%d(DI)", i*g.w*t.es), i)
			}
			for i := 0; i < G; i++ {
				g.p("\tVFMADD231PS %d(SI), %s, %s", i*g.vb(), g.v(i), g.v(12+i%4))
			}
		}, func() {
			g.p("\tVADDPS %s, %s, %s", g.v(13), g.v(12), g.v(12))
			g.p("\tVADDPS %s, %s, %s", g.v(15), g.v(14), g.v(14))
			g.p("\tVADDPS %s, %s, %s", g.v(14), g.v(12), g.v(12))
			g.toY(12, 0)
			g.hsumY(12, 0)
			g.p("\tVMOVAPS X12, X0")
		})
	}
}

// Exact dequantization kernels: the same unpacking as the GEMVs, each
// float quant multiplied by its rounded float32 scale (and a rounded min
// subtracted after), as ggml and dequantizeRowRef do, and stored.
//
// func dequantT(dst *float32, w *byte, nb int)
func (g *gen) dequant(name string, blockBytes, blockW, frame int, setup, body func()) {
	g.text(name, fmt.Sprintf("$%d-24", frame))
	g.p("\tMOVQ dst+0(FP), R8")
	g.p("\tMOVQ w+8(FP), DI")
	g.p("\tMOVQ nb+16(FP), CX")
	setup()
	g.p("%s_blk:", name)
	body()
	g.p("\tADDQ $%d, DI", blockBytes)
	g.p("\tADDQ $%d, R8", 4*blockW)
	g.p("\tDECQ CX")
	g.p("\tJNZ %s_blk", name)
	g.ret()
}

func (g *gen) dequantQ8_0() {
	G := 32 / g.w
	g.dequant("dequantQ8_0", 34, 32, 0, func() {}, func() {
		g.f16Bcast("(DI)", 8, true)
		for i := 0; i < G; i++ {
			g.p("\tVPMOVSXBD %d(DI), %s", 2+i*g.w, g.v(i))
			g.p("\tVCVTDQ2PS %s, %s", g.v(i), g.v(i))
			g.p("\tVMULPS %s, %s, %s", g.v(8), g.v(i), g.v(i))
			g.p("\tVMOVUPS %s, %d(R8)", g.v(i), i*g.vb())
		}
	})
}

func (g *gen) dequantQ4_0() {
	G := 16 / g.w
	g.dequant("dequantQ4_0", 18, 32, 0, func() {
		g.p("\tVMOVUPS q_0f<>(SB), %s", g.v(15))
		g.p("\tVMOVUPS q_8i<>(SB), %s", g.v(14))
	}, func() {
		g.f16Bcast("(DI)", 8, true)
		for i := 0; i < G; i++ {
			g.p("\tVPMOVZXBD %d(DI), %s", 2+i*g.w, g.v(i))
			g.p("\tVPSRLD $4, %s, %s", g.v(i), g.v(4+i))
			g.vand(15, i, i)
			for _, r := range []int{i, 4 + i} {
				g.p("\tVPSUBD %s, %s, %s", g.v(14), g.v(r), g.v(r))
				g.p("\tVCVTDQ2PS %s, %s", g.v(r), g.v(r))
				g.p("\tVMULPS %s, %s, %s", g.v(8), g.v(r), g.v(r))
			}
			g.p("\tVMOVUPS %s, %d(R8)", g.v(i), i*g.vb())
			g.p("\tVMOVUPS %s, %d(R8)", g.v(4+i), 64+i*g.vb())
		}
	})
}

// dequantQ4_K: scales·d at 0(SP), mins·dmin at 32(SP) (see qgemvQ4_K).
func (g *gen) dequantQ4_K() {
	G := 32 / g.w
	g.dequant("dequantQ4_K", 144, 256, 64, func() {
		g.p("\tVMOVUPS q_0f<>(SB), %s", g.v(15))
	}, func() {
		g.q4kScales()
		g.p("\tVMOVUPS Y9, 32(SP)")
		for c := 0; c < 4; c++ {
			for i := 0; i < G; i++ {
				g.p("\tVPMOVZXBD %d(DI), %s", 16+32*c+i*g.w, g.v(i))
				g.p("\tVPSRLD $4, %s, %s", g.v(i), g.v(4+i))
				g.vand(15, i, i)
			}
			g.p("\tVBROADCASTSS %d(SP), %s", 8*c, g.v(8))
			g.p("\tVBROADCASTSS %d(SP), %s", 8*c+4, g.v(9))
			g.p("\tVBROADCASTSS %d(SP), %s", 32+8*c, g.v(10))
			g.p("\tVBROADCASTSS %d(SP), %s", 32+8*c+4, g.v(11))
			for i := 0; i < G; i++ {
				for h, r := range []int{i, 4 + i} {
					g.p("\tVCVTDQ2PS %s, %s", g.v(r), g.v(r))
					g.p("\tVMULPS %s, %s, %s", g.v(8+h), g.v(r), g.v(r))
					g.p("\tVSUBPS %s, %s, %s", g.v(10+h), g.v(r), g.v(r))
					g.p("\tVMOVUPS %s, %d(R8)", g.v(r), 4*(64*c+32*h)+i*g.vb())
				}
			}
		}
	})
}

// q4kScales leaves the 8 scales·d at 0(SP) and the 8 mins·dmin in Y9, from
// the Q4_K/Q5_K block at DI; clobbers AX, BX, R10, R13, R14, Y10, Y14.
func (g *gen) q4kScales() {
	g.p("\tMOVL 4(DI), AX")
	g.p("\tMOVL 8(DI), BX")
	g.p("\tMOVL 12(DI), R13")
	g.p("\tMOVL R13, R10")
	g.p("\tANDL $0x0f0f0f0f, R10")
	g.p("\tMOVL AX, R14")
	g.p("\tSHRL $2, R14")
	g.p("\tANDL $0x30303030, R14")
	g.p("\tORL R14, R10") // scales 4..7
	g.p("\tSHRL $4, R13")
	g.p("\tANDL $0x0f0f0f0f, R13")
	g.p("\tMOVL BX, R14")
	g.p("\tSHRL $2, R14")
	g.p("\tANDL $0x30303030, R14")
	g.p("\tORL R14, R13") // mins 4..7
	g.p("\tANDL $0x3f3f3f3f, AX")
	g.p("\tANDL $0x3f3f3f3f, BX")
	g.p("\tSHLQ $32, R10")
	g.p("\tORQ R10, AX")
	g.p("\tSHLQ $32, R13")
	g.p("\tORQ R13, BX")
	g.f16Bcast("(DI)", 14, false)
	g.f16Bcast("2(DI)", 10, false)
	g.p("\tVMOVQ AX, X9")
	g.p("\tVPMOVZXBD X9, Y9")
	g.p("\tVCVTDQ2PS Y9, Y9")
	g.p("\tVMULPS Y14, Y9, Y9")
	g.p("\tVMOVUPS Y9, (SP)")
	g.p("\tVMOVQ BX, X9")
	g.p("\tVPMOVZXBD X9, Y9")
	g.p("\tVCVTDQ2PS Y9, Y9")
	g.p("\tVMULPS Y10, Y9, Y9")
}

// q6kQuants leaves the four quant groups of lanes l of half n (minus 32,
// as int32) in V4..V7 (see qgemvQ6_K); clobbers V0..V3.
func (g *gen) q6kQuants(n, l int) {
	g.p("\tVPMOVZXBD %d(DI), %s", 64*n+l, g.v(0))
	g.p("\tVPMOVZXBD %d(DI), %s", 64*n+32+l, g.v(1))
	g.p("\tVPMOVZXBD %d(DI), %s", 128+32*n+l, g.v(2))
	g.p("\tVPSLLD $4, %s, %s", g.v(2), g.v(3))
	g.vand(14, 3, 3)
	g.vand(15, 0, 4)
	g.vor(3, 4, 4)
	g.p("\tVPSLLD $2, %s, %s", g.v(2), g.v(3))
	g.vand(14, 3, 3)
	g.vand(15, 1, 5)
	g.vor(3, 5, 5)
	g.vand(14, 2, 3)
	g.p("\tVPSRLD $4, %s, %s", g.v(0), g.v(6))
	g.vor(3, 6, 6)
	g.p("\tVPSRLD $2, %s, %s", g.v(2), g.v(3))
	g.vand(14, 3, 3)
	g.p("\tVPSRLD $4, %s, %s", g.v(1), g.v(7))
	g.vor(3, 7, 7)
	for q := 0; q < 4; q++ {
		g.p("\tVPSUBD %s, %s, %s", g.v(12), g.v(4+q), g.v(4+q))
		g.p("\tVCVTDQ2PS %s, %s", g.v(4+q), g.v(4+q))
	}
}

func (g *gen) dequantQ6_K() {
	g.dequant("dequantQ6_K", 210, 256, 32, func() {
		g.p("\tVMOVUPS q_0f<>(SB), %s", g.v(15))
		g.p("\tVMOVUPS q_30<>(SB), %s", g.v(14))
		g.p("\tVMOVUPS q_32<>(SB), %s", g.v(12))
	}, func() {
		g.f16Bcast("208(DI)", 13, false)
		for n := 0; n < 2; n++ {
			g.p("\tVPMOVSXBD %d(DI), Y9", 192+8*n)
			g.p("\tVCVTDQ2PS Y9, Y9")
			g.p("\tVMULPS Y13, Y9, Y9")
			g.p("\tVMOVUPS Y9, (SP)")
			for l := 0; l < 32; l += g.w {
				g.q6kQuants(n, l)
				is := l / 16
				for q := 0; q < 4; q++ {
					g.p("\tVBROADCASTSS %d(SP), %s", 4*(is+2*q), g.v(8))
					g.p("\tVMULPS %s, %s, %s", g.v(8), g.v(4+q), g.v(4+q))
					g.p("\tVMOVUPS %s, %d(R8)", g.v(4+q), 4*(128*n+32*q+l))
				}
			}
		}
	})
}

// dequantF16 widens n f16 values (n a multiple of the vector width).
// func dequantF16(dst *float32, w *byte, n int)
func (g *gen) dequantF16() {
	g.text("dequantF16", "$0-24")
	g.p("\tMOVQ dst+0(FP), R8")
	g.p("\tMOVQ w+8(FP), DI")
	g.p("\tMOVQ nb+16(FP), CX")
	g.p("dequantF16_loop:")
	g.p("\tVCVTPH2PS (DI), %s", g.v(0))
	g.p("\tVMOVUPS %s, (R8)", g.v(0))
	g.p("\tADDQ $%d, DI", 2*g.w)
	g.p("\tADDQ $%d, R8", 4*g.w)
	g.p("\tSUBQ $%d, CX", g.w)
	g.p("\tJNZ dequantF16_loop")
	g.ret()
}

// dequantLegacy: (q - off) converted and multiplied by d, or q·d rounded
// and then m added (ggml's order; no FMA). AVX2 only.
func (g *gen) dequantLegacy(b legacyBlock) {
	g.dequant("dequant"+b.name, b.bytes, 32, 0, func() {
		g.p("\tVMOVUPS q_0f<>(SB), Y15")
		g.p("\tVMOVUPS q_10<>(SB), Y14")
		if b.off > 0 {
			g.p("\tVMOVUPS q_%di<>(SB), Y13", b.off)
		}
	}, func() {
		g.legacyQuants(b)
		g.f16Bcast("(DI)", 8, true)
		if b.mOff > 0 {
			g.f16Bcast(fmt.Sprintf("%d(DI)", b.mOff), 12, true)
		}
		for i, r := range []int{0, 1, 4, 5} {
			if b.off > 0 {
				g.p("\tVPSUBD Y13, Y%d, Y%d", r, r)
			}
			g.p("\tVCVTDQ2PS Y%d, Y%d", r, r)
			g.p("\tVMULPS Y8, Y%d, Y%d", r, r)
			if b.mOff > 0 {
				g.p("\tVADDPS Y12, Y%d, Y%d", r, r)
			}
			g.p("\tVMOVUPS Y%d, %d(R8)", r, 32*i)
		}
	})
}

func (g *gen) dequants() {
	g.dequantQ8_0()
	g.dequantQ4_0()
	for _, b := range legacyBlocks {
		g.dequantLegacy(b)
	}
	g.dequantQ2_K()
	g.dequantQ3_K()
	g.dequantQ5_K()
	g.dequantQ4_K()
	g.dequantQ6_K()
	g.dequantF16()
}

// dequantQ5_K: as dequantQ4_K with q5kBytes' quants.
func (g *gen) dequantQ5_K() {
	g.dequant("dequantQ5_K", 176, 256, 128, func() {
		g.p("\tVMOVDQU b_0f<>(SB), Y15")
	}, func() {
		g.q4kScales()
		g.p("\tVMOVUPS Y9, 32(SP)")
		g.p("\tVMOVDQU 16(DI), Y10")
		g.p("\tVMOVDQU b_10<>(SB), Y14")
		for c := 0; c < 4; c++ {
			g.q5kBytes(c, 64)
			g.p("\tVBROADCASTSS %d(SP), Y8", 8*c)
			g.p("\tVBROADCASTSS %d(SP), Y9", 8*c+4)
			g.p("\tVBROADCASTSS %d(SP), Y11", 32+8*c)
			g.p("\tVBROADCASTSS %d(SP), Y12", 32+8*c+4)
			for i := 0; i < 8; i++ {
				h := i / 4
				g.p("\tVPMOVZXBD %d(SP), Y0", 64+8*i)
				g.p("\tVCVTDQ2PS Y0, Y0")
				g.p("\tVMULPS Y%d, Y0, Y0", 8+h)
				g.p("\tVSUBPS Y%d, Y0, Y0", 11+h)
				g.p("\tVMOVUPS Y0, %d(R8)", 4*64*c+32*i)
			}
		}
	})
}

// dequantQ3_K: each 16 weights' quants times their rounded scale·d.
func (g *gen) dequantQ3_K() {
	g.dequant("dequantQ3_K", 110, 256, 96, func() {}, func() {
		g.q3kScales()
		g.p("\tVMOVDQU b_03<>(SB), Y15")
		g.p("\tVMOVDQU b_04<>(SB), Y14")
		g.p("\tVMOVDQU (DI), Y10")
		for n := 0; n < 2; n++ {
			g.p("\tVMOVDQU %d(DI), Y%d", 32+32*n, 9+2*n)
			for j := 0; j < 4; j++ {
				g.q3kBytes(n, j, 64)
				g.widen32(true, 64)
				for i := 0; i < 4; i++ {
					g.p("\tVBROADCASTSS %d(SP), Y4", 4*(8*n+2*j+i/2))
					g.p("\tVMULPS Y4, Y%d, Y%d", i, i)
					g.p("\tVMOVUPS Y%d, %d(R8)", i, 4*(128*n+32*j)+32*i)
				}
			}
		}
	})
}

// dequantQ2_K: quants times the rounded scale·d, less the rounded min·dmin
// (mins at 96(SP)).
func (g *gen) dequantQ2_K() {
	g.dequant("dequantQ2_K", 84, 256, 160, func() {}, func() {
		g.q2kScales()
		g.p("\tVMOVUPS Y8, 96(SP)")
		g.p("\tVMOVUPS Y9, 128(SP)")
		g.p("\tVMOVDQU b_03<>(SB), Y15")
		for n := 0; n < 2; n++ {
			g.p("\tVMOVDQU %d(DI), Y9", 16+32*n)
			for j := 0; j < 4; j++ {
				g.bmask(9, 0, 2*j, 0, 15)
				g.p("\tVMOVDQU Y0, 64(SP)")
				g.widen32(false, 64)
				for i := 0; i < 4; i++ {
					is := 8*n + 2*j + i/2
					g.p("\tVBROADCASTSS %d(SP), Y4", 4*is)
					g.p("\tVBROADCASTSS %d(SP), Y5", 96+4*is)
					g.p("\tVMULPS Y4, Y%d, Y%d", i, i)
					g.p("\tVSUBPS Y5, Y%d, Y%d", i, i)
					g.p("\tVMOVUPS Y%d, %d(R8)", i, 4*(128*n+32*j)+32*i)
				}
			}
		}
	})
}

// Int8-activation kernels (q8act.go; AVX2: AVX-512 CPUs use these but for the
// VNNI ones of q8VNNI, Q8_0, Q4_0 and Q5_0):
// the activations come as int8 blocks of 32 (qs) with float32 scales (d)
// and, for Q4_K's mins, int32 block sums (s). A block's integer dot product
// is VPMADDUBSW (unsigned weight bytes × signed activations into int16
// pairs; no pair can saturate: at most 2·128·127) and VPMADDWD with ones
// (or, for Q6_K, the int16 scales) into 8 int32 lanes, converted to float
// once per block and multiplied by the weight and activation scales.
// Offset quants (Q4_0 -8, Q5_0 -16, Q6_K -32) subtract VPMADDUBSW of the
// offset with the same activations, in int16, before the widening.
//
// func q8dotT(dst *float32, qs *int8, d *float32, s *int32, w *byte, rb, nb, rows int)

func (g *gen) q8Consts() {
	for i := 0; i < 32; i += 8 {
		g.p("DATA w_1<>+%d(SB)/8, $0x0001000100010001", i)
	}
	g.p("GLOBL w_1<>(SB), RODATA|NOPTR, $32")
	// Q5_0: byte p of the broadcast qh dword selects byte p/8 (in each
	// 128-bit lane: the dword repeats) and tests bit p%8.
	for p := 0; p < 32; p++ {
		g.p("DATA q5idx<>+%d(SB)/1, $%d", p, (p%16)/8+2*(p/16))
		g.p("DATA q5bit<>+%d(SB)/1, $%d", p, 1<<(p%8))
	}
	g.p("GLOBL q5idx<>(SB), RODATA|NOPTR, $32")
	g.p("GLOBL q5bit<>(SB), RODATA|NOPTR, $32")
	// Q6_K: for quant group q, the low lane's words take int16 scale 2q,
	// the high lane's 2q+1 (both lanes hold the 8 scales of the half).
	for q := 0; q < 4; q++ {
		for p := 0; p < 32; p++ {
			w := 2 * q
			if p >= 16 {
				w++
			}
			g.p("DATA q6shuf<>+%d(SB)/1, $%d", 32*q+p, 2*w+p%2)
		}
	}
	g.p("GLOBL q6shuf<>(SB), RODATA|NOPTR, $128")
	for i, v := range []int{0, 4, 1, 5, 2, 6, 3, 7} {
		g.p("DATA q8perm<>+%d(SB)/4, $%d", 4*i, v)
	}
	g.p("GLOBL q8perm<>(SB), RODATA|NOPTR, $32")
	for i := 0; i < 8; i++ {
		g.p("DATA q8abs<>+%d(SB)/4, $0x7fffffff", 4*i)
		g.p("DATA q8max<>+%d(SB)/4, $0x%08x", 4*i, f32bits(127))
		g.p("DATA q8min<>+%d(SB)/4, $0x%08x", 4*i, f32bits(-127))
	}
	g.p("GLOBL q8abs<>(SB), RODATA|NOPTR, $32")
	g.p("DATA q8nan<>+0(SB)/4, $0x7fc00000")
	g.p("GLOBL q8nan<>(SB), RODATA|NOPTR, $4")
	g.p("GLOBL q8max<>(SB), RODATA|NOPTR, $32")
	g.p("GLOBL q8min<>(SB), RODATA|NOPTR, $32")
}

// q8dot emits the row and block loops: per row SI = qs, DX = d, and the
// running pointer into s at sOff(SP) (when sOff >= 0); per block DI = the
// weight block. Accumulators are zeroed by zero; fin leaves dst[j] in X0.
func (g *gen) q8dot(name string, blockBytes, blockW, frame, sOff int, setup, zero, body, fin func()) {
	g.text(name, fmt.Sprintf("$%d-64", frame))
	g.p("\tMOVQ dst+0(FP), R8")
	g.p("\tMOVQ w+32(FP), R12")
	g.p("\tMOVQ rb+40(FP), R9")
	g.p("\tMOVQ rows+56(FP), R11")
	setup()
	g.p("%s_row:", name)
	g.p("\tMOVQ qs+8(FP), SI")
	g.p("\tMOVQ d+16(FP), DX")
	if sOff >= 0 {
		g.p("\tMOVQ s+24(FP), AX")
		g.p("\tMOVQ AX, %d(SP)", sOff)
	}
	g.p("\tMOVQ R12, DI")
	g.p("\tMOVQ nb+48(FP), CX")
	zero()
	g.p("%s_blk:", name)
	for o := 0; o < blockBytes; o += 64 { // see q8dot32
		g.qprefetch(o)
	}
	body()
	g.p("\tADDQ $%d, DI", blockBytes)
	g.p("\tADDQ $%d, SI", blockW)
	g.p("\tADDQ $%d, DX", 4*blockW/32)
	if sOff >= 0 {
		g.p("\tADDQ $%d, %d(SP)", 4*blockW/32, sOff)
	}
	g.p("\tDECQ CX")
	g.p("\tJNZ %s_blk", name)
	fin()
	g.nextRow(name, 0)
}

// q8fin folds accumulators Y13 (+ Y10) into X0.
func (g *gen) q8fin(two bool) func() {
	return func() {
		if two {
			g.p("\tVADDPS Y10, Y13, Y13")
		}
		g.hsumY(13, 0)
		g.p("\tVMOVAPS X13, X0")
	}
}

// q8dot32 is q8dot for the 32-weight block types, in two parts per block:
// shared (the activation loads and what is computed from them alone) and
// row (one weight block at DI into the accumulator Y13). Each block
// prefetches the weights qPrefetch bytes ahead: without it, streaming rows
// from memory ran slower than the float32-activation kernel (AMD EPYC, AVX2,
// 49152×576 Q8_0: 0.6–0.9×, with 512 bytes ahead 1.2×). Two weight rows at a time,
// sharing the activation loads, were faster in cache but slower streaming.
func (g *gen) q8dot32(name string, blockBytes int, setup func(), shared func(), row func(mem func(off int) string, acc int)) {
	g.text(name, "$0-64")
	g.p("\tMOVQ dst+0(FP), R8")
	g.p("\tMOVQ w+32(FP), R12")
	g.p("\tMOVQ rb+40(FP), R9")
	g.p("\tMOVQ rows+56(FP), R11")
	setup()
	mem := func(off int) string { return fmt.Sprintf("%d(DI)", off) }
	g.p("%s_row:", name)
	g.p("\tMOVQ qs+8(FP), SI")
	g.p("\tMOVQ d+16(FP), DX")
	g.p("\tMOVQ R12, DI")
	g.p("\tMOVQ nb+48(FP), CX")
	g.vzero(13)
	g.p("%s_blk:", name)
	g.qprefetch(0)
	shared()
	row(mem, 13)
	g.p("\tADDQ $%d, DI", blockBytes)
	g.p("\tADDQ $32, SI")
	g.p("\tADDQ $4, DX")
	g.p("\tDECQ CX")
	g.p("\tJNZ %s_blk", name)
	g.hsumY(13, 0)
	g.nextRow(name, 13)
}

// q8_0 × q8: |w| against the activations with w's signs (Y1: the
// activations, Y9: their scale).
func (g *gen) q8dotQ8_0() {
	g.q8dot32("q8dotQ8_0", 34, func() {
		g.p("\tVMOVDQU w_1<>(SB), Y12")
	}, func() {
		g.p("\tVMOVDQU (SI), Y1")
		g.p("\tVBROADCASTSS (DX), Y9")
	}, func(mem func(int) string, acc int) {
		g.p("\tVMOVDQU %s, Y0", mem(2))
		g.p("\tVPSIGNB Y0, Y1, Y4")
		g.p("\tVPABSB Y0, Y0")
		g.p("\tVPMADDUBSW Y4, Y0, Y2")
		g.p("\tVPMADDWD Y12, Y2, Y2")
		g.p("\tVCVTDQ2PS Y2, Y2")
		g.f16Bcast(mem(0), 8, false)
		g.p("\tVMULPS Y9, Y8, Y8")
		g.p("\tVFMADD231PS Y8, Y2, Y%d", acc)
	})
}

// q8dotLegacy: Q4_0 (nibbles at 2, offset 8) and Q5_0 (qh at 2, nibbles at
// 6, offset 16). Y0 gets the 32 quants in weight order: the low nibbles in
// the low lane, the high nibbles in the high lane. Shared per block: the
// activations (Y1), the offset times them (Y3), their scale (Y9).
func (g *gen) q8dotLegacy(name string, bytes, qsOff int, q5 bool) {
	g.q8dot32(name, bytes, func() {
		g.p("\tVMOVDQU w_1<>(SB), Y12")
		g.p("\tVMOVDQU b_0f<>(SB), Y15")
		if q5 {
			g.p("\tVMOVDQU b_10<>(SB), Y11")
			g.p("\tVMOVDQU q5idx<>(SB), Y6")
			g.p("\tVMOVDQU q5bit<>(SB), Y7")
		} else {
			g.p("\tVMOVDQU b_08<>(SB), Y11")
		}
	}, func() {
		g.p("\tVMOVDQU (SI), Y1")
		g.p("\tVPMADDUBSW Y1, Y11, Y3")
		g.p("\tVBROADCASTSS (DX), Y9")
	}, func(mem func(int) string, acc int) {
		g.p("\tVMOVDQU %s, X0", mem(qsOff))
		g.p("\tVPSRLW $4, X0, X2")
		g.p("\tVINSERTI128 $1, X2, Y0, Y0")
		g.p("\tVPAND Y15, Y0, Y0")
		if q5 {
			g.p("\tVPBROADCASTD %s, Y5", mem(2))
			g.p("\tVPSHUFB Y6, Y5, Y5")
			g.p("\tVPAND Y7, Y5, Y5")
			g.p("\tVPCMPEQB Y7, Y5, Y5")
			g.p("\tVPAND Y11, Y5, Y5")
			g.p("\tVPOR Y5, Y0, Y0")
		}
		g.p("\tVPMADDUBSW Y1, Y0, Y2")
		g.p("\tVPSUBW Y3, Y2, Y2")
		g.p("\tVPMADDWD Y12, Y2, Y2")
		g.p("\tVCVTDQ2PS Y2, Y2")
		g.f16Bcast(mem(0), 8, false)
		g.p("\tVMULPS Y9, Y8, Y8")
		g.p("\tVFMADD231PS Y8, Y2, Y%d", acc)
	})
}

// q8dotQ4_K: q4kScales leaves scales·d at 0(SP) and Y9 = mins·dmin; both
// are multiplied by the 8 activation scales of the superblock, the mins
// also by the 8 block sums (into Y11, subtracted at the end). Sub-block
// 2c takes the low nibbles of bytes 32c.., 2c+1 the high (accumulators Y13
// and Y6: q4kScales clobbers Y9, Y10 and Y14).
func (g *gen) q8dotQ4_K() {
	g.q8dot("q8dotQ4_K", 144, 256, 40, 32, func() {
		g.p("\tVMOVDQU w_1<>(SB), Y12")
		g.p("\tVMOVDQU b_0f<>(SB), Y15")
	}, func() {
		g.vzero(13)
		g.vzero(6)
		g.vzero(11)
	}, func() {
		g.q4kScales()
		g.p("\tVMOVUPS (DX), Y8")
		g.p("\tVMULPS (SP), Y8, Y7")
		g.p("\tVMOVUPS Y7, (SP)")
		g.p("\tVMULPS Y8, Y9, Y9")
		g.p("\tMOVQ 32(SP), AX")
		g.p("\tVCVTDQ2PS (AX), Y7")
		g.p("\tVFMADD231PS Y7, Y9, Y11")
		for c := 0; c < 4; c++ {
			g.p("\tVMOVDQU %d(DI), Y0", 16+32*c)
			g.p("\tVPSRLW $4, Y0, Y1")
			g.p("\tVPAND Y15, Y0, Y0")
			g.p("\tVPAND Y15, Y1, Y1")
			g.p("\tVPMADDUBSW %d(SI), Y0, Y2", 64*c)
			g.p("\tVPMADDUBSW %d(SI), Y1, Y3", 64*c+32)
			g.p("\tVPMADDWD Y12, Y2, Y2")
			g.p("\tVPMADDWD Y12, Y3, Y3")
			g.p("\tVCVTDQ2PS Y2, Y2")
			g.p("\tVCVTDQ2PS Y3, Y3")
			g.p("\tVBROADCASTSS %d(SP), Y4", 8*c)
			g.p("\tVBROADCASTSS %d(SP), Y5", 8*c+4)
			g.p("\tVFMADD231PS Y4, Y2, Y13")
			g.p("\tVFMADD231PS Y5, Y3, Y6")
		}
	}, func() {
		g.p("\tVADDPS Y6, Y13, Y13")
		g.p("\tVSUBPS Y11, Y13, Y13")
		g.hsumY(13, 0)
		g.p("\tVMOVAPS X13, X0")
	})
}

// q8dotQ6_K: per half n, quant group q (32 weights, activation block
// 4n+q) = ql low/high nibbles | two qh bits << 4, minus 32 (as a
// VPMADDUBSW of 32 with the activations); VPMADDWD with the group's two
// int16 scales (q6shuf) sums into int32; d·d_x per group from 0(SP).
func (g *gen) q8dotQ6_K() {
	g.q8dot("q8dotQ6_K", 210, 256, 32, -1, func() {
		g.p("\tVMOVDQU b_0f<>(SB), Y15")
		g.p("\tVMOVDQU b_30<>(SB), Y14")
		g.p("\tVMOVDQU b_20<>(SB), Y11")
	}, func() {
		g.vzero(13)
		g.vzero(10)
	}, func() {
		g.f16Bcast("208(DI)", 9, false)
		g.p("\tVMULPS (DX), Y9, Y9")
		g.p("\tVMOVUPS Y9, (SP)")
		for n := 0; n < 2; n++ {
			g.p("\tVPMOVSXBW %d(DI), X7", 192+8*n)
			g.p("\tVINSERTI128 $1, X7, Y7, Y7")
			g.p("\tVMOVDQU %d(DI), Y0", 64*n)
			g.p("\tVMOVDQU %d(DI), Y1", 64*n+32)
			g.p("\tVMOVDQU %d(DI), Y2", 128+32*n)
			for q := 0; q < 4; q++ {
				ql := 0
				if q%2 == 1 {
					ql = 1
				}
				if q < 2 {
					g.p("\tVPAND Y15, Y%d, Y3", ql)
				} else {
					g.p("\tVPSRLW $4, Y%d, Y3", ql)
					g.p("\tVPAND Y15, Y3, Y3")
				}
				switch q {
				case 0:
					g.p("\tVPSLLW $4, Y2, Y8")
					g.p("\tVPAND Y14, Y8, Y8")
				case 1:
					g.p("\tVPSLLW $2, Y2, Y8")
					g.p("\tVPAND Y14, Y8, Y8")
				case 2:
					g.p("\tVPAND Y14, Y2, Y8")
				case 3:
					g.p("\tVPSRLW $2, Y2, Y8")
					g.p("\tVPAND Y14, Y8, Y8")
				}
				g.p("\tVPOR Y8, Y3, Y3")
				xo := 128*n + 32*q
				g.p("\tVMOVDQU %d(SI), Y4", xo)
				g.p("\tVPMADDUBSW Y4, Y3, Y5")
				g.p("\tVPMADDUBSW Y4, Y11, Y6")
				g.p("\tVPSUBW Y6, Y5, Y5")
				g.p("\tVPSHUFB q6shuf<>+%d(SB), Y7, Y6", 32*q)
				g.p("\tVPMADDWD Y6, Y5, Y5")
				g.p("\tVCVTDQ2PS Y5, Y5")
				g.p("\tVBROADCASTSS %d(SP), Y6", 4*(4*n+q))
				g.p("\tVFMADD231PS Y6, Y5, Y%d", []int{13, 10}[q%2])
			}
		}
	}, g.q8fin(true))
}

// quantQ8: nb blocks of 32 floats at SI into int8 at DI, d at DX, s at R10:
// d = max|x|/127 (NaN when the block holds a NaN), q = x/d rounded to even
// (NaN lanes, from 0/0 or a NaN, zeroed; ±Inf clamped to ±127), s = Σq.
//
// func quantQ8AVX2(qs *int8, d *float32, s *int32, x *float32, nb int)
func (g *gen) quantQ8() {
	g.text("quantQ8", "$0-40")
	g.p("\tMOVQ qs+0(FP), DI")
	g.p("\tMOVQ d+8(FP), DX")
	g.p("\tMOVQ s+16(FP), R10")
	g.p("\tMOVQ x+24(FP), SI")
	g.p("\tMOVQ nb+32(FP), CX")
	g.p("\tVMOVUPS q8abs<>(SB), Y15")
	g.p("\tVMOVUPS q8max<>(SB), Y14")
	g.p("\tVMOVUPS q8min<>(SB), Y13")
	g.p("\tVMOVDQU q8perm<>(SB), Y12")
	g.p("\tTESTQ CX, CX")
	g.p("\tJZ quantQ8_done")
	g.p("quantQ8_blk:")
	for i := 0; i < 4; i++ {
		g.p("\tVMOVUPS %d(SI), Y%d", 32*i, i)
		g.p("\tVANDPS Y15, Y%d, Y%d", i, 4+i)
	}
	// AX: a lane mask of NaNs (such a block gets d = NaN, as the reference).
	g.p("\tVCMPPS $3, Y0, Y0, Y8")
	for i := 1; i < 4; i++ {
		g.p("\tVCMPPS $3, Y%d, Y%d, Y9", i, i)
		g.p("\tVORPS Y9, Y8, Y8")
	}
	g.p("\tVMOVMSKPS Y8, AX")
	g.p("\tVMAXPS Y5, Y4, Y4")
	g.p("\tVMAXPS Y7, Y6, Y6")
	g.p("\tVMAXPS Y6, Y4, Y4")
	g.p("\tVEXTRACTF128 $1, Y4, X5")
	g.p("\tVMAXPS X5, X4, X4")
	g.p("\tVPERMILPS $0x4e, X4, X5")
	g.p("\tVMAXPS X5, X4, X4")
	g.p("\tVPERMILPS $0xb1, X4, X5")
	g.p("\tVMAXPS X5, X4, X4")
	g.p("\tVDIVSS X14, X4, X4") // X14's low lane is 127
	g.p("\tTESTL AX, AX")
	g.p("\tJZ quantQ8_d")
	g.p("\tVMOVSS q8nan<>(SB), X4")
	g.p("quantQ8_d:")
	g.p("\tVMOVSS X4, (DX)")
	g.p("\tVBROADCASTSS X4, Y4")
	for i := 0; i < 4; i++ {
		g.p("\tVDIVPS Y4, Y%d, Y%d", i, i)
		g.p("\tVCMPPS $7, Y%d, Y%d, Y5", i, i) // ordered: not NaN
		g.p("\tVANDPS Y5, Y%d, Y%d", i, i)
		g.p("\tVMINPS Y14, Y%d, Y%d", i, i)
		g.p("\tVMAXPS Y13, Y%d, Y%d", i, i)
		g.p("\tVCVTPS2DQ Y%d, Y%d", i, i)
	}
	g.p("\tVPADDD Y1, Y0, Y4")
	g.p("\tVPADDD Y3, Y2, Y5")
	g.p("\tVPADDD Y5, Y4, Y4")
	g.p("\tVEXTRACTI128 $1, Y4, X5")
	g.p("\tVPADDD X5, X4, X4")
	g.p("\tVPSHUFD $0x4e, X4, X5")
	g.p("\tVPADDD X5, X4, X4")
	g.p("\tVPSHUFD $0xb1, X4, X5")
	g.p("\tVPADDD X5, X4, X4")
	g.p("\tVMOVD X4, (R10)")
	g.p("\tVPACKSSDW Y1, Y0, Y0")
	g.p("\tVPACKSSDW Y3, Y2, Y2")
	g.p("\tVPACKSSWB Y2, Y0, Y0")
	g.p("\tVPERMD Y0, Y12, Y0")
	g.p("\tVMOVDQU Y0, (DI)")
	g.p("\tADDQ $128, SI")
	g.p("\tADDQ $32, DI")
	g.p("\tADDQ $4, DX")
	g.p("\tADDQ $4, R10")
	g.p("\tDECQ CX")
	g.p("\tJNZ quantQ8_blk")
	g.p("quantQ8_done:")
	g.ret()
}

// Int8-activation kernels with AVX-512 VNNI (VPDPBUSD: unsigned bytes ×
// signed bytes, four products summed into each int32 lane), two 32-weight
// blocks per zmm: lanes 0–7 hold block b's sums, lanes 8–15 block b+1's.
// The weights enter as unsigned bytes (Q4_0: the nibbles; Q8_0: w+128), so
// each lane starts from the activations' lane sums (q8Row.p, negated) times
// the offset (8; 128), and ends as Σ (q−offset)·x exactly in int32. The
// lane scale is the weight block's f16 d times q8Row.dx (the activation
// block's scale, one per lane).
//
// func q8dotT(dst *float32, qs *int8, p *int32, dx *float32, w *byte, rb, nb, rows int)
func (g *gen) q8VNNI() {
	g.q8dotVNNI("q8dotQ4_0VNNI", 18, 3, func() {
		// Z0 = [lo(q0), hi(q0), lo(q1), hi(q1)]: each block's 16 bytes in two
		// lanes, the odd lanes' words shifted right by 4 (mask K1), then & 0x0f.
		g.p("\tVBROADCASTI32X4 2(DI), Z0")
		g.p("\tVINSERTI32X4 $2, 20(DI), Z0, Z0")
		g.p("\tVINSERTI32X4 $3, 20(DI), Z0, Z0")
		g.p("\tVPSRLW $4, Z0, K1, Z0")
		g.p("\tVPANDD Z15, Z0, Z0")
	}, func() {
		g.p("\tVMOVDQU 2(DI), X0")
		g.p("\tVPSRLW $4, X0, X1")
		g.p("\tVINSERTI128 $1, X1, Y0, Y0")
		g.p("\tVPANDD Y15, Y0, Y0")
	}, func() {
		g.p("\tMOVL $0x0f0f0f0f, AX")
		g.p("\tVPBROADCASTD AX, Z15")
		g.p("\tMOVL $0xff00ff00, AX")
		g.p("\tKMOVD AX, K1")
	})
	g.q8dotVNNI("q8dotQ5_0VNNI", 22, 4, func() {
		// As Q4_0's nibbles (at 6), then 16 added to the bytes whose bit
		// is set in the blocks' qh (at 2 and 24): mask K2, 64 bits.
		g.p("\tVBROADCASTI32X4 6(DI), Z0")
		g.p("\tVINSERTI32X4 $2, 28(DI), Z0, Z0")
		g.p("\tVINSERTI32X4 $3, 28(DI), Z0, Z0")
		g.p("\tVPSRLW $4, Z0, K1, Z0")
		g.p("\tVPANDD Z15, Z0, Z0")
		g.p("\tMOVL 2(DI), AX")
		g.p("\tMOVL 24(DI), R13")
		g.p("\tSHLQ $32, R13")
		g.p("\tORQ R13, AX")
		g.p("\tKMOVQ AX, K2")
		g.p("\tVPADDB Z14, Z0, K2, Z0")
	}, func() {
		g.p("\tVMOVDQU 6(DI), X0")
		g.p("\tVPSRLW $4, X0, X1")
		g.p("\tVINSERTI128 $1, X1, Y0, Y0")
		g.p("\tVPANDD Y15, Y0, Y0")
		g.p("\tKMOVD 2(DI), K2")
		g.p("\tVPADDB Y14, Y0, K2, Y0")
	}, func() {
		g.p("\tMOVL $0x0f0f0f0f, AX")
		g.p("\tVPBROADCASTD AX, Z15")
		g.p("\tMOVL $0x10101010, AX")
		g.p("\tVPBROADCASTD AX, Z14")
		g.p("\tMOVL $0xff00ff00, AX")
		g.p("\tKMOVD AX, K1")
	})
	g.q8dotVNNI("q8dotQ8_0VNNI", 34, 7, func() {
		g.p("\tVMOVDQU 2(DI), Y0")
		g.p("\tVINSERTI64X4 $1, 36(DI), Z0, Z0")
		g.p("\tVPXORD Z15, Z0, Z0")
	}, func() {
		g.p("\tVMOVDQU 2(DI), Y0")
		g.p("\tVPXORD Y15, Y0, Y0")
	}, func() {
		g.p("\tMOVL $0x80808080, AX")
		g.p("\tVPBROADCASTD AX, Z15")
	})
}

// q8dotVNNI emits one VNNI kernel for blocks of bb bytes (f16 d first) with
// offset 1<<shift: pair leaves two blocks' unsigned quants at DI in Z0,
// one the last (odd) block's in Y0. Per row: SI = qs, BX = p, DX = dx.
func (g *gen) q8dotVNNI(name string, bb, shift int, pair, one, setup func()) {
	g.p("")
	g.p("TEXT ·%s(SB), NOSPLIT, $0-64", name)
	g.p("\tMOVQ dst+0(FP), R8")
	g.p("\tMOVQ w+32(FP), R12")
	g.p("\tMOVQ rb+40(FP), R9")
	g.p("\tMOVQ rows+56(FP), R11")
	setup()
	g.p("%s_row:", name)
	g.p("\tMOVQ qs+8(FP), SI")
	g.p("\tMOVQ p+16(FP), BX")
	g.p("\tMOVQ dx+24(FP), DX")
	g.p("\tMOVQ R12, DI")
	g.p("\tMOVQ nb+48(FP), CX")
	g.p("\tVPXORD Z13, Z13, Z13")
	g.p("\tSHRQ $1, CX")
	g.p("\tJZ %s_odd", name)
	g.p("%s_blk:", name)
	for o := 0; o < 2*bb; o += 64 {
		g.qprefetch(o)
	}
	pair()
	g.p("\tVPSLLD $%d, (BX), Z2", shift)
	g.p("\tVPDPBUSD (SI), Z0, Z2")
	g.p("\tVCVTDQ2PS Z2, Z2")
	g.p("\tVPBROADCASTW (DI), Y8")
	g.p("\tVPBROADCASTW %d(DI), Y9", bb)
	g.p("\tVINSERTI128 $1, X9, Y8, Y8")
	g.p("\tVCVTPH2PS Y8, Z8")
	g.p("\tVMULPS (DX), Z8, Z8")
	g.p("\tVFMADD231PS Z8, Z2, Z13")
	g.p("\tADDQ $%d, DI", 2*bb)
	g.p("\tADDQ $64, SI")
	g.p("\tADDQ $64, BX")
	g.p("\tADDQ $64, DX")
	g.p("\tDECQ CX")
	g.p("\tJNZ %s_blk", name)
	g.p("%s_odd:", name)
	// Fold to 8 lanes first: the 256-bit ops below zero the upper half.
	g.p("\tVEXTRACTF64X4 $1, Z13, Y0")
	g.p("\tVADDPS Y0, Y13, Y13")
	g.p("\tTESTQ $1, nb+48(FP)")
	g.p("\tJZ %s_sum", name)
	one()
	g.p("\tVPSLLD $%d, (BX), Y2", shift)
	g.p("\tVPDPBUSD (SI), Y0, Y2")
	g.p("\tVCVTDQ2PS Y2, Y2")
	g.p("\tVPBROADCASTW (DI), X8")
	g.p("\tVCVTPH2PS X8, Y8")
	g.p("\tVMULPS (DX), Y8, Y8")
	g.p("\tVFMADD231PS Y8, Y2, Y13")
	g.p("%s_sum:", name)
	g.hsumY(13, 0)
	g.nextRow(name, 13)
}

// accRows: dst[0:d] += weight[r] · table[r·d : r·d+d] for each r in rows,
// in order, one FMA per element and row (Axpy row by row, bit for bit), 64
// columns at a time in four accumulators (d a multiple of 64). AVX-512 only:
// the routing encoder's weighted mean of feature rows, a few thousand rows
// of 64 floats, where a call per row cost more than its arithmetic.
//
// func accRowsAVX512(dst, table, weight *float32, rows *uint32, n, d int)
func (g *gen) accRows() {
	g.p("")
	g.p("TEXT ·accRowsAVX512(SB), NOSPLIT, $0-48")
	g.p("\tMOVQ dst+0(FP), R8")
	g.p("\tMOVQ table+8(FP), R9")
	g.p("\tMOVQ weight+16(FP), R10")
	g.p("\tMOVQ d+40(FP), R12")
	g.p("\tSHLQ $2, R12")  // row bytes
	g.p("\tXORQ R13, R13") // column byte offset
	g.p("accRows_chunk:")
	for j := 0; j < 4; j++ {
		g.p("\tVMOVUPS %d(R8)(R13*1), Z%d", 64*j, j)
	}
	g.p("\tMOVQ rows+24(FP), SI")
	g.p("\tMOVQ n+32(FP), CX")
	g.p("\tTESTQ CX, CX")
	g.p("\tJZ accRows_store")
	g.p("accRows_row:")
	g.p("\tMOVL (SI), AX")
	g.p("\tVBROADCASTSS (R10)(AX*4), Z8")
	g.p("\tIMULQ R12, AX")
	g.p("\tADDQ R9, AX")
	g.p("\tADDQ R13, AX")
	for j := 0; j < 4; j++ {
		g.p("\tVFMADD231PS %d(AX), Z8, Z%d", 64*j, j)
	}
	g.p("\tADDQ $4, SI")
	g.p("\tDECQ CX")
	g.p("\tJNZ accRows_row")
	g.p("accRows_store:")
	for j := 0; j < 4; j++ {
		g.p("\tVMOVUPS Z%d, %d(R8)(R13*1)", j, 64*j)
	}
	g.p("\tADDQ $256, R13")
	g.p("\tCMPQ R13, R12")
	g.p("\tJB accRows_chunk")
	g.ret()
}

// axpyRows: y[0:d] += Σ_j a[j] · b[j·ldb : j·ldb+d] over j < r, in order,
// one FMA per element and row (Axpy row by row, bit for bit), four vectors
// of columns at a time, then one; d a multiple of the vector width, r ≥ 1.
// With kind BF16 or F16, b's rows are bfloat16 or IEEE half, widened
// exactly in registers. An unmerged LoRA's decode delta y += (s·B)ᵀ-rows
// weighted by x·Aᵀ: y stays in registers across the rank, instead of a
// load and store per rank.
//
// With 0 < split < r the rows go in two parts, [0, split) and [split, r),
// each summed from zero in its own registers and then added to y: the
// bits of AxpyRows of each part into a zeroed buffer followed by Add (a
// delta computed in parts, one pass over b).
//
// Each row's visit prefetches its bytes axPrefetch ahead: the rows are
// decode factors streamed from memory once per step, and the hardware
// prefetcher alone left the loop waiting on them.
//
// func axpyRows(y *float32, d int, b *float32, ldb int, a *float32, r, split int)
// func axpyRowsBF16(y *float32, d int, b *uint16, ldb int, a *float32, r, split int)
// func axpyRowsF16(y *float32, d int, b *uint16, ldb int, a *float32, r, split int)
func (g *gen) axpyRows(kind string) {
	name, es := "axpyRows"+kind, 4 // element bytes of b
	if kind != "" {
		es = 2
	}
	g.text(name, "$0-56")
	g.p("\tMOVQ y+0(FP), DI")
	g.p("\tMOVQ d+8(FP), CX")
	g.p("\tMOVQ b+16(FP), SI")
	g.p("\tMOVQ ldb+24(FP), R9")
	g.p("\tSHLQ $%d, R9", es/2) // row bytes
	g.p("\tMOVQ a+32(FP), R10")
	g.p("\tMOVQ r+40(FP), R11")
	g.p("\tMOVQ split+48(FP), R12")
	g.p("\tMOVQ R11, R13")
	g.p("\tSUBQ R12, R13") // rows of the second part
	vb := g.vb() * es / 4  // bytes of b per vector of y
	for _, n := range []int{4, 1} {
		l := fmt.Sprintf("%s_%d", name, n)
		// rows emits the loop over DX rows from AX (b) and BX (a) into
		// registers acc…acc+n-1.
		rows := func(tag string, acc int) {
			g.p("%s_%s:", l, tag)
			if n == 4 {
				for o := 0; o < n*vb; o += 64 {
					g.p("\tPREFETCHT0 %d(AX)", axPrefetch+o)
				}
			}
			g.p("\tVBROADCASTSS (BX), %s", g.v(8))
			for j := 0; j < n; j++ {
				switch kind {
				case "BF16":
					g.p("\tVPMOVZXWD %d(AX), %s", j*vb, g.v(4+j))
					g.p("\tVPSLLD $16, %s, %s", g.v(4+j), g.v(4+j))
					g.p("\tVFMADD231PS %s, %s, %s", g.v(8), g.v(4+j), g.v(acc+j))
				case "F16":
					g.p("\tVCVTPH2PS %d(AX), %s", j*vb, g.v(4+j))
					g.p("\tVFMADD231PS %s, %s, %s", g.v(8), g.v(4+j), g.v(acc+j))
				default:
					g.p("\tVFMADD231PS %d(AX), %s, %s", j*vb, g.v(8), g.v(acc+j))
				}
			}
			g.p("\tADDQ R9, AX")
			g.p("\tADDQ $4, BX")
			g.p("\tDECQ DX")
			g.p("\tJNZ %s_%s", l, tag)
		}
		g.p("%s:", l)
		g.p("\tCMPQ CX, $%d", n*g.w)
		g.p("\tJB %s_end", l)
		for j := 0; j < n; j++ {
			g.p("\tVMOVUPS %d(DI), %s", j*g.vb(), g.v(j))
		}
		g.p("\tMOVQ SI, AX")
		g.p("\tMOVQ R10, BX")
		g.p("\tTESTQ R12, R12")
		g.p("\tJNZ %s_parts", l)
		g.p("\tMOVQ R11, DX")
		rows("row", 0)
		g.p("\tJMP %s_store", l)
		g.p("%s_parts:", l)
		for part, cnt := range []string{"R12", "R13"} {
			for j := 0; j < n; j++ {
				g.vzero(9 + j)
			}
			g.p("\tMOVQ %s, DX", cnt)
			rows(fmt.Sprintf("part%d", part), 9)
			for j := 0; j < n; j++ {
				g.p("\tVADDPS %s, %s, %s", g.v(9+j), g.v(j), g.v(j))
			}
		}
		g.p("%s_store:", l)
		for j := 0; j < n; j++ {
			g.p("\tVMOVUPS %s, %d(DI)", g.v(j), j*g.vb())
		}
		g.p("\tADDQ $%d, DI", n*g.vb())
		g.p("\tADDQ $%d, SI", n*vb)
		g.p("\tSUBQ $%d, CX", n*g.w)
		g.p("\tJMP %s", l)
		g.p("%s_end:", l)
	}
	g.ret()
}

// axPrefetch is how far ahead (bytes) axpyRows prefetches each row of b.
// Xeon (KVM, 2 vCPUs), a rank-16 float16 delta over the 135M shape's seven
// projections right after a base decode step: 1.19 → 0.97 ms at 512
// bytes ahead, 1.04 at 1 KiB.
const axPrefetch = 512

func (g *gen) q8Kernels() {
	g.quantQ8()
	g.q8dotQ8_0()
	g.q8dotLegacy("q8dotQ4_0", 18, 2, false)
	g.q8dotLegacy("q8dotQ5_0", 22, 6, true)
	g.q8dotQ4_K()
	g.q8dotQ6_K()
}
