package kernels

import "fmt"

// decodeBlock is the most weight bytes one decode GEMV block streams.
const decodeBlock = 64 << 10

// MatMulT driver: dst[m,n] = x[m,k]·w[n,k]ᵀ. The output is cut into blocks
// (mb rows of x × nb rows of w) that the pool claims one at a time. Inside a
// block, an nr-row group of w stays in L1 while the mr-row tiles of x sweep
// past it from L2; very long k is cut into kc slices so both stay cached.
//
// bf16 weights take one of two routes per block: few rows of x (decode) run
// micro-kernels that widen w on load, so only the bf16 bytes stream from
// memory; many rows (prefill) widen a panel of w once into a per-thread f32
// scratch and run the f32 micro-kernels over it.
//
// Blocks with at least packMinM rows (prefill) go to the packed GEMM instead
// (packed.go) where the kernel set has one; decode keeps the tiles above.

const (
	kcMax = 2048 // longest k slice per tile pass
	// bf16Direct: blocks with at most this many x rows widen w in the
	// micro-kernel; more rows widen a panel once and run the f32 kernels
	// (measured on the whole model: 32 made batch-32 decode 1.1–1.2× slower).
	bf16Direct = 8
)

func matMulT(im *impl, dst, x, w []float32, m, n, k int) {
	matMulTStrided(im, dst, n, x, k, w, nil, k, m, n, k)
}

// span is the length a strided [rows, cols] matrix with leading dimension ld occupies.
func span(rows, cols, ld int) int {
	if rows == 0 || cols == 0 {
		return 0
	}
	return (rows-1)*ld + cols
}

// gemmTask is one parallel MatMulT: the pool's runner, recycled so that a
// call allocates nothing.
type gemmTask struct {
	im       *impl
	dst      []float32
	x, w     []float32
	wb       []uint16 // bf16 weights when w is nil
	wq       QMatrix  // quantized weights when quant
	quant    bool
	xs       *[]float32 // sums of x over each 32 elements, for the fused GEMV (quant.go)
	q8       bool       // int8 activations asked for (q8act.go)
	xq       *q8Buf     // x quantized, when the int8 kernels run
	ldd, ldx int
	ldw      int
	m, n, k  int
	mb, nb   int
	bm       int
}

var gemmPool = newFreeList(func() *gemmTask { return new(gemmTask) })

func (g *gemmTask) run(lo, hi int) {
	for b := lo; b < hi; b++ {
		g.block(g.bounds(b))
	}
}

func (g *gemmTask) block(i0, i1, j0, j1 int) {
	if g.quant {
		g.blockQ(i0, i1, j0, j1)
	} else if g.wb == nil {
		gemmBlock(g.im, g.dst, g.ldd, g.x, g.ldx, g.w, g.ldw, g.k, i0, i1, j0, j1)
	} else {
		gemmBlockBF16(g.im, g.dst, g.ldd, g.x, g.ldx, g.wb, g.ldw, g.k, i0, i1, j0, j1)
	}
}

// check panics when a product's shapes and slices disagree: a caller bug.
func (g *gemmTask) check() {
	lw := len(g.w)
	if g.w == nil {
		lw = len(g.wb)
	}
	m, n, k := g.m, g.n, g.k
	if g.quant {
		if err := g.wq.Check(); err != nil || g.wq.Rows != n || g.wq.Cols != k {
			panic(fmt.Sprintf("kernels: MatMulT n=%d k=%d with quantized weights of %d×%d (%v)", n, k, g.wq.Rows, g.wq.Cols, err))
		}
		lw = span(n, k, g.ldw) // the rows are checked above
	}
	if m < 0 || n < 0 || k < 0 || g.ldd < n || g.ldx < k || g.ldw < k ||
		len(g.x) < span(m, k, g.ldx) || lw < span(n, k, g.ldw) || len(g.dst) < span(m, n, g.ldd) {
		panic(fmt.Sprintf("kernels: MatMulT m=%d n=%d k=%d ldd=%d ldx=%d ldw=%d with len(dst)=%d len(x)=%d len(w)=%d",
			m, n, k, g.ldd, g.ldx, g.ldw, len(g.dst), len(g.x), lw))
	}
}

