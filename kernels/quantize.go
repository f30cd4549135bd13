package kernels

import (
	"fmt"
	"math"
)

// Quantization: float32 rows into ggml's block formats (the inverse of
// DequantizeRow). Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1 choose scales and round
// exactly as ggml's reference row quantizers do (no importance weights), so
// their blocks equal llama-quantize's byte for byte. The K-quants search each
// sub-block's scale (and min) for the least squared error, then quantize the
// sub-block scales against an f16 super-block scale and refine them against
// the rounded values the dequantizer will actually produce.
//
// Every product that feeds a sum or a rounding is converted explicitly
// (float32(a*b), float64(a*b)) so that no compiler fuses it into an FMA: the
// bytes are the same on every architecture.

// QuantizeRow packs one row of float32 weights into type t. Non-finite
// weights, and weights too large for the type's f16 scales (or, for F16 and
// BF16, for the type itself), are refused with ErrRange; dst is then left in
// an unspecified state.
//
//	src: [n] weights, dst: RowBytes(t, n) bytes
func QuantizeRow(t QType, dst []byte, src []float32) error {
	switch t {
	case F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS:
	default:
		return fmt.Errorf("quantize: tensor type %s: %w", t, ErrType)
	}
	rb, err := RowBytes(t, len(src))
	if err != nil {
		return fmt.Errorf("quantize: %w", err)
	}
	if len(dst) != rb {
		return fmt.Errorf("quantize: a %s row of %d weights is %d bytes, not %d: %w", t, len(src), rb, len(dst), ErrSize)
	}
	for i, v := range src {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("quantize: weight %d is %v: %w", i, v, ErrRange)
		}
	}
	bs, bb := t.BlockSize(), t.BlockBytes()
	var k kscratch
	for b := 0; b < len(src)/bs; b++ {
		x, y := src[b*bs:(b+1)*bs], dst[b*bb:(b+1)*bb]
		ok := true
		switch t {
		case F32:
			put32(y, math.Float32bits(x[0]))
		case F16:
			h := f32ToF16(x[0])
			put16(y, h)
			ok = f16Finite(h)
		case BF16:
			h := ToBF16(x[0])
			put16(y, h)
			ok = h&0x7f80 != 0x7f80
		case Q8_0:
			ok = quantQ8_0(y, x)
		case Q4_0:
			ok = quantQ4_0(y, x)
		case Q4_1:
			ok = quantQ4_1(y, x)
		case Q5_0:
			ok = quantQ5_0(y, x)
		case Q5_1:
			ok = quantQ5_1(y, x)
		case Q2_K:
			ok = k.quantQ2K(y, x)
		case Q3_K:
			ok = k.quantQ3K(y, x)
		case Q4_K:
			ok = k.quantQ4K(y, x)
		case Q5_K:
			ok = k.quantQ5K(y, x)
		case Q6_K:
			ok = k.quantQ6K(y, x)
		case IQ4_NL:
			ok = k.quantIQ4NL(y, x)
		case IQ4_XS:
			ok = k.quantIQ4XS(y, x)
		}
		if !ok {
			return fmt.Errorf("quantize: %s block %d: weights up to %g overflow the type's f16 scales: %w", t, b, maxAbs(x), ErrRange)
		}
	}
	return nil
}

func put16(b []byte, v uint16) { b[0], b[1] = byte(v), byte(v>>8) }
func put32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}

func maxAbs(x []float32) float32 {
	var m float32
	for _, v := range x {
		m = max(m, float32(math.Abs(float64(v))))
	}
	return m
}

