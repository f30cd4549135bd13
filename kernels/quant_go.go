package kernels

import "math"

// Fused quantized GEMV in Go (the portable set): each weight block is
// unpacked into registers and multiplied with x on the spot, never stored.
// Per block the quants are summed against x first and the block's scale is
// applied once; a Q4_K block's mins multiply the precomputed sums of x.

// qgemvFunc computes dst[j] = x · w_j for j < len(dst), where w_j is the
// row at w[j·rb:], len(x) weights of one type; xs holds the sums of x over
// each 32 weights (len(x)/32 of them), then over each 16 (len(x)/16: Q2_K's
// mins), as xSums writes them.
type qgemvFunc func(dst, x, xs []float32, w []byte, rb int)

// qgemvGo is the portable set's table.
var qgemvGo = [32]qgemvFunc{
	Q8_0: qgemvQ8_0Go, Q4_0: qgemvQ4_0Go, Q4_1: qgemvQ4_1Go, Q5_0: qgemvQ5_0Go, Q5_1: qgemvQ5_1Go,
	Q2_K: qgemvQ2KGo, Q3_K: qgemvQ3KGo, Q4_K: qgemvQ4KGo, Q5_K: qgemvQ5KGo, Q6_K: qgemvQ6KGo,
	IQ4_NL: qgemvIQ4NLGo, IQ4_XS: qgemvIQ4XSGo,
	F32: qgemvFloatGo(F32), BF16: qgemvFloatGo(BF16), F16: qgemvFloatGo(F16),
}

// qgemvFloatGo is the GEMV of float weight rows of type t (F32, BF16, F16),
// widened exactly.
func qgemvFloatGo(t QType) qgemvFunc {
	es := t.BlockBytes()
	return func(dst, x, xs []float32, w []byte, rb int) {
		for j := range dst {
			dst[j] = dotFloatGo(t, x, w[j*rb:j*rb+len(x)*es])
		}
	}
}

// dotFloatGo returns x · w for w a row of len(x) float weights of type t.
func dotFloatGo(t QType, x []float32, w []byte) float32 {
	var p [4]float32
	switch t {
	case F32:
		for i, v := range x {
			p[i%4] += math.Float32frombits(le32(w[4*i:])) * v
		}
	case BF16:
		for i, v := range x {
			p[i%4] += math.Float32frombits(uint32(le16(w[2*i:]))<<16) * v
		}
	default:
		for i, v := range x {
			p[i%4] += f16ToF32(le16(w[2*i:])) * v
		}
	}
	return (p[0] + p[1]) + (p[2] + p[3])
}

func qgemvQ8_0Go(dst, x, xs []float32, w []byte, rb int) {
	nb := len(x) / 32
	for j := range dst {
		row := w[j*rb : j*rb+nb*34]
		var s float32
		for b := 0; b < nb; b++ {
			q, xb := row[b*34:b*34+34], x[b*32:b*32+32]
			var p0, p1, p2, p3 float32
			for l := 0; l < 32; l += 4 {
				p0 += float32(int8(q[2+l])) * xb[l]
				p1 += float32(int8(q[3+l])) * xb[l+1]
				p2 += float32(int8(q[4+l])) * xb[l+2]
				p3 += float32(int8(q[5+l])) * xb[l+3]
			}
			s += f16ToF32(le16(q)) * ((p0 + p1) + (p2 + p3))
		}
		dst[j] = s
	}
}

func qgemvQ4_0Go(dst, x, xs []float32, w []byte, rb int) {
	nb := len(x) / 32
	for j := range dst {
		row := w[j*rb : j*rb+nb*18]
		var s float32
		for b := 0; b < nb; b++ {
			q, xb := row[b*18+2:b*18+18], x[b*32:b*32+32]
			var p0, p1, p2, p3 float32
			for l := 0; l < 16; l += 2 {
				p0 += float32(q[l]&15) * xb[l]
				p1 += float32(q[l]>>4) * xb[l+16]
				p2 += float32(q[l+1]&15) * xb[l+1]
				p3 += float32(q[l+1]>>4) * xb[l+17]
			}
			// Σ (q-8)·x = Σ q·x - 8·Σ x
			s += f16ToF32(le16(row[b*18:])) * (((p0 + p1) + (p2 + p3)) - 8*xs[b])
		}
		dst[j] = s
	}
}