// plan sets the blocking for t threads and returns the number of blocks
// (0 when there is nothing to compute; k = 0 clears dst first).
func (g *gemmTask) plan(t int) int {
	m, n, k := g.m, g.n, g.k
	if m == 0 || n == 0 {
		return 0
	}
	if k == 0 {
		for i := 0; i < m; i++ {
			clear(g.dst[i*g.ldd : i*g.ldd+n])
		}
		return 0
	}
	if t == 1 || m*n*k < serialWork {
		g.mb, g.nb, g.bm = m, n, 1
		return 1
	}
	// Blocks: decode-sized m keeps all rows together and splits n finely;
	// prefill uses 64×96 blocks (multiples of every impl's mr and nr).
	g.mb, g.nb = 64, 96
	if usePacked(g.im, m) {
		// Packed: a block is one panel of w under (nearly) all rows, so
		// each packed panel serves as many rows as possible.
		// Rows are halved (down to 64) until there are about four
		// blocks per thread, so that a late worker does not leave the
		// caller with most of the work.
		g.nb = g.im.pnr
		g.mb = min(m, 512)
		bn := (n + g.nb - 1) / g.nb
		for g.mb > 64 && ((m+g.mb-1)/g.mb)*bn < 4*t {
			g.mb = (g.mb/2 + 7) &^ 7
		}
	} else if m <= 16 {
		// Decode: all rows together, w cut into blocks of at most
		// decodeBlock bytes (and at least 8 per thread), so that the last
		// block claimed leaves the other threads little to wait for.
		g.mb = m
		rowBytes := 4 * k
		if g.quant {
			rowBytes = g.wq.rowBytes()
		} else if g.wb != nil {
			rowBytes = 2 * k
		}
		g.nb = min((n+8*t-1)/(8*t), max(1, decodeBlock/rowBytes))
		g.nb = max(12, (g.nb+11)/12*12)
	}
	g.bm = (m + g.mb - 1) / g.mb
	return g.bm * ((n + g.nb - 1) / g.nb)
}

// bounds returns block b's rows [i0, i1) and columns [j0, j1) of dst.
func (g *gemmTask) bounds(b int) (i0, i1, j0, j1 int) {
	bi, bj := b%g.bm, b/g.bm
	return bi * g.mb, min(g.m, bi*g.mb+g.mb), bj * g.nb, min(g.n, bj*g.nb+g.nb)
}

// matMulTStrided multiplies by w (float32) or, when w is nil, by wb (bf16).
func matMulTStrided(im *impl, dst []float32, ldd int, x []float32, ldx int, w []float32, wb []uint16, ldw int, m, n, k int) {
	g := gemmPool.get()
	*g = gemmTask{im: im, dst: dst, x: x, w: w, wb: wb, ldd: ldd, ldx: ldx, ldw: ldw, m: m, n: n, k: k}
	g.check()
	g.prepQ()
	switch blocks := g.plan(Threads()); blocks {
	case 0:
	case 1:
		g.block(0, m, 0, n)
	default:
		parallelFor(blocks, 1, g)
	}
	g.releaseQ()
	*g = gemmTask{}
	gemmPool.put(g)
}

// Product is one matrix product of a group: Dst = X·Wᵀ, with W as
// quantized blocks (Q, when set, with Q.Rows = N and Q.Cols = K), float32
// (W) or, when both are nil, bfloat16 bits (WH).
//
//	X: [M, K], Q, W or WH: [N, K], Dst: [M, N] (overwritten)
type Product struct {
	Dst, X, W []float32
	WH        []uint16
	Q         *QMatrix
	M, N, K   int
	// Q8 asks for int8 activations with Q (lossy, as MatMulTQ8).
	Q8 bool
}

// maxGroup is the most products one MatMulTGroup call takes.
const maxGroup = 4

// gemmGroup runs several products as one pool job: blocks are numbered
// product after product. With swiglu, products 0 (gate) and 1 (up) share a
// blocking and each block also applies gate = silu(gate) ⊙ up to its part.
type gemmGroup struct {
	tasks  [maxGroup]gemmTask
	starts [maxGroup + 1]int // first block of each product
	n      int
	swiglu bool
	// and runs items [0, andN) in the same job as the blocks (see
	// MatMulTGroupAnd); they come first, the blocks are numbered andN on.
	and  func(lo, hi int)
	andN int
}

var groupPool = newFreeList(func() *gemmGroup { return new(gemmGroup) })

// run runs items [lo, hi): the extra items first (they then start on
// every thread alongside the blocks rather than trailing the job), then
// the products' blocks.
func (g *gemmGroup) run(lo, hi int) {
	if lo < g.andN {
		g.and(lo, min(hi, g.andN))
	}
	for b := max(lo, g.andN); b < hi; b++ {
		g.runBlock(b - g.andN)
	}
}