// f32ToF16 rounds a float32 to IEEE half precision, to nearest with ties to
// even (what ggml's conversion does on every CPU); overflow gives infinity,
// NaN stays NaN.
func f32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	man := b & 0x7fffff
	if exp == 0xff {
		if man != 0 {
			return sign | 0x7e00 | uint16(man>>13)
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 31 {
		return sign | 0x7c00
	}
	var r, rem, half uint32
	if e <= 0 {
		// Subnormal half (or zero): shift the full significand down.
		s := uint32(14 - e) // 13 mantissa bits dropped, plus 1-e
		if s > 25 {
			return sign
		}
		m := man | 0x800000
		r, rem, half = m>>s, m&(1<<s-1), 1<<(s-1)
	} else {
		r, rem, half = uint32(e)<<10|man>>13, man&0x1fff, 0x1000
	}
	if rem > half || rem == half && r&1 == 1 {
		r++ // may carry into the exponent, up to infinity: both correct
	}
	return sign | uint16(r)
}

func f16Finite(h uint16) bool { return h&0x7c00 != 0x7c00 }

// f16Round is f rounded to f16 and back, and whether it stayed finite.
func f16Round(f float32) (uint16, float32, bool) {
	h := f32ToF16(f)
	return h, f16ToF32(h), f16Finite(h)
}

// The legacy types follow ggml's reference quantizers: Q8_0 and the
// symmetric 4/5-bit types scale by the weight of largest magnitude (mapped
// to -8 or -16, the wider end), the "_1" types span [min, max]; the quant is
// truncated after adding the offset plus one half.

func absMaxSigned(x []float32) (amax, vmax float32) {
	for _, v := range x {
		if a := float32(math.Abs(float64(v))); amax < a {
			amax, vmax = a, v
		}
	}
	return amax, vmax
}

func minMax(x []float32) (lo, hi float32) {
	lo, hi = math.MaxFloat32, -math.MaxFloat32
	for _, v := range x { // comparisons, not min/max: a -0 must not replace a +0
		if v < lo {
			lo = v
		}
		if v > hi {
			hi = v
		}
	}
	return lo, hi
}

// truncClamp is C's truncating float-to-int conversion, clamped to
// [lo, hi]. For finite scales it is exactly ggml's; when 1/d overflowed (d
// subnormal, so its f16 is 0 and the quants do not matter) the NaNs and
// infinities give the same bytes on every architecture.
func truncClamp(v float32, lo, hi int) int {
	switch {
	case v != v:
		return lo
	case v >= float32(hi):
		return hi
	case v <= float32(lo):
		return lo
	}
	return int(v)
}

func inv(d float32) float32 {
	if d == 0 {
		return 0
	}
	return 1 / d
}

func quantQ8_0(y []byte, x []float32) bool {
	amax, _ := absMaxSigned(x)
	d := amax / 127
	id := inv(d)
	h, _, ok := f16Round(d)
	put16(y, h)
	for j, v := range x {
		y[2+j] = byte(int8(truncClamp(float32(math.Round(float64(float32(v*id)))), -128, 127)))
	}
	return ok
}

func quantQ4_0(y []byte, x []float32) bool {
	_, vmax := absMaxSigned(x)
	d := vmax / -8
	id := inv(d)
	h, _, ok := f16Round(d)
	put16(y, h)
	for j := range 16 {
		a := truncClamp(float32(x[j]*id)+8.5, 0, 15)
		b := truncClamp(float32(x[16+j]*id)+8.5, 0, 15)
		y[2+j] = byte(a | b<<4)
	}
	return ok
}

func quantQ4_1(y []byte, x []float32) bool {
	lo, hi := minMax(x)
	d := (hi - lo) / 15
	id := inv(d)
	hd, _, ok1 := f16Round(d)
	hm, _, ok2 := f16Round(lo)
	put16(y, hd)
	put16(y[2:], hm)
	for j := range 16 {
		a := truncClamp(float32((x[j]-lo)*id)+0.5, 0, 15)
		b := truncClamp(float32((x[16+j]-lo)*id)+0.5, 0, 15)
		y[4+j] = byte(a | b<<4)
	}
	return ok1 && ok2 && !math.IsInf(float64(d), 0)
}

func quantQ5_0(y []byte, x []float32) bool {
	_, vmax := absMaxSigned(x)
	d := vmax / -16
	id := inv(d)
	h, _, ok := f16Round(d)
	put16(y, h)
	var qh uint32
	for j := range 16 {
		a := truncClamp(float32(x[j]*id)+16.5, 0, 31)
		b := truncClamp(float32(x[16+j]*id)+16.5, 0, 31)
		y[6+j] = byte(a&15 | (b&15)<<4)
		qh |= uint32(a>>4) << j
		qh |= uint32(b>>4) << (j + 16)
	}
	put32(y[2:], qh)
	return ok
}

func quantQ5_1(y []byte, x []float32) bool {
	lo, hi := minMax(x)
	d := (hi - lo) / 31
	id := inv(d)
	hd, _, ok1 := f16Round(d)
	hm, _, ok2 := f16Round(lo)
	put16(y, hd)
	put16(y[2:], hm)
	var qh uint32
	for j := range 16 {
		a := truncClamp(float32((x[j]-lo)*id)+0.5, 0, 31)
		b := truncClamp(float32((x[16+j]-lo)*id)+0.5, 0, 31)
		y[8+j] = byte(a&15 | (b&15)<<4)
		qh |= uint32(a>>4) << j
		qh |= uint32(b>>4) << (j + 16)
	}
	put32(y[4:], qh)
	return ok1 && ok2 && !math.IsInf(float64(d), 0)
}

// K-quants. A super-block of 256 weights has 16 or 8 sub-blocks, each with
// its own scale (and, for the affine types, min) stored as a small integer
// times an f16 super-block scale. Each sub-block's real-valued scale is
// found first (fitAffine, fitSym: a grid of starting scales, each followed
// by a least-squares refit of scale and offset on the rounded quants); the
// sub-block integers are then rounded against the f16 super-block scales
// and each is tried one step up and down, keeping the one whose actual
// dequantized values are closest to the weights.

// Search grid: candidate inverse scales (levels + rmin + rdelta·i)/range.
const (
	kSteps  = 10
	kRmin   = -0.5
	kRdelta = 0.2
)

// kscratch holds one super-block's working values.
type kscratch struct {
	q      [256]int    // quants
	sc, mn [16]int     // sub-block scale and min integers
	s, m   [16]float32 // fitted sub-block scales and mins
	qt     [32]int     // candidate quants of one sub-block
}

func roundInt(v float64) int { return int(math.Round(v)) }

func clampInt(v, lo, hi int) int { return min(max(v, lo), hi) }

// lsAffine fits x ≈ lo + s·q by least squares for fixed quants q, with
// s ≥ 0 and lo ≤ 0 (the formats store a non-negative min that is
// subtracted); it returns s, lo and the squared error.
func lsAffine(x []float32, q []int) (s, lo, e float64) {
	var sq, sqq, sx, sxq, sxx float64
	for i, v := range x {
		fv, fq := float64(v), float64(q[i])
		sq += fq
		sqq += float64(fq * fq)
		sx += fv
		sxq += float64(fv * fq)
		sxx += float64(fv * fv)
	}
	n := float64(len(x))
	// err expands Σ(x − lo − s·q)² in the sums.
	err := func(s, lo float64) float64 {
		return sxx - 2*float64(lo*sx) - 2*float64(s*sxq) + float64(n*float64(lo*lo)) +
			2*float64(float64(s*lo)*sq) + float64(float64(s*s)*sqq)
	}
	// Candidates: the free optimum when it is feasible, else the best with
	// lo = 0, or with s = 0 (the mean).
	s, lo = 0, min(0, sx/n)
	e = err(s, lo)
	if sqq > 0 {
		if s1 := max(0, sxq/sqq); err(s1, 0) < e {
			s, lo, e = s1, 0, err(s1, 0)
		}
	}
	if det := float64(n*sqq) - float64(sq*sq); det > 0 {
		s1 := (float64(n*sxq) - float64(sq*sx)) / det
		lo1 := (float64(sqq*sx) - float64(sq*sxq)) / det
		if s1 >= 0 && lo1 <= 0 && err(s1, lo1) < e {
			s, lo, e = s1, lo1, err(s1, lo1)
		}
	}
	return s, lo, max(e, 0)
}

// fitAffine finds s ≥ 0 and m ≥ 0 with x ≈ s·q − m, q in [0, nmax], for
// the least squared error it can find.
func (k *kscratch) fitAffine(x []float32, nmax int) (s, m float32) {
	lo, hi := minMax(x)
	flo, fhi := math.Min(float64(lo), 0), float64(hi)
	if fhi <= flo {
		return 0, float32(-flo)
	}
	q := k.qt[:len(x)]
	best, bs, blo := math.Inf(1), 0.0, flo
	for i := 0; i <= kSteps; i++ {
		is := (float64(nmax) + kRmin + float64(kRdelta*float64(i))) / (fhi - flo)
		cs, clo := 1/is, flo
		for range 2 { // quantize, refit, quantize again, refit
			for j, v := range x {
				q[j] = clampInt(roundInt((float64(v)-clo)/cs), 0, nmax)
			}
			var e float64
			cs, clo, e = lsAffine(x, q)
			if e < best {
				best, bs, blo = e, cs, clo
			}
			if cs == 0 {
				break
			}
		}
	}
	return float32(bs), float32(-blo)
}

// fitSym finds s (either sign) with x ≈ s·q, q in [-nneg, nneg-1]: the
// weight of largest magnitude is tried near either end of the range.
func (k *kscratch) fitSym(x []float32, nneg int) float32 {
	amax, vmax := absMaxSigned(x)
	if amax == 0 {
		return 0
	}
	q := k.qt[:len(x)]
	best, bs := math.Inf(1), 0.0
	for _, top := range []float64{-float64(nneg), float64(nneg - 1)} {
		sign := math.Copysign(1, top)
		for i := 0; i <= kSteps; i++ {
			lv := top + sign*(kRmin+float64(kRdelta*float64(i)))
			is := lv / float64(vmax)
			var sxq, sqq, sxx float64
			for j, v := range x {
				q[j] = clampInt(roundInt(float64(float64(v)*is)), -nneg, nneg-1)
				fv, fq := float64(v), float64(q[j])
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

// affineQuant quantizes x for dequantized values dl·q − dm (q in [0, nmax],
// in float32 as the dequantizer computes them), writing q when it is not
// nil, and returns the squared error.
func affineQuant(x []float32, dl, dm float32, nmax int, q []int) float64 {
	var e float64
	for i, v := range x {
		qi := 0
		if dl > 0 {
			qi = clampInt(roundInt(float64((v+dm)/dl)), 0, nmax)
		}
		r := float64(v) - float64(float32(dl*float32(qi))-dm)
		e += float64(r * r)
		if q != nil {
			q[i] = qi
		}
	}
	return e
}

// symQuant is affineQuant for dl·q, q in [-nneg, nneg-1].
func symQuant(x []float32, dl float32, nneg int, q []int) float64 {
	var e float64
	for i, v := range x {
		qi := 0
		if dl != 0 {
			qi = clampInt(roundInt(float64(v/dl)), -nneg, nneg-1)
		}
		r := float64(v) - float64(float32(dl*float32(qi)))
		e += float64(r * r)
		if q != nil {
			q[i] = qi
		}
	}
	return e
}

// f16Cands are the f16 values tried for a super-block scale of ideal
// value f: the nearest, and the next one up in magnitude when the nearest
// is smaller (then no sub-block scale has to be clamped). Both matter most
// for subnormal scales, whose relative precision is poor.
func f16Cands(f float32) (h [2]uint16, n int, ok bool) {
	h[0] = f32ToF16(f)
	if !f16Finite(h[0]) {
		return h, 0, false
	}
	n = 1
	if math.Abs(float64(f16ToF32(h[0]))) < math.Abs(float64(f)) {
		h[1] = h[0] + 1 // the next magnitude, for either sign
		if !f16Finite(h[1]) {
			return h, 1, true
		}
		n = 2
	}
	return h, n, true
}

// superAffine quantizes a super-block x of nsub sub-blocks as d·sc·q −
// dmin·mn with quants in [0, nmax] and sc, mn in [0, smax], filling k.q,
// k.sc and k.mn; it returns the f16 d and dmin and whether they are finite.
func (k *kscratch) superAffine(x []float32, nsub, nmax, smax int) (hd, hm uint16, ok bool) {
	sub := len(x) / nsub
	var maxS, maxM float32
	for j := range nsub {
		k.s[j], k.m[j] = k.fitAffine(x[j*sub:(j+1)*sub], nmax)
		maxS, maxM = max(maxS, k.s[j]), max(maxM, k.m[j])
	}
	dc, nd, ok1 := f16Cands(maxS / float32(smax))
	mc, nm, ok2 := f16Cands(maxM / float32(smax))
	if !ok1 || !ok2 {
		return 0, 0, false
	}
	best := math.Inf(1)
	var sc, mn [16]int
	for _, hd1 := range dc[:nd] {
		for _, hm1 := range mc[:nm] {
			d, dmin := f16ToF32(hd1), f16ToF32(hm1)
			var e float64
			for j := range nsub {
				e += affineScales(x[j*sub:(j+1)*sub], k.s[j], k.m[j], d, dmin, nmax, smax, &sc[j], &mn[j])
			}
			if e < best {
				best, hd, hm, k.sc, k.mn = e, hd1, hm1, sc, mn
			}
		}
	}
	d, dmin := f16ToF32(hd), f16ToF32(hm)
	for j := range nsub {
		dl, dm := float32(d*float32(k.sc[j])), float32(dmin*float32(k.mn[j]))
		affineQuant(x[j*sub:(j+1)*sub], dl, dm, nmax, k.q[j*sub:(j+1)*sub])
	}
	return hd, hm, true
}

// affineScales picks the integer scale and min of one sub-block (fitted
// s, m) against super-block scales d and dmin: the rounded values and their
// neighbours, by the error of the values they dequantize to.
func affineScales(x []float32, s, m, d, dmin float32, nmax, smax int, sc, mn *int) float64 {
	sc0, m0 := 0, 0
	if d > 0 {
		sc0 = clampInt(roundInt(float64(s/d)), 0, smax)
	}
	if dmin > 0 {
		m0 = clampInt(roundInt(float64(m/dmin)), 0, smax)
	}
	best := math.Inf(1)
	for a := max(0, sc0-1); a <= min(smax, sc0+1); a++ {
		for b := max(0, m0-1); b <= min(smax, m0+1); b++ {
			dl, dm := float32(d*float32(a)), float32(dmin*float32(b))
			if e := affineQuant(x, dl, dm, nmax, nil); e < best {
				best, *sc, *mn = e, a, b
			}
		}
	}
	return best
}

// superSym quantizes a super-block as d·sc·q with quants in [-nneg,
// nneg-1] and sc in [-sneg, sneg-1], filling k.q and k.sc.
func (k *kscratch) superSym(x []float32, nsub, nneg, sneg int) (hd uint16, ok bool) {
	sub := len(x) / nsub
	var smax float32
	for j := range nsub {
		k.s[j] = k.fitSym(x[j*sub:(j+1)*sub], nneg)
		if math.Abs(float64(k.s[j])) > math.Abs(float64(smax)) {
			smax = k.s[j]
		}
	}
	// The largest scale maps to -sneg, the wider end of the range.
	dc, nd, ok := f16Cands(smax / -float32(sneg))
	if !ok {
		return 0, false
	}
	best := math.Inf(1)
	var sc [16]int
	for _, hd1 := range dc[:nd] {
		d := f16ToF32(hd1)
		var e float64
		for j := range nsub {
			xs := x[j*sub : (j+1)*sub]
			sc0 := 0
			if d != 0 {
				sc0 = clampInt(roundInt(float64(k.s[j]/d)), -sneg, sneg-1)
			}
			eb := math.Inf(1)
			for a := max(-sneg, sc0-1); a <= min(sneg-1, sc0+1); a++ {
				if e1 := symQuant(xs, float32(d*float32(a)), nneg, nil); e1 < eb {
					eb, sc[j] = e1, a
				}
			}
			e += eb
		}
		if e < best {
			best, hd, k.sc = e, hd1, sc
		}
	}
	d := f16ToF32(hd)
	for j := range nsub {
		symQuant(x[j*sub:(j+1)*sub], float32(d*float32(k.sc[j])), nneg, k.q[j*sub:(j+1)*sub])
	}
	return hd, true
}

// Q2_K: scales[16] (scale | min<<4), qs[64], d, dmin; quant e of a
// 128-weight half n sits in qs[32n + e%32] at bit 2·(e%128/32).
func (k *kscratch) quantQ2K(y []byte, x []float32) bool {
	hd, hm, ok := k.superAffine(x, 16, 3, 15)
	clear(y)
	for j := range 16 {
		y[j] = byte(k.sc[j] | k.mn[j]<<4)
	}
	qs := y[16:80]
	for e, q := range k.q {
		r := e % 128
		qs[32*(e/128)+r%32] |= byte(q) << (2 * (r / 32))
	}
	put16(y[80:], hd)
	put16(y[82:], hm)
	return ok
}

// Q3_K: hmask[32], qs[64], scales[12], d; a quant's low two bits are packed
// as Q2_K's, its high bit (set for q ≥ 0) in hmask, and the 6-bit scales
// (offset 32) split into low nibbles and high bit pairs.
func (k *kscratch) quantQ3K(y []byte, x []float32) bool {
	hd, ok := k.superSym(x, 16, 4, 32)
	clear(y)
	hm, qs, sb := y[:32], y[32:96], y[96:108]
	for e, q := range k.q {
		n, r := e/128, e%128
		if q >= 0 {
			hm[r%32] |= 1 << (4*n + r/32)
		} else {
			q += 4
		}
		qs[32*n+r%32] |= byte(q) << (2 * (r / 32))
	}
	for j := range 16 {
		u := byte(k.sc[j] + 32)
		sb[j%8] |= (u & 15) << (4 * (j / 8))
		sb[8+j%4] |= (u >> 4) << (2 * (j / 4))
	}
	put16(y[108:], hd)
	return ok
}

// packScaleMinK4 stores eight 6-bit scales and mins as scaleMinK4 reads them.
func packScaleMinK4(s []byte, sc, mn *[16]int) {
	clear(s[:12])
	for j := range 8 {
		a, b := byte(sc[j]), byte(mn[j])
		if j < 4 {
			s[j] |= a
			s[j+4] |= b
		} else {
			s[j+4] = a&15 | (b&15)<<4
			s[j-4] |= (a >> 4) << 6
			s[j] |= (b >> 4) << 6
		}
	}
}

// Q4_K: d, dmin, scales[12], qs[128]: 64 weights per 32 bytes, low
// nibbles first.
func (k *kscratch) quantQ4K(y []byte, x []float32) bool {
	hd, hm, ok := k.superAffine(x, 8, 15, 63)
	put16(y, hd)
	put16(y[2:], hm)
	packScaleMinK4(y[4:16], &k.sc, &k.mn)
	qs := y[16:144]
	for c := range 4 {
		for l := range 32 {
			qs[32*c+l] = byte(k.q[64*c+l] | k.q[64*c+32+l]<<4)
		}
	}
	return ok
}

// Q5_K: Q4_K plus qh[32] with each quant's fifth bit.
func (k *kscratch) quantQ5K(y []byte, x []float32) bool {
	hd, hm, ok := k.superAffine(x, 8, 31, 63)
	put16(y, hd)
	put16(y[2:], hm)
	packScaleMinK4(y[4:16], &k.sc, &k.mn)
	qh, qs := y[16:48], y[48:176]
	clear(qh)
	for c := range 4 {
		for l := range 32 {
			a, b := k.q[64*c+l], k.q[64*c+32+l]
			qs[32*c+l] = byte(a&15 | (b&15)<<4)
			qh[l] |= byte(a>>4)<<(2*c) | byte(b>>4)<<(2*c+1)
		}
	}
	return ok
}

// Q6_K: ql[128], qh[64], scales[16] int8, d; quants offset by 32. In each
// 128-weight half, weights l, l+32, l+64, l+96 share a qh byte.
func (k *kscratch) quantQ6K(y []byte, x []float32) bool {
	hd, ok := k.superSym(x, 16, 32, 128)
	ql, qh, sc := y[:128], y[128:192], y[192:208]
	for n := range 2 {
		for l := range 32 {
			var u [4]byte
			for i := range 4 {
				u[i] = byte(k.q[128*n+32*i+l] + 32)
			}
			ql[64*n+l] = u[0]&15 | (u[2]&15)<<4
			ql[64*n+l+32] = u[1]&15 | (u[3]&15)<<4
			qh[32*n+l] = u[0]>>4 | (u[1]>>4)<<2 | (u[2]>>4)<<4 | (u[3]>>4)<<6
		}
	}
	for j := range 16 {
		sc[j] = byte(int8(k.sc[j]))
	}
	put16(y[208:], hd)
	return ok
}
