//go:build goexperiment.simd && amd64 && !purego && !go1.27

package kernels

import (
	"simd/archsimd"
	"unsafe"
)

// The int8-activation kernels (q8act.go) in archsimd: the same integer dot
// products as the generated assembly (VPMADDUBSW of unsigned weight quants
// with the signed activations, VPMADDWD into int32, one float conversion
// per activation block), written with 256-bit integer vectors for both
// archsimd sets (AVX-512 CPUs run them as the assembly sets do). Activation
// quantization stays the Go reference's here.

func init() {
	t := [32]q8dotFunc{
		Q8_0: rowsQ8(q8dotQ8_0Simd), Q4_0: rowsQ8(q8dotQ4_0Simd), Q5_0: rowsQ8(q8dotQ5_0Simd),
		Q4_K: rowsQ8(q8dotQ4KSimd), Q6_K: rowsQ8(q8dotQ6KSimd),
	}
	archsimd256Impl.q8dot = t
	archsimd512Impl.q8dot = t
}

// i8s views b (at least n bytes) as int8.
func i8s(b []byte, n int) []int8 { return unsafe.Slice((*int8)(unsafe.Pointer(&b[0])), n)[:n:n] }

// hsum8 sums the 8 lanes of v.
func hsum8(v archsimd.Float32x8) float32 {
	var a [4]float32
	v.GetLo().Add(v.GetHi()).Store(&a)
	return (a[0] + a[1]) + (a[2] + a[3])
}

var (
	q8Ones16 = archsimd.BroadcastInt16x16(1)
	q8Nib    = archsimd.BroadcastUint8x32(0x0f)
)

// nibbles32 expands 16 bytes of nibbles to 32 quants in weight order: the
// low nibbles (weights 0..15), then the high (16..31).
func nibbles32(q []byte) archsimd.Uint8x32 {
	lo := archsimd.LoadUint8x16Slice(q[:16])
	hi := lo.AsUint16x8().ShiftAllRight(4).AsUint8x16()
	var v archsimd.Uint8x32
	return v.SetLo(lo).SetHi(hi).And(q8Nib)
}

func q8dotQ8_0Simd(w []byte, a *q8Row) float32 {
	var acc archsimd.Float32x8
	for b := range a.d {
		q := w[34*b : 34*b+34]
		wq := archsimd.LoadInt8x32Slice(i8s(q[2:], 32))
		x := archsimd.LoadInt8x32Slice(a.qs[32*b : 32*b+32])
		p := wq.Abs().AsUint8x32().DotProductPairsSaturated(x.CopySign(wq)).DotProductPairs(q8Ones16)
		acc = p.ConvertToFloat32().MulAdd(archsimd.BroadcastFloat32x8(f16ToF32(le16(q))*a.d[b]), acc)
	}
	return hsum8(acc)
}

// q8dotOff is Σ (q - off)·x per block for 32-weight blocks whose quants
// quants(q) unpacks (bb bytes each).
func q8dotOff(w []byte, a *q8Row, bb int, off uint8, quants func(q []byte) archsimd.Uint8x32) float32 {
	var acc archsimd.Float32x8
	o := archsimd.BroadcastUint8x32(off)
	for b := range a.d {
		q := w[bb*b : bb*b+bb]
		x := archsimd.LoadInt8x32Slice(a.qs[32*b : 32*b+32])
		p := quants(q).DotProductPairsSaturated(x).Sub(o.DotProductPairsSaturated(x)).DotProductPairs(q8Ones16)
		acc = p.ConvertToFloat32().MulAdd(archsimd.BroadcastFloat32x8(f16ToF32(le16(q))*a.d[b]), acc)
	}
	return hsum8(acc)
}

func q8dotQ4_0Simd(w []byte, a *q8Row) float32 {
	return q8dotOff(w, a, 18, 8, func(q []byte) archsimd.Uint8x32 { return nibbles32(q[2:18]) })
}

// Q5_0's fifth bits: byte p of the broadcast qh selects qh byte p/8 and
// tests bit p%8.
var q5Idx, q5Bit = func() (archsimd.Int8x32, archsimd.Uint8x32) {
	var idx [32]int8
	var bit [32]uint8
	for p := range 32 {
		idx[p] = int8((p%16)/8 + 2*(p/16))
		bit[p] = 1 << (p % 8)
	}
	return archsimd.LoadInt8x32Slice(idx[:]), archsimd.LoadUint8x32Slice(bit[:])
}()