func (g *gemmGroup) runBlock(b int) {
	if g.swiglu {
		g.swigluBlock(g.tasks[0].bounds(b))
		return
	}
	p := 0
	for b >= g.starts[p+1] {
		p++
	}
	t := &g.tasks[p]
	t.block(t.bounds(b - g.starts[p]))
}

func (g *gemmGroup) swigluBlock(i0, i1, j0, j1 int) {
	gt, ut := &g.tasks[0], &g.tasks[1]
	gt.block(i0, i1, j0, j1)
	ut.block(i0, i1, j0, j1)
	for i := i0; i < i1; i++ {
		gt.im.siluMul(gt.dst[i*gt.ldd+j0:i*gt.ldd+j1], ut.dst[i*ut.ldd+j0:i*ut.ldd+j1])
	}
}

func (g *gemmGroup) set(i int, p *Product) {
	t := &g.tasks[i]
	*t = gemmTask{im: cur, dst: p.Dst, x: p.X, w: p.W, wb: p.WH, ldd: p.N, ldx: p.K, ldw: p.K, m: p.M, n: p.N, k: p.K}
	if p.Q != nil {
		t.w, t.wb, t.wq, t.quant, t.q8 = nil, nil, *p.Q, true, p.Q8
	} else if t.w == nil && t.wb == nil {
		t.wb = []uint16{}
	}
	t.check()
	t.floatDirect()
	t.prepQ()
}

// release recycles the group and its tasks' scratch.
func (g *gemmGroup) release() {
	for i := range g.tasks {
		g.tasks[i].releaseQ()
	}
	*g = gemmGroup{}
	groupPool.put(g)
}

// MatMulTGroup computes each product as MatMulT (MatMulTBF16, MatMulTQ) would, as
// one parallel job: a decode step's q, k and v projections then cost one
// synchronisation instead of three. It takes at most 4 products.
func MatMulTGroup(ps ...Product) { MatMulTGroupAnd(0, nil, ps...) }

// MatMulTGroupAnd is MatMulTGroup with n more items of work in the same
// parallel job: fn(lo, hi) runs items [lo, hi) on whichever thread takes
// them, before or beside the products' blocks. The items must not read the
// products' outputs (a decode step's adapter delta from the same input:
// one synchronisation for both).
func MatMulTGroupAnd(n int, fn func(lo, hi int), ps ...Product) {
	if len(ps) > maxGroup {
		panic(fmt.Sprintf("kernels: MatMulTGroup of %d products, at most %d", len(ps), maxGroup))
	}
	g := groupPool.get()
	g.n, g.swiglu, g.and, g.andN = 0, false, fn, max(n, 0)
	if fn == nil {
		g.andN = 0
	}
	flops := 0
	for i := range ps {
		g.set(i, &ps[i])
		flops += ps[i].M * ps[i].N * ps[i].K
	}
	t := Threads()
	if flops < serialWork {
		t = 1
	}
	for i := range ps {
		g.starts[i] = g.n
		if b := g.tasks[i].plan(t); b > 0 {
			g.n += b
		} else {
			g.tasks[i].bm = 1 // no blocks: never indexed
		}
	}
	g.starts[len(ps)] = g.n
	for i := len(ps) + 1; i <= maxGroup; i++ {
		g.starts[i] = g.n
	}
	if t == 1 || g.n+g.andN <= 1 {
		g.run(0, g.n+g.andN)
	} else {
		parallelFor(g.n+g.andN, 1, g)
	}
	g.release()
}

// SwiGLU computes the gated feed-forward activation of one layer in one
// parallel job, block by block while the block is still in cache:
//
//	up = x·Wupᵀ, gate = silu(x·Wgateᵀ) ⊙ up
//
// gate and up are Products with the same X, M, N and K (W, WH or Q each); their
// Dst are overwritten as above.
func SwiGLU(gate, up Product) {
	if gate.M != up.M || gate.N != up.N || gate.K != up.K {
		panic(fmt.Sprintf("kernels: SwiGLU gate %d×%d×%d and up %d×%d×%d differ",
			gate.M, gate.N, gate.K, up.M, up.N, up.K))
	}
	g := groupPool.get()
	g.set(0, &gate)
	g.set(1, &up)
	g.swiglu = true
	t := Threads()
	g.n = g.tasks[0].plan(t)
	g.tasks[1].plan(t)
	switch {
	case g.n == 0: // nothing, or K = 0: plan cleared both, and silu(0)·0 = 0
	case g.n == 1:
		g.run(0, 1)
	default:
		parallelFor(g.n, 1, g)
	}
	g.release()
}