// nib16 returns Σ q·x over a 32-weight block of 16 nibble bytes q (low
// nibbles weights 0..15, high 16..31), with hi (when not nil) supplying the
// fifth bit of weight l as bit l.
func nib16(q []byte, hi uint32, xb []float32) float32 {
	q, xb = q[:16], xb[:32]
	var p0, p1, p2, p3 float32
	for l := 0; l < 16; l += 2 {
		p0 += float32(uint32(q[l]&15)|(hi>>l&1)<<4) * xb[l]
		p1 += float32(uint32(q[l]>>4)|(hi>>(l+16)&1)<<4) * xb[l+16]
		p2 += float32(uint32(q[l+1]&15)|(hi>>(l+1)&1)<<4) * xb[l+1]
		p3 += float32(uint32(q[l+1]>>4)|(hi>>(l+17)&1)<<4) * xb[l+17]
	}
	return (p0 + p1) + (p2 + p3)
}

func qgemvQ4_1Go(dst, x, xs []float32, w []byte, rb int) {
	nb := len(x) / 32
	for j := range dst {
		row := w[j*rb : j*rb+nb*20]
		var s float32
		for b := 0; b < nb; b++ {
			q := row[b*20 : b*20+20]
			// Σ (d·q + m)·x = d·Σ q·x + m·Σ x
			s += f16ToF32(le16(q))*nib16(q[4:], 0, x[b*32:]) + f16ToF32(le16(q[2:]))*xs[b]
		}
		dst[j] = s
	}
}

func qgemvQ5_0Go(dst, x, xs []float32, w []byte, rb int) {
	nb := len(x) / 32
	for j := range dst {
		row := w[j*rb : j*rb+nb*22]
		var s float32
		for b := 0; b < nb; b++ {
			q := row[b*22 : b*22+22]
			s += f16ToF32(le16(q)) * (nib16(q[6:], le32(q[2:]), x[b*32:]) - 16*xs[b])
		}
		dst[j] = s
	}
}

func qgemvQ5_1Go(dst, x, xs []float32, w []byte, rb int) {
	nb := len(x) / 32
	for j := range dst {
		row := w[j*rb : j*rb+nb*24]
		var s float32
		for b := 0; b < nb; b++ {
			q := row[b*24 : b*24+24]
			s += f16ToF32(le16(q))*nib16(q[8:], le32(q[4:]), x[b*32:]) + f16ToF32(le16(q[2:]))*xs[b]
		}
		dst[j] = s
	}
}

// iq4Dot returns Σ v·x over a 32-weight block of 16 nibble bytes q (low
// nibbles weights 0..15, high 16..31), v the table value each indexes.
func iq4Dot(q []byte, xb []float32) float32 {
	q, xb = q[:16], xb[:32]
	var p0, p1, p2, p3 float32
	for l := 0; l < 16; l += 2 {
		p0 += float32(iq4Values[q[l]&15]) * xb[l]
		p1 += float32(iq4Values[q[l]>>4]) * xb[l+16]
		p2 += float32(iq4Values[q[l+1]&15]) * xb[l+1]
		p3 += float32(iq4Values[q[l+1]>>4]) * xb[l+17]
	}
	return (p0 + p1) + (p2 + p3)
}

func qgemvIQ4NLGo(dst, x, xs []float32, w []byte, rb int) {
	nb := len(x) / 32
	for j := range dst {
		row := w[j*rb : j*rb+nb*18]
		var s float32
		for b := 0; b < nb; b++ {
			q := row[b*18 : b*18+18]
			s += f16ToF32(le16(q)) * iq4Dot(q[2:], x[b*32:])
		}
		dst[j] = s
	}
}

func qgemvIQ4XSGo(dst, x, xs []float32, w []byte, rb int) {
	nb := len(x) / 256
	for j := range dst {
		row := w[j*rb : j*rb+nb*136]
		var s float32
		for b := 0; b < nb; b++ {
			q := row[b*136 : b*136+136]
			d := f16ToF32(le16(q))
			for ib := range 8 {
				s += d * float32(iq4xsScale(q, ib)) * iq4Dot(q[8+16*ib:], x[b*256+32*ib:])
			}
		}
		dst[j] = s
	}
}