func q8dotQ5_0Simd(w []byte, a *q8Row) float32 {
	sixteen := archsimd.BroadcastUint8x32(16)
	return q8dotOff(w, a, 22, 16, func(q []byte) archsimd.Uint8x32 {
		h := archsimd.BroadcastUint32x8(le32(q[2:])).AsUint8x32().PermuteOrZeroGrouped(q5Idx).And(q5Bit)
		return nibbles32(q[6:22]).Or(sixteen.Masked(h.Equal(q5Bit)))
	})
}

func q8dotQ4KSimd(w []byte, a *q8Row) float32 {
	var acc archsimd.Float32x8
	var mins float32
	for b := 0; b < len(a.d)/8; b++ {
		q := w[144*b : 144*b+144]
		d, dmin := f16ToF32(le16(q)), f16ToF32(le16(q[2:]))
		sc := q[4:16]
		for c := range 4 {
			v := archsimd.LoadUint8x32Slice(q[16+32*c : 48+32*c])
			lo := v.And(q8Nib)
			hi := v.AsUint16x16().ShiftAllRight(4).AsUint8x32().And(q8Nib)
			for h, u := range [2]archsimd.Uint8x32{lo, hi} {
				j := 2*c + h
				ab := 8*b + j
				x := archsimd.LoadInt8x32Slice(a.qs[32*ab : 32*ab+32])
				p := u.DotProductPairsSaturated(x).DotProductPairs(q8Ones16)
				s, m := scaleMinK4(j, sc)
				acc = p.ConvertToFloat32().MulAdd(archsimd.BroadcastFloat32x8(d*float32(s)*a.d[ab]), acc)
				mins += dmin * float32(m) * a.d[ab] * float32(a.s[ab])
			}
		}
	}
	return hsum8(acc) - mins
}

func q8dotQ6KSimd(w []byte, a *q8Row) float32 {
	var acc archsimd.Float32x8
	m30 := archsimd.BroadcastUint8x32(0x30)
	o := archsimd.BroadcastUint8x32(32)
	for b := 0; b < len(a.d)/8; b++ {
		q := w[210*b : 210*b+210]
		d := f16ToF32(le16(q[208:]))
		for n := range 2 {
			ql0 := archsimd.LoadUint8x32Slice(q[64*n : 64*n+32])
			ql1 := archsimd.LoadUint8x32Slice(q[64*n+32 : 64*n+64])
			qh := archsimd.LoadUint8x32Slice(q[128+32*n : 160+32*n]).AsUint16x16()
			sc := q[192+8*n : 200+8*n]
			for g := range 4 {
				var u archsimd.Uint8x32
				switch g {
				case 0:
					u = ql0.And(q8Nib).Or(qh.ShiftAllLeft(4).AsUint8x32().And(m30))
				case 1:
					u = ql1.And(q8Nib).Or(qh.ShiftAllLeft(2).AsUint8x32().And(m30))
				case 2:
					u = ql0.AsUint16x16().ShiftAllRight(4).AsUint8x32().And(q8Nib).Or(qh.AsUint8x32().And(m30))
				case 3:
					u = ql1.AsUint16x16().ShiftAllRight(4).AsUint8x32().And(q8Nib).Or(qh.ShiftAllRight(2).AsUint8x32().And(m30))
				}
				ab := 8*b + 4*n + g
				x := archsimd.LoadInt8x32Slice(a.qs[32*ab : 32*ab+32])
				var s archsimd.Int16x16
				s = s.SetLo(archsimd.BroadcastInt16x8(int16(int8(sc[2*g])))).SetHi(archsimd.BroadcastInt16x8(int16(int8(sc[2*g+1]))))
				p := u.DotProductPairsSaturated(x).Sub(o.DotProductPairsSaturated(x)).DotProductPairs(s)
				acc = p.ConvertToFloat32().MulAdd(archsimd.BroadcastFloat32x8(d*a.d[ab]), acc)
			}
		}
	}
	return hsum8(acc)
}
