package kernels

import "math"

// The plain reference twins of every kernel: scalar loops, float64 accumulation
// where it matters, no parallelism. Fast kernels are tested against these.

func matMulTRef(dst, x, w []float32, m, n, k int) {
	for i := 0; i < m; i++ {
		xi := x[i*k : i*k+k]
		for j := 0; j < n; j++ {
			dst[i*n+j] = dotRef(xi, w[j*k:j*k+k])
		}
	}
}

func dotRef(a, b []float32) float32 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return float32(s)
}

func axpyRef(alpha float32, x, y []float32) {
	for i, v := range x {
		y[i] += alpha * v
	}
}

func addRef(dst, x []float32) {
	for i, v := range x {
		dst[i] += v
	}
}

func rmsNormRef(dst, x, w []float32, eps float32) {
	var ss float64
	for _, v := range x {
		ss += float64(v) * float64(v)
	}
	inv := float32(1 / math.Sqrt(ss/float64(len(x))+float64(eps)))
	for i, v := range x {
		dst[i] = w[i] * (v * inv)
	}
}

func ropeRef(x, cos, sin []float32) {
	h := len(x) / 2
	for i := 0; i < h; i++ {
		a, b := x[i], x[i+h]
		x[i] = a*cos[i] - b*sin[i]
		x[i+h] = b*cos[i] + a*sin[i]
	}
}

func softmaxRef(x []float32) {
	if len(x) == 0 {
		return
	}
	mx := x[0]
	for _, v := range x[1:] {
		if v > mx {
			mx = v
		}
	}
	var sum float64
	for i, v := range x {
		e := math.Exp(float64(v - mx))
		x[i] = float32(e)
		sum += e
	}
	inv := float32(1 / sum)
	for i := range x {
		x[i] *= inv
	}
}

func siluMulRef(gate, up []float32) {
	for i, g := range gate {
		gate[i] = g / (1 + float32(math.Exp(float64(-g)))) * up[i]
	}
}

func matMulTStridedRef(dst []float32, ldd int, x []float32, ldx int, w []float32, ldw int, m, n, k int) {
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			dst[i*ldd+j] = dotRef(x[i*ldx:i*ldx+k], w[j*ldw:j*ldw+k])
		}
	}
}

// dequantizeRowRef expands one row of src (whole blocks of type t) into dst,
// block by block in ggml's order and with its float32 roundings: each scale
// product is rounded before it multiplies the quant, and a min is added or
// subtracted after that product is rounded (the float32 conversions keep the
// compiler from fusing them), so the values are bit-identical to ggml's.
func dequantizeRowRef(t QType, dst []float32, src []byte) {
	bs, bb := t.BlockSize(), t.BlockBytes()
	for b := 0; b < len(dst)/bs; b++ {
		y, q := dst[b*bs:(b+1)*bs], src[b*bb:(b+1)*bb]
		switch t {
		case F32:
			y[0] = math.Float32frombits(le32(q))
		case F16:
			y[0] = f16ToF32(le16(q))
		case BF16:
			y[0] = FromBF16(le16(q))
		case Q4_0:
			d := f16ToF32(le16(q))
			for j := range 16 {
				y[j] = float32(int(q[2+j]&15)-8) * d
				y[j+16] = float32(int(q[2+j]>>4)-8) * d
			}
		case Q4_1:
			d, m := f16ToF32(le16(q)), f16ToF32(le16(q[2:]))
			for j := range 16 {
				y[j] = float32(float32(q[4+j]&15)*d) + m
				y[j+16] = float32(float32(q[4+j]>>4)*d) + m
			}
		case Q5_0:
			d, qh := f16ToF32(le16(q)), le32(q[2:])
			for j := range 16 {
				h0, h1 := (qh>>j)&1, (qh>>(j+16))&1
				y[j] = float32(int(uint32(q[6+j]&15)|h0<<4)-16) * d
				y[j+16] = float32(int(uint32(q[6+j]>>4)|h1<<4)-16) * d
			}
		case Q5_1:
			d, m, qh := f16ToF32(le16(q)), f16ToF32(le16(q[2:])), le32(q[4:])
			for j := range 16 {
				h0, h1 := (qh>>j)&1, (qh>>(j+16))&1
				y[j] = float32(float32(uint32(q[8+j]&15)|h0<<4)*d) + m
				y[j+16] = float32(float32(uint32(q[8+j]>>4)|h1<<4)*d) + m
			}
		case Q8_0:
			d := f16ToF32(le16(q))
			for j := range 32 {
				y[j] = float32(int8(q[2+j])) * d
			}
		case Q2_K:
			dequantQ2KRef(y, q)
		case Q3_K:
			dequantQ3KRef(y, q)
		case Q4_K:
			dequantQ4KRef(y, q)
		case Q5_K:
			dequantQ5KRef(y, q)
		case Q6_K:
			dequantQ6KRef(y, q)
		case IQ4_NL:
			iq4Ref(y, q[2:18], f16ToF32(le16(q)))
		case IQ4_XS:
			dequantIQ4XSRef(y, q)
		}
	}
}