// Q2_K's mins cover 16 weights: they multiply xs's sums over 16.
func qgemvQ2KGo(dst, x, xs []float32, w []byte, rb int) {
	nb := len(x) / 256
	s16 := xs[len(x)/32:]
	for j := range dst {
		row := w[j*rb : j*rb+nb*84]
		var s, mins float32
		for b := 0; b < nb; b++ {
			q := row[b*84 : b*84+84]
			sc, qs := q[:16], q[16:80]
			d, dmin := f16ToF32(le16(q[80:])), f16ToF32(le16(q[82:]))
			for n := 0; n < 2; n++ {
				qq := qs[32*n : 32*n+32]
				for sh := 0; sh < 4; sh++ {
					for h := 0; h < 2; h++ {
						is := 8*n + 2*sh + h
						xb := x[b*256+16*is : b*256+16*is+16]
						qh := qq[16*h : 16*h+16]
						var p0, p1 float32
						for l := 0; l < 16; l += 2 {
							p0 += float32(qh[l]>>(2*sh)&3) * xb[l]
							p1 += float32(qh[l+1]>>(2*sh)&3) * xb[l+1]
						}
						s += d * float32(sc[is]&15) * (p0 + p1)
						mins += dmin * float32(sc[is]>>4) * s16[16*b+is]
					}
				}
			}
		}
		dst[j] = s - mins
	}
}

func qgemvQ3KGo(dst, x, xs []float32, w []byte, rb int) {
	nb := len(x) / 256
	for j := range dst {
		row := w[j*rb : j*rb+nb*110]
		var s float32
		for b := 0; b < nb; b++ {
			q := row[b*110 : b*110+110]
			hm, qs, sb := q[:32], q[32:96], q[96:108]
			d := f16ToF32(le16(q[108:]))
			for n := 0; n < 2; n++ {
				qq := qs[32*n : 32*n+32]
				for sh := 0; sh < 4; sh++ {
					m := byte(1) << (4*n + sh)
					for h := 0; h < 2; h++ {
						is := 8*n + 2*sh + h
						xb := x[b*256+16*is : b*256+16*is+16]
						var p0, p1 float32
						for l := 0; l < 16; l += 2 {
							v0 := int(qq[16*h+l]>>(2*sh)&3) - 4
							v1 := int(qq[16*h+l+1]>>(2*sh)&3) - 4
							if hm[16*h+l]&m != 0 {
								v0 += 4
							}
							if hm[16*h+l+1]&m != 0 {
								v1 += 4
							}
							p0 += float32(v0) * xb[l]
							p1 += float32(v1) * xb[l+1]
						}
						lo := sb[is%8] >> (4 * uint(is/8)) & 15
						hi := sb[8+is%4] >> (2 * uint(is/4)) & 3
						s += d * float32(int(lo|hi<<4)-32) * (p0 + p1)
					}
				}
			}
		}
		dst[j] = s
	}
}

func qgemvQ4KGo(dst, x, xs []float32, w []byte, rb int) {
	nb := len(x) / 256
	for j := range dst {
		row := w[j*rb : j*rb+nb*144]
		var s, mins float32
		for b := 0; b < nb; b++ {
			q := row[b*144 : b*144+144]
			d, dmin := f16ToF32(le16(q)), f16ToF32(le16(q[2:]))
			sc, qs := q[4:16], q[16:144]
			for c := 0; c < 4; c++ {
				s1, m1 := scaleMinK4(2*c, sc)
				s2, m2 := scaleMinK4(2*c+1, sc)
				xb := x[b*256+64*c : b*256+64*c+64]
				qq := qs[32*c : 32*c+32]
				var p0, p1, p2, p3 float32
				for l := 0; l < 32; l += 2 {
					p0 += float32(qq[l]&15) * xb[l]
					p1 += float32(qq[l]>>4) * xb[l+32]
					p2 += float32(qq[l+1]&15) * xb[l+1]
					p3 += float32(qq[l+1]>>4) * xb[l+33]
				}
				s += d*float32(s1)*(p0+p2) + d*float32(s2)*(p1+p3)
				mins += dmin*float32(m1)*xs[b*8+2*c] + dmin*float32(m2)*xs[b*8+2*c+1]
			}
		}
		dst[j] = s - mins
	}
}

