package kernels

// Fused quantized GEMV in Go (the portable set): each weight block is
// unpacked into registers and multiplied with x on the spot, never stored.
// Per block the quants are summed against x first and the block's scale is
// applied once; a Q4_K block's mins multiply the precomputed sums of x.

// qgemvFunc computes dst[j] = x · w_j for j < len(dst), where w_j is the
// row at w[j·rb:], len(x) weights of one type; xs holds the sums of x over
// each 32 weights (len(x)/32 of them).
type qgemvFunc func(dst, x, xs []float32, w []byte, rb int)

// qgemvGo is the portable set's table.
var qgemvGo = [32]qgemvFunc{Q8_0: qgemvQ8_0Go, Q4_0: qgemvQ4_0Go, Q4_K: qgemvQ4KGo, Q6_K: qgemvQ6KGo}

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

// xSums sets xs[b] = Σ x[32b : 32b+32].
func xSums(xs, x []float32) {
	for b := range xs {
		xb := x[32*b : 32*b+32]
		var s0, s1, s2, s3 float32
		for l := 0; l < 32; l += 4 {
			s0 += xb[l]
			s1 += xb[l+1]
			s2 += xb[l+2]
			s3 += xb[l+3]
		}
		xs[b] = (s0 + s1) + (s2 + s3)
	}
}