func le16(b []byte) uint16 { return uint16(b[0]) | uint16(b[1])<<8 }
func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

// iq4Ref expands 32 weights from 16 nibble bytes (low nibbles first, as
// Q4_0) with scale d: d times the table value each nibble indexes.
func iq4Ref(y []float32, qs []byte, d float32) {
	for j := range 16 {
		y[j] = d * float32(iq4Values[qs[j]&15])
		y[j+16] = d * float32(iq4Values[qs[j]>>4])
	}
}

// IQ4_XS: d, scales_h (u16), scales_l[4], qs[128]. Sub-block ib (32
// weights) has the six-bit scale nibble ib of scales_l | bits 2ib..2ib+1 of
// scales_h << 4, offset by 32; its scale d·(ls−32) is rounded before it
// multiplies the table values.
func dequantIQ4XSRef(y []float32, q []byte) {
	d := f16ToF32(le16(q))
	for ib := range 8 {
		iq4Ref(y[32*ib:], q[8+16*ib:24+16*ib], float32(d*float32(iq4xsScale(q, ib))))
	}
}

// iq4xsScale is sub-block ib's scale integer ls−32 of the IQ4_XS
// super-block q: nibble ib of scales_l | bit pair ib of scales_h << 4.
func iq4xsScale(q []byte, ib int) int {
	sh, sl := uint32(le16(q[2:])), le32(q[4:])
	return int(sl>>(4*ib)&15|(sh>>(2*ib)&3)<<4) - 32
}

// Q2_K: scales[16] (low nibble scale, high nibble min), qs[64], d, dmin.
// Each 128-weight half reads 32 bytes of qs four times, two bits at a time;
// each 16 weights have their own scale and min.
func dequantQ2KRef(y []float32, q []byte) {
	sc, qs := q[:16], q[16:80]
	d, dmin := f16ToF32(le16(q[80:])), f16ToF32(le16(q[82:]))
	is := 0
	for n := 0; n < 2; n++ {
		qq := qs[32*n : 32*n+32]
		for shift := uint(0); shift < 8; shift += 2 {
			for h := 0; h < 2; h++ {
				s := sc[is]
				is++
				dl, ml := d*float32(s&15), dmin*float32(s>>4)
				for l := range 16 {
					y[0] = float32(dl*float32((qq[16*h+l]>>shift)&3)) - ml
					y = y[1:]
				}
			}
		}
	}
}

// Q3_K: hmask[32], qs[64], scales[12] (16 six-bit scales, offset 32), d.
// The high bit of each 3-bit quant is in hmask; a clear bit subtracts 4.
func dequantQ3KRef(y []float32, q []byte) {
	hm, qs, sb := q[:32], q[32:96], q[96:108]
	d := f16ToF32(le16(q[108:]))
	var sc [16]int
	for j := range 16 {
		lo := sb[j%8] >> (4 * uint(j/8)) & 15  // low 4 bits
		hi := sb[8+j%4] >> (2 * uint(j/4)) & 3 // high 2 bits
		sc[j] = int(lo|hi<<4) - 32
	}
	is := 0
	m := byte(1)
	for n := 0; n < 2; n++ {
		qq := qs[32*n : 32*n+32]
		for shift := uint(0); shift < 8; shift += 2 {
			for h := 0; h < 2; h++ {
				dl := d * float32(sc[is])
				is++
				for l := range 16 {
					v := int((qq[16*h+l] >> shift) & 3)
					if hm[16*h+l]&m == 0 {
						v -= 4
					}
					y[0] = dl * float32(v)
					y = y[1:]
				}
			}
			m <<= 1
		}
	}
}

