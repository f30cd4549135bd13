package kernels

import "math"

// IQ4_NL and IQ4_XS quantization: each weight becomes the index of the
// table value (iq4Values) nearest to it over the block's scale. A block's
// scale is searched as the K-quants' are: the weight of largest magnitude
// is tried near either end of the table (−127 and 113), each try's indices
// give the least-squares scale, the best of those is rounded to f16 (both
// neighbours tried) and the indices chosen again against the rounded value
// the dequantizer will use. IQ4_XS then puts its eight sub-block scales on
// a six-bit grid d·(ls−32) under an f16 d, as Q3_K's and Q6_K's are.

// The tries for the weight of largest magnitude: from 8 inside the table's
// end to 12 past it, in steps of 2 (N(0,1) rows, relative RMSE: IQ4_NL
// 0.0752 and IQ4_XS 0.0750 with the K-quants' ±1.5 around the end, 0.0736
// and 0.0744 with these; steps of 1 from −4 to 6: 0.0740 and 0.0745).
const (
	iq4Steps  = 10
	iq4Rmin   = -8
	iq4Rdelta = 2
)

// iq4Mid holds the midpoints between neighbouring table values.
var iq4Mid = func() (m [16]float32) {
	for i := range 15 {
		m[i] = (float32(iq4Values[i]) + float32(iq4Values[i+1])) / 2
	}
	m[15] = math.MaxFloat32
	return m
}()

// iq4Index is the index of the table value nearest to v (ties to the
// lower): the number of midpoints below v, by a branch-free binary search
// (random weights made the branches of a plain one miss half the time).
func iq4Index(v float32) int {
	i := 0
	if v > iq4Mid[7] {
		i = 8
	}
	if v > iq4Mid[i+3] {
		i += 4
	}
	if v > iq4Mid[i+1] {
		i += 2
	}
	if v > iq4Mid[i] {
		i++
	}
	return i
}

// iq4Quant chooses x's indices for the dequantized values dl·iq4Values[q]
// (in float32, as the dequantizer computes them), writing q when it is not
// nil, and returns the squared error.
func iq4Quant(x []float32, dl float32, q []int) float64 {
	var e float64
	for i, v := range x {
		qi := 8 // value 1·dl: dl is 0, every index gives 0
		if dl != 0 {
			qi = iq4Index(v / dl)
		}
		r := float64(v) - float64(float32(dl*float32(iq4Values[qi])))
		e += float64(r * r)
		if q != nil {
			q[i] = qi
		}
	}
	return e
}

// fitIQ4 finds s (either sign) with x ≈ s·iq4Values[q] in the least
// squares over the tried index assignments.
func (k *kscratch) fitIQ4(x []float32) float32 {
	amax, vmax := absMaxSigned(x)
	if amax == 0 {
		return 0
	}
	best, bs := math.Inf(1), 0.0
	for _, top := range []float64{float64(iq4Values[0]), float64(iq4Values[15])} {
		sign := math.Copysign(1, top)
		for i := 0; i <= iq4Steps; i++ {
			lv := top + sign*(iq4Rmin+float64(iq4Rdelta*float64(i)))
			is := float32(lv / float64(vmax))
			var sxq, sqq, sxx float64
			for _, v := range x {
				fv, fq := float64(v), float64(iq4Values[iq4Index(float32(v*is))])
				sxq += float64(fv * fq)
				sqq += float64(fq * fq)
				sxx += float64(fv * fv)
			}
			if sqq == 0 {
				continue
			}
			s := sxq / sqq
			if e := sxx - float64(s*sxq); e < best {
				best, bs = e, s
			}
		}
	}
	return float32(bs)
}

// packIQ4 writes 32 indices as 16 bytes: weight j in the low nibble of
// byte j, weight j+16 in its high nibble.
func packIQ4(y []byte, q []int) {
	for j := range 16 {
		y[j] = byte(q[j] | q[j+16]<<4)
	}
}

// IQ4_NL: f16 d, 16 nibble bytes.
func (k *kscratch) quantIQ4NL(y []byte, x []float32) bool {
	dc, nd, ok := f16Cands(k.fitIQ4(x))
	if !ok {
		return false
	}
	best := math.Inf(1)
	var hd uint16
	for _, h := range dc[:nd] {
		if e := iq4Quant(x, f16ToF32(h), nil); e < best {
			best, hd = e, h
		}
	}
	put16(y, hd)
	iq4Quant(x, f16ToF32(hd), k.q[:32])
	packIQ4(y[2:18], k.q[:32])
	return true
}

// IQ4_XS: f16 d, scales_h (bits 2j..2j+1: the high bits of sub-block j's
// ls), scales_l (nibble j: its low bits), 8 × 16 nibble bytes; sub-block j
// dequantizes as d·(ls−32)·iq4Values[q].
func (k *kscratch) quantIQ4XS(y []byte, x []float32) bool {
	var smax float32
	for j := range 8 {
		k.s[j] = k.fitIQ4(x[32*j : 32*j+32])
		if math.Abs(float64(k.s[j])) > math.Abs(float64(smax)) {
			smax = k.s[j]
		}
	}
	// The largest scale maps to −32, the wider end of the grid.
	dc, nd, ok := f16Cands(smax / -32)
	if !ok {
		return false
	}
	best := math.Inf(1)
	var hd uint16
	var sc [16]int
	for _, h := range dc[:nd] {
		d := f16ToF32(h)
		var e float64
		for j := range 8 {
			xs := x[32*j : 32*j+32]
			s0 := 0
			if d != 0 {
				s0 = clampInt(roundInt(float64(k.s[j]/d)), -32, 31)
			}
			eb := math.Inf(1)
			for a := max(-32, s0-1); a <= min(31, s0+1); a++ {
				if e1 := iq4Quant(xs, float32(d*float32(a)), nil); e1 < eb {
					eb, sc[j] = e1, a
				}
			}
			e += eb
		}
		if e < best {
			best, hd, k.sc = e, h, sc
		}
	}
	d := f16ToF32(hd)
	put16(y, hd)
	var sh uint16
	clear(y[4:8])
	for j := range 8 {
		ls := k.sc[j] + 32
		sh |= uint16(ls>>4) << (2 * j)
		y[4+j/2] |= byte(ls&15) << (4 * (j % 2))
		iq4Quant(x[32*j:32*j+32], float32(d*float32(k.sc[j])), k.q[:32])
		packIQ4(y[8+16*j:24+16*j], k.q[:32])
	}
	put16(y[2:], sh)
	return true
}
