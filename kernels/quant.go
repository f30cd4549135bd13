package kernels

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"
)

// Quantized weights: ggml's block formats (qtype.go) kept as stored and
// expanded on the fly. DequantizeRow is exact (ggml's float32 roundings);
// the products multiply float32 activations by the exactly dequantized
// weights, with no activation quantization, so they differ from a float32
// MatMulT on the dequantized matrix only in summation order.

// DequantizeRow expands one row of weights of type t into float32.
//
//	dst: [n] weights, src: RowBytes(t, n) bytes
func DequantizeRow(t QType, dst []float32, src []byte) error {
	if !t.Known() {
		return fmt.Errorf("dequantize: tensor type %s: %w", t, ErrType)
	}
	rb, err := RowBytes(t, len(dst))
	if err != nil {
		return fmt.Errorf("dequantize: %w", err)
	}
	if len(src) != rb {
		return fmt.Errorf("dequantize: a %s row of %d weights is %d bytes, not %d: %w", t, len(dst), rb, len(src), ErrSize)
	}
	dequantRow(cur, t, dst, src)
	return nil
}

// dequantRow is DequantizeRow without the checks, on kernel set im.
func dequantRow(im *impl, t QType, dst []float32, src []byte) {
	if f := im.dequant[t]; f != nil {
		f(dst, src)
		return
	}
	switch t {
	case F32:
		if v, ok := viewAs[float32](src, len(dst)); ok {
			copy(dst, v)
			return
		}
		for i := range dst {
			dst[i] = math.Float32frombits(le32(src[4*i:]))
		}
	case BF16:
		if h, ok := viewAs[uint16](src, len(dst)); ok {
			widenBF16(im, dst, h)
			return
		}
		for i := range dst {
			dst[i] = math.Float32frombits(uint32(le16(src[2*i:])) << 16)
		}
	default:
		dequantizeRowRef(t, dst, src)
	}
}

// f16ToF32 widens IEEE half-precision bits exactly: the exponent and
// mantissa bits, shifted into a float32 and scaled by 2¹¹², give normal and
// subnormal halves alike; infinities and NaNs keep their payload.
func f16ToF32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	if h&0x7c00 == 0x7c00 {
		return math.Float32frombits(sign | 0x7f800000 | uint32(h&0x3ff)<<13)
	}
	v := math.Float32frombits(uint32(h&0x7fff)<<13) * 0x1p112
	return math.Float32frombits(math.Float32bits(v) | sign)
}

// QMatrix is a matrix of quantized weights in the Hugging Face linear
// layout, row by row: row j is RowBytes(Type, Cols) bytes at
// Data[j·RowBytes:].
//
//	W: [Rows, Cols]
type QMatrix struct {
	Type       QType
	Data       []byte
	Rows, Cols int
}

// Check reports whether the type is one roe computes with and Data holds
// exactly Rows rows of Cols weights.
func (m QMatrix) Check() error {
	if !m.Type.Known() {
		return fmt.Errorf("quantized matrix: tensor type %s: %w", m.Type, ErrType)
	}
	if m.Rows < 0 || m.Cols < 0 {
		return fmt.Errorf("quantized matrix of %d×%d: %w", m.Rows, m.Cols, ErrSize)
	}
	rb, err := RowBytes(m.Type, m.Cols)
	if err != nil {
		return fmt.Errorf("quantized matrix: %w", err)
	}
	if rb > 0 && m.Rows > math.MaxInt/rb || len(m.Data) != m.Rows*rb {
		return fmt.Errorf("quantized %s matrix of %d×%d needs %d×%d bytes, has %d: %w",
			m.Type, m.Rows, m.Cols, m.Rows, rb, len(m.Data), ErrSize)
	}
	return nil
}

// rowBytes is RowBytes for a checked matrix.
func (m *QMatrix) rowBytes() int { return m.Cols / m.Type.BlockSize() * m.Type.BlockBytes() }

// MatMulTQ is MatMulT with quantized weights: each weight is dequantized
// exactly and multiplied by float32 x (the activations are not quantized).
// It panics when w fails Check or a slice is short (caller bugs).
//
//	x: [m, w.Cols], w: [w.Rows, w.Cols], dst: [m, w.Rows] (overwritten)
func MatMulTQ(dst, x []float32, w QMatrix, m int) {
	if err := w.Check(); err != nil {
		panic("kernels: MatMulTQ: " + err.Error())
	}
	matMulTQx(cur, dst, x, w, m, false)
}