// scaleMinK4 unpacks the j-th six-bit scale and min of Q4_K/Q5_K's 12 bytes:
// 0..3 in the low six bits of bytes 0..7, 4..7 from a nibble of bytes 8..11
// plus the top two bits of bytes 0..7.
func scaleMinK4(j int, s []byte) (sc, m byte) {
	if j < 4 {
		return s[j] & 63, s[j+4] & 63
	}
	return s[j+4]&15 | (s[j-4]>>6)<<4, s[j+4]>>4 | (s[j]>>6)<<4
}

// Q4_K: d, dmin, scales[12], qs[128]: 64 weights per 32 bytes of qs, low
// nibbles first, each 32 with its own scale and min.
func dequantQ4KRef(y []float32, q []byte) {
	d, dmin := f16ToF32(le16(q)), f16ToF32(le16(q[2:]))
	s, qs := q[4:16], q[16:144]
	for c := 0; c < 4; c++ {
		sc1, m1 := scaleMinK4(2*c, s)
		sc2, m2 := scaleMinK4(2*c+1, s)
		d1, dm1 := d*float32(sc1), dmin*float32(m1)
		d2, dm2 := d*float32(sc2), dmin*float32(m2)
		qq := qs[32*c : 32*c+32]
		for l := range 32 {
			y[64*c+l] = float32(d1*float32(qq[l]&15)) - dm1
			y[64*c+32+l] = float32(d2*float32(qq[l]>>4)) - dm2
		}
	}
}

// Q5_K: Q4_K plus qh[32] holding the fifth bit of each quant, two bits of
// each qh byte per 64 weights.
func dequantQ5KRef(y []float32, q []byte) {
	d, dmin := f16ToF32(le16(q)), f16ToF32(le16(q[2:]))
	s, qh, qs := q[4:16], q[16:48], q[48:176]
	for c := 0; c < 4; c++ {
		sc1, m1 := scaleMinK4(2*c, s)
		sc2, m2 := scaleMinK4(2*c+1, s)
		d1, dm1 := d*float32(sc1), dmin*float32(m1)
		d2, dm2 := d*float32(sc2), dmin*float32(m2)
		qq := qs[32*c : 32*c+32]
		for l := range 32 {
			lo := qq[l]&15 | (qh[l]>>(2*c)&1)<<4
			hi := qq[l]>>4 | (qh[l]>>(2*c+1)&1)<<4
			y[64*c+l] = float32(d1*float32(lo)) - dm1
			y[64*c+32+l] = float32(d2*float32(hi)) - dm2
		}
	}
}

// Q6_K: ql[128] (low 4 bits), qh[64] (high 2 bits), scales[16] int8, d;
// quants are offset by 32. Each 128-weight half takes 64 ql and 32 qh bytes.
func dequantQ6KRef(y []float32, q []byte) {
	ql, qh, sc := q[:128], q[128:192], q[192:208]
	d := f16ToF32(le16(q[208:]))
	for n := 0; n < 2; n++ {
		l4, h2, s8 := ql[64*n:], qh[32*n:], sc[8*n:]
		yy := y[128*n:]
		for l := range 32 {
			is := l / 16
			q1 := int(l4[l]&15|(h2[l]>>0&3)<<4) - 32
			q2 := int(l4[l+32]&15|(h2[l]>>2&3)<<4) - 32
			q3 := int(l4[l]>>4|(h2[l]>>4&3)<<4) - 32
			q4 := int(l4[l+32]>>4|(h2[l]>>6&3)<<4) - 32
			yy[l] = d * float32(int8(s8[is])) * float32(q1)
			yy[l+32] = d * float32(int8(s8[is+2])) * float32(q2)
			yy[l+64] = d * float32(int8(s8[is+4])) * float32(q3)
			yy[l+96] = d * float32(int8(s8[is+6])) * float32(q4)
		}
	}
}

func matMulTQRef(dst, x []float32, w QMatrix, m int) {
	wf := make([]float32, w.Rows*w.Cols)
	rb, _ := RowBytes(w.Type, w.Cols)
	for j := 0; j < w.Rows; j++ {
		dequantizeRowRef(w.Type, wf[j*w.Cols:(j+1)*w.Cols], w.Data[j*rb:(j+1)*rb])
	}
	matMulTRef(dst, x, wf, m, w.Rows, w.Cols)
}