// gemmBlock computes dst[i0:i1, j0:j1]; ldd, ldx, ldw are the row strides.
func gemmBlock(im *impl, dst []float32, ldd int, x []float32, ldx int, w []float32, ldw, k, i0, i1, j0, j1 int) {
	if usePacked(im, i1-i0) {
		gemmBlockPacked(im, dst, ldd, x, ldx, w, ldw, k, i0, i1, j0, j1)
		return
	}
	mr, nr := im.mr, im.nr
	kc := k
	if k > kcMax {
		s := (k + kcMax - 1) / kcMax
		kc = ((k+s-1)/s + 15) &^ 15
	}
	for p := 0; p < k; p += kc {
		kl := min(kc, k-p)
		acc := p > 0
		j := j0
		for ; j+nr <= j1; j += nr {
			wj := w[j*ldw+p:]
			i := i0
			for ; i+mr <= i1; i += mr {
				im.tile(dst[i*ldd+j:], ldd, acc, x[i*ldx+p:], ldx, wj, ldw, kl)
			}
			for ; i < i1; i++ {
				im.tileM1(dst[i*ldd+j:], acc, x[i*ldx+p:], wj, ldw, kl)
			}
		}
		for ; j < j1; j++ {
			wj := w[j*ldw+p : j*ldw+p+kl]
			i := i0
			for ; i+mr <= i1; i += mr {
				im.tileN1(dst[i*ldd+j:], ldd, acc, x[i*ldx+p:], ldx, wj, kl)
			}
			for ; i < i1; i++ {
				d := im.dot(x[i*ldx+p:i*ldx+p+kl], wj)
				if acc {
					dst[i*ldd+j] += d
				} else {
					dst[i*ldd+j] = d
				}
			}
		}
	}
}

// widenPool holds per-thread f32 scratch panels for bf16 prefill blocks.
var widenPool = newFreeList(func() *[]float32 { return new([]float32) })

// gemmBlockBF16 is gemmBlock for bf16 w.
func gemmBlockBF16(im *impl, dst []float32, ldd int, x []float32, ldx int, w []uint16, ldw, k, i0, i1, j0, j1 int) {
	if i1-i0 > bf16Direct {
		// Widen panels of w rows once, then run the f32 micro-kernels.
		rows := min(96, max(1, (1<<16)/k)/im.nr*im.nr)
		rows = max(rows, im.nr)
		if usePacked(im, i1-i0) {
			rows = im.pnr // whole packed panels (no edge path)
		}
		sp := widenPool.get()
		if cap(*sp) < rows*k {
			*sp = make([]float32, rows*k)
		}
		buf := (*sp)[:rows*k]
		for j := j0; j < j1; j += rows {
			r := min(rows, j1-j)
			for jj := 0; jj < r; jj++ {
				widenBF16(im, buf[jj*k:(jj+1)*k], w[(j+jj)*ldw:(j+jj)*ldw+k])
			}
			gemmBlock(im, dst[j:], ldd, x, ldx, buf, k, k, i0, i1, 0, r)
		}
		widenPool.put(sp)
		return
	}
	mr, nr := im.mr, im.nr
	kb := k - k%im.bk // the micro-kernels' share of k
	j := j0
	for ; j+nr <= j1 || j < j1 && j1-j0 >= nr; j += nr {
		if j+nr > j1 {
			// The ragged last rows: the last nr rows once more, with the
			// same tiles (the overlap is rewritten with the same bits).
			j = j1 - nr
		}
		wj := w[j*ldw:]
		i := i0
		for ; i+mr <= i1; i += mr {
			if kb > 0 {
				im.tileBF16(dst[i*ldd+j:], ldd, false, x[i*ldx:], ldx, wj, ldw, kb)
			} else {
				for r := range mr {
					clear(dst[(i+r)*ldd+j : (i+r)*ldd+j+nr])
				}
			}
		}
		for ; i < i1; i++ {
			if kb > 0 {
				im.tileM1BF16(dst[i*ldd+j:], false, x[i*ldx:], wj, ldw, kb)
			} else {
				clear(dst[i*ldd+j : i*ldd+j+nr])
			}
		}
		if kb < k {
			for i := i0; i < i1; i++ {
				for jj := j; jj < j+nr; jj++ {
					dst[i*ldd+jj] += dotBF16Go(x[i*ldx+kb:i*ldx+k], w[jj*ldw+kb:jj*ldw+k])
				}
			}
		}
	}
	for ; j < j1; j++ {
		for i := i0; i < i1; i++ {
			dst[i*ldd+j] = dotBF16Go(x[i*ldx:i*ldx+k], w[j*ldw:j*ldw+k])
		}
	}
}