// matMulTQx is MatMulTQ, or MatMulTQ8 with q8.
func matMulTQx(im *impl, dst, x []float32, w QMatrix, m int, q8 bool) {
	g := gemmPool.get()
	n, k := w.Rows, w.Cols
	*g = gemmTask{im: im, dst: dst, x: x, wq: w, quant: true, q8: q8, ldd: n, ldx: k, ldw: k, m: m, n: n, k: k}
	g.check()
	g.floatDirect()
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

// qFused is the most rows of x that take the fused GEMV kernels (where the
// kernel set has one for the type); more rows dequantize panels once and
// share them (AVX2, n=1536 k=576: fused is 1.2× faster at 2 rows, the
// panels 2× at 4 and 3× at 8).
var qFused = 2

var xsPool = newFreeList(func() *[]float32 { return new([]float32) })

// fused reports whether the task's blocks run the fused GEMV kernel.
func (g *gemmTask) fused() bool {
	return g.quant && g.m <= qFused && g.im.qgemv[g.wq.Type] != nil
}

// int8 reports whether the task's blocks run the int8-activation kernels.
func (g *gemmTask) int8() bool {
	return g.quant && g.q8 && g.m <= q8Rows && HasQ8(g.wq.Type)
}

// floatDirect turns a product over F32 or BF16 rows in a GGUF's mapping
// that the fused GEMV does not take (prefill) into the float32 or bf16 GEMM
// over them in place, as for a checkpoint's weights: no panels copied out.
func (g *gemmTask) floatDirect() {
	if !g.quant || g.fused() {
		return
	}
	n := g.n * g.k
	switch g.wq.Type {
	case F32:
		if v, ok := viewAs[float32](g.wq.Data, n); ok {
			g.w, g.quant, g.wq = v, false, QMatrix{}
		}
	case BF16:
		if v, ok := viewAs[uint16](g.wq.Data, n); ok {
			g.wb, g.quant, g.wq = v, false, QMatrix{}
		}
	}
}

// prepQ computes the sums of x the fused kernels use, or quantizes x for the
// int8 kernels, once per product.
func (g *gemmTask) prepQ() {
	if g.m == 0 || g.n == 0 || g.k == 0 {
		return
	}
	if g.int8() {
		g.xq = quantizeRows(g.im, g.x, g.ldx, g.m, g.k)
		return
	}
	if !g.fused() {
		return
	}
	nx := xsLen(g.k)
	g.xs = xsPool.get()
	*g.xs = grow(*g.xs, g.m*nx)
	if g.im.qgemvNoSums[g.wq.Type] {
		return // the kernel takes xs but never reads it
	}
	for i := 0; i < g.m; i++ {
		xSums((*g.xs)[i*nx:(i+1)*nx], g.x[i*g.ldx:i*g.ldx+g.k])
	}
}

func (g *gemmTask) releaseQ() {
	if g.xq != nil {
		q8Pool.put(g.xq)
		g.xq = nil
	}
	if g.xs != nil {
		xsPool.put(g.xs)
		g.xs = nil
	}
}

// blockQ is gemmBlock for quantized w. Decode rows run the fused GEMV;
// otherwise panels of w rows are dequantized once into per-thread scratch
// and the float32 kernels run over all rows of x. Panels stay in L1 for
// few rows (each weight is used once per row) and are whole packed panels
// for prefill.
func (g *gemmTask) blockQ(i0, i1, j0, j1 int) {
	im, w, k, ldd, ldx := g.im, &g.wq, g.k, g.ldd, g.ldx
	dst, x := g.dst, g.x
	rb := w.rowBytes()
	if g.xq != nil {
		f := q8dotFor(im, w.Type)
		for i := i0; i < i1; i++ {
			f(dst[i*ldd+j0:i*ldd+j1], &g.xq.rows[i], w.Data[j0*rb:j1*rb], rb)
		}
		return
	}
	if g.xs != nil {
		f, nx := im.qgemv[w.Type], xsLen(k)
		for i := i0; i < i1; i++ {
			f(dst[i*ldd+j0:i*ldd+j1], x[i*ldx:i*ldx+k], (*g.xs)[i*nx:(i+1)*nx], w.Data[j0*rb:j1*rb], rb)
		}
		return
	}
	rows := max(1, (8<<10)/k) / im.nr * im.nr
	if i1-i0 > bf16Direct {
		rows = min(96, max(1, (1<<16)/k)/im.nr*im.nr)
	}
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
			o := (j + jj) * rb
			dequantRow(im, w.Type, buf[jj*k:(jj+1)*k], w.Data[o:o+rb])
		}
		gemmBlock(im, dst[j:], ldd, x, ldx, buf, k, k, i0, i1, 0, r)
	}
	widenPool.put(sp)
}

// nativeLE: the machine stores numbers little-endian, as GGUF does.
var nativeLE = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// viewAs returns the first n values of type T in b without copying, when the
// machine is little-endian and b is aligned for T (a GGUF's tensor data is).
func viewAs[T float32 | uint16](b []byte, n int) ([]T, bool) {
	var z T
	size := int(unsafe.Sizeof(z))
	if n == 0 || !nativeLE || len(b) < n*size || uintptr(unsafe.Pointer(&b[0]))%uintptr(size) != 0 {
		return nil, false
	}
	return unsafe.Slice((*T)(unsafe.Pointer(&b[0])), n), true
}