func qgemvQ5KGo(dst, x, xs []float32, w []byte, rb int) {
	nb := len(x) / 256
	for j := range dst {
		row := w[j*rb : j*rb+nb*176]
		var s, mins float32
		for b := 0; b < nb; b++ {
			q := row[b*176 : b*176+176]
			d, dmin := f16ToF32(le16(q)), f16ToF32(le16(q[2:]))
			sc, qh, qs := q[4:16], q[16:48], q[48:176]
			for c := 0; c < 4; c++ {
				s1, m1 := scaleMinK4(2*c, sc)
				s2, m2 := scaleMinK4(2*c+1, sc)
				xb := x[b*256+64*c : b*256+64*c+64]
				qq := qs[32*c : 32*c+32]
				var p0, p1, p2, p3 float32
				for l := 0; l < 32; l += 2 {
					h0, h1 := qh[l]>>(2*c), qh[l+1]>>(2*c)
					p0 += float32(qq[l]&15|(h0&1)<<4) * xb[l]
					p1 += float32(qq[l]>>4|(h0&2)<<3) * xb[l+32]
					p2 += float32(qq[l+1]&15|(h1&1)<<4) * xb[l+1]
					p3 += float32(qq[l+1]>>4|(h1&2)<<3) * xb[l+33]
				}
				s += d*float32(s1)*(p0+p2) + d*float32(s2)*(p1+p3)
				mins += dmin*float32(m1)*xs[b*8+2*c] + dmin*float32(m2)*xs[b*8+2*c+1]
			}
		}
		dst[j] = s - mins
	}
}

func qgemvQ6KGo(dst, x, xs []float32, w []byte, rb int) {
	nb := len(x) / 256
	for j := range dst {
		row := w[j*rb : j*rb+nb*210]
		var s float32
		for b := 0; b < nb; b++ {
			q := row[b*210 : b*210+210]
			d := f16ToF32(le16(q[208:]))
			for n := 0; n < 2; n++ {
				ql, qh, sc := q[64*n:64*n+64], q[128+32*n:160+32*n], q[192+8*n:200+8*n]
				xb := x[b*256+128*n : b*256+128*n+128]
				for h := 0; h < 2; h++ { // 16 weights per scale
					var p1, p2, p3, p4 float32
					for l := 16 * h; l < 16*h+16; l++ {
						hb := qh[l]
						p1 += float32(int(ql[l]&15|(hb&3)<<4)-32) * xb[l]
						p2 += float32(int(ql[l+32]&15|(hb>>2&3)<<4)-32) * xb[l+32]
						p3 += float32(int(ql[l]>>4|(hb>>4&3)<<4)-32) * xb[l+64]
						p4 += float32(int(ql[l+32]>>4|(hb>>6)<<4)-32) * xb[l+96]
					}
					s += d * (float32(int8(sc[h]))*p1 + float32(int8(sc[h+2]))*p2 +
						float32(int8(sc[h+4]))*p3 + float32(int8(sc[h+6]))*p4)
				}
			}
		}
		dst[j] = s
	}
}

// xsLen is the length of xs for rows of k weights.
func xsLen(k int) int { return k/32 + k/16 }

// xSums sets xs[b] = Σ x[32b : 32b+32] for b < len(x)/32 and, after them,
// xs[len(x)/32+h] = Σ x[16h : 16h+16]. len(xs) = xsLen(len(x)).
func xSums(xs, x []float32) {
	n32 := len(x) / 32
	s16 := xs[n32 : n32+len(x)/16]
	for h := range s16 {
		xh := x[16*h : 16*h+16]
		var s0, s1, s2, s3 float32
		for l := 0; l < 16; l += 4 {
			s0 += xh[l]
			s1 += xh[l+1]
			s2 += xh[l+2]
			s3 += xh[l+3]
		}
		s16[h] = (s0 + s1) + (s2 + s3)
	}
	for b := range xs[:n32] {
		xs[b] = s16[2*b] + s16[2*b+1]
	}
}
