package train

// The layers of the Llama-family forward, each forward next to its backward,
// llm.c style. Shapes are in the comments; R is the number of rows (tokens of
// all sequences, concatenated), H the hidden size. Backward functions ADD into
// the gradients they produce unless stated ("=" overwrites, "+=" accumulates).

import (
	"math"

	"roe/kernels"
	"roe/model"
)

// ---------------------------------------------------------------- helpers

// transpose writes dst = srcᵀ. It works in strips of 16 columns of src (16
// rows of dst): each src row contributes one 64-byte segment and each of the 16
// dst rows is written sequentially, which avoids the cache-set conflicts of
// square tiles when a dimension is a multiple of 4 KiB.
//
//	src: [rows, cols], dst: [cols, rows]
func transpose(dst, src []float32, rows, cols int) {
	_, _ = dst[rows*cols-1], src[rows*cols-1]
	strips := (cols + 15) / 16
	body := func(lo, hi int) {
		for sb := lo; sb < hi; sb++ {
			c0 := sb * 16
			if c0+16 > cols {
				for c := c0; c < cols; c++ {
					d := dst[c*rows : (c+1)*rows]
					for r := range d {
						d[r] = src[r*cols+c]
					}
				}
				continue
			}
			r := 0
			for ; r+4 <= rows; r += 4 {
				s0 := src[r*cols+c0 : r*cols+c0+16 : r*cols+c0+16]
				s1 := src[(r+1)*cols+c0 : (r+1)*cols+c0+16 : (r+1)*cols+c0+16]
				s2 := src[(r+2)*cols+c0 : (r+2)*cols+c0+16 : (r+2)*cols+c0+16]
				s3 := src[(r+3)*cols+c0 : (r+3)*cols+c0+16 : (r+3)*cols+c0+16]
				for j := 0; j < 16; j++ {
					d := dst[(c0+j)*rows+r : (c0+j)*rows+r+4 : (c0+j)*rows+r+4]
					d[0], d[1], d[2], d[3] = s0[j], s1[j], s2[j], s3[j]
				}
			}
			for ; r < rows; r++ {
				for j := 0; j < 16; j++ {
					dst[(c0+j)*rows+r] = src[r*cols+c0+j]
				}
			}
		}
	}
	if rows*cols < 1<<16 {
		body(0, strips)
		return
	}
	kernels.Parallel(strips, body)
}

// transposed returns a fresh srcᵀ.
func transposed(src []float32, rows, cols int) []float32 {
	dst := make([]float32, rows*cols)
	transpose(dst, src, rows, cols)
	return dst
}

// parallelRows runs fn over row ranges; small jobs stay on the caller.
func parallelRows(n, work int, fn func(lo, hi int)) {
	if n*work < 1<<14 {
		fn(0, n)
		return
	}
	kernels.Parallel(n, fn)
}

func scaleInPlace(x []float32, s float32) {
	for i := range x {
		x[i] *= s
	}
}

// ---------------------------------------------------------------- embedding

// embeddingForward gathers rows of the embedding table.
//
//	E: [V, H], ids: [R], out: [R, H] (=)
func embeddingForward(out []float32, E model.Weight, ids []int, H int) {
	for r, id := range ids {
		E.RowsTo(out[r*H:(r+1)*H], id, id+1)
	}
}

// embeddingBackward scatter-adds the row gradients into the table's gradient.
//
//	dout: [R, H], ids: [R], dE: [V, H] (+=)
func embeddingBackward(dE, dout []float32, ids []int, H int) {
	for r, id := range ids {
		kernels.Add(dE[id*H:(id+1)*H], dout[r*H:(r+1)*H])
	}
}

// ---------------------------------------------------------------- RMSNorm

// rmsnormForward computes out = w ⊙ x·rstd per row, rstd = 1/sqrt(mean(x²)+eps),
// exactly as kernels.RMSNorm (the inference forward) does.
//
//	x: [R, H], w: [H], out: [R, H] (=), rstd: [R] (=)
func rmsnormForward(out, rstd, x, w []float32, R, H int, eps float32) {
	parallelRows(R, H, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr := x[r*H : (r+1)*H]
			ss := kernels.Dot(xr, xr)
			rs := float32(1 / math.Sqrt(float64(ss)/float64(H)+float64(eps)))
			rstd[r] = rs
			kernels.RMSNorm(out[r*H:(r+1)*H], xr, w, eps)
		}
	})
}

// rmsnormBackward: with x̂ = x·rstd and y = w ⊙ x̂,
//
//	dx = rstd · (dy⊙w − x̂ · mean(dy⊙w⊙x̂)),  dw = Σ_rows dy ⊙ x̂
//	dout: [R, H], x: [R, H], rstd: [R], w: [H]; dx: [R, H] (+=), dw: [H] (+=, nil to skip)
func rmsnormBackward(dx, dw, dout, x, rstd, w []float32, R, H int) {
	parallelRows(R, 4*H, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			dy, xr, d := dout[r*H:(r+1)*H], x[r*H:(r+1)*H], dx[r*H:(r+1)*H]
			rs := rstd[r]
			var dot float64
			for i := range dy {
				dot += float64(dy[i] * w[i] * xr[i])
			}
			c := float32(dot/float64(H)) * rs * rs // x̂·mean(g⊙x̂) = x·c, g = dy⊙w
			for i := range dy {
				d[i] += rs * (dy[i]*w[i] - xr[i]*c)
			}
		}
	})
	if dw != nil {
		for r := 0; r < R; r++ {
			dy, xr, rs := dout[r*H:(r+1)*H], x[r*H:(r+1)*H], rstd[r]
			for i := range dw {
				dw[i] += dy[i] * xr[i] * rs
			}
		}
	}
}

// ---------------------------------------------------------------- linear (+ LoRA)

// mulN accumulates dx += dy·W. A float32 W is transposed whole; a bf16 or
// quantized one (a frozen base) is widened a panel of rows at a time, so a
// GGUF base is never held in float32 (QLoRA's memory, not the float32
// model's).
//
//	dy: [R, out], W: [out, in], dx: [R, in] (+=)
func mulN(dx, dy []float32, W model.Weight, R int) {
	out, in := W.Rows, W.Cols
	t := make([]float32, R*in)
	if f := W.Float32(); f != nil {
		kernels.MatMulT(t, dy[:R*out], transposed(f, out, in), R, in, out)
		kernels.Add(dx[:R*in], t)
		return
	}
	P := min(out, max(8, mulNPanelFloats/in))
	p, pT, dyp := make([]float32, P*in), make([]float32, in*P), make([]float32, R*P)
	for o0 := 0; o0 < out; o0 += P {
		n := min(P, out-o0)
		parallelRows(n, in, func(lo, hi int) { W.RowsTo(p[lo*in:hi*in], o0+lo, o0+hi) })
		transpose(pT[:in*n], p[:n*in], n, in)
		for r := range R {
			copy(dyp[r*n:(r+1)*n], dy[r*out+o0:r*out+o0+n])
		}
		kernels.MatMulT(t, dyp[:R*n], pT[:in*n], R, in, n)
		kernels.Add(dx[:R*in], t)
	}
}

// mulNPanelFloats bounds the part of a frozen weight widened at a time by
// mulN (256 KiB: 256 rows of a 256-wide matrix, 32 of a 2048-wide one).
const mulNPanelFloats = 1 << 16

// loraParams is one LoRA module as the linear layer sees it: ΔW = s·B·A.
type loraParams struct {
	A     []float32 // [r, in]
	B     []float32 // [out, r]
	r     int
	scale float32
}

// linearForward computes y = x·Wᵀ (+ b) (+ s·(x·Aᵀ)·Bᵀ), keeping xa = x·Aᵀ.
//
//	x: [R, in], W: [out, in], b: [out] or nil, y: [R, out] (=), xa: [R, r] (=)
func linearForward(y, x []float32, W model.Weight, b []float32, lo *loraParams, xa []float32, R, out, in int) {
	W.MulT(y[:R*out], x[:R*in], R)
	if b != nil {
		for r := 0; r < R; r++ {
			kernels.Add(y[r*out:(r+1)*out], b)
		}
	}
	if lo != nil {
		kernels.MatMulT(xa, x, lo.A, R, lo.r, in) // [R, r]
		d := make([]float32, R*out)
		bs := make([]float32, len(lo.B))
		for i, v := range lo.B {
			bs[i] = v * lo.scale
		}
		kernels.MatMulT(d, xa, bs, R, out, lo.r)
		kernels.Add(y[:R*out], d)
	}
}

// linearGrads receives a linear layer's parameter gradients; nil fields are skipped.
type linearGrads struct {
	dW, db []float32 // [out, in], [out] (+=)
	dA, dB []float32 // [r, in], [out, r] (+=)
}

// linearBackward backpropagates y = x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ:
//
//	dx  = dy·W + s·(dy·B)·A           dW = dyᵀ·x        db = Σ_rows dy
//	dB  = s·dyᵀ·xa                    dA = s·(dy·B)ᵀ·x
//	dy: [R, out], x: [R, in], xT = xᵀ [in, R] (needed only for dW), xa: [R, r];
//	dx: [R, in] (+=, nil to skip)
func linearBackward(dx []float32, g linearGrads, dy, x, xT []float32, W model.Weight, lo *loraParams, xa []float32, R, out, in int) {
	if dx != nil {
		mulN(dx, dy, W, R)
	}
	if g.dW != nil {
		t := make([]float32, out*in)
		kernels.MatMulT(t, transposed(dy, R, out), xT, out, in, R)
		kernels.Add(g.dW, t)
	}
	if g.db != nil {
		for r := 0; r < R; r++ {
			kernels.Add(g.db, dy[r*out:(r+1)*out])
		}
	}
	if lo == nil {
		return
	}
	rk := lo.r
	if g.dB != nil { // dBᵀ = s·xaᵀ·dy: [r, out]
		t := make([]float32, rk*out)
		accumTN(t, lo.scale, xa, dy, R, rk, out)
		for o := 0; o < out; o++ {
			for k := 0; k < rk; k++ {
				g.dB[o*rk+k] += t[k*out+o]
			}
		}
	}
	// dxa = s·dy·B: [R, r]
	dxa := make([]float32, R*rk)
	kernels.MatMulT(dxa, dy, transposed(lo.B, out, rk), R, rk, out)
	scaleInPlace(dxa, lo.scale)
	if g.dA != nil { // dA = dxaᵀ·x: [r, in]
		accumTN(g.dA, 1, dxa, x, R, rk, in)
	}
	if dx != nil {
		t := make([]float32, R*in)
		kernels.MatMulT(t, dxa, transposed(lo.A, rk, in), R, in, rk)
		kernels.Add(dx[:R*in], t)
	}
}

// accumTN computes dst += alpha·aᵀ·b for a narrow a, as R rank-k updates
// (one Axpy per row and column of a): no transpose of the tall b is needed.
//
//	a: [R, k], b: [R, n], dst: [k, n] (+=)
func accumTN(dst []float32, alpha float32, a, b []float32, R, k, n int) {
	body := func(lo, hi int) {
		for r := 0; r < R; r++ {
			br := b[r*n : (r+1)*n]
			for kk := lo; kk < hi; kk++ {
				if c := alpha * a[r*k+kk]; c != 0 {
					kernels.Axpy(c, br, dst[kk*n:(kk+1)*n])
				}
			}
		}
	}
	if R*k*n < 1<<16 {
		body(0, k)
		return
	}
	kernels.Parallel(k, body)
}

// ---------------------------------------------------------------- RoPE

// ropeTable holds cos and sin of pos·invFreq[i] for pos < n, computed in
// float64, times the longrope attention factor, and rounded, as the
// inference forward does.
type ropeTable struct {
	half     int       // rotary dims / 2: RoPE turns the first 2·half dims of each head
	cos, sin []float32 // [n, half]
	nsin     []float32 // −sin: the backward rotates by −angle
}

func newRopeTable(invFreq []float64, scale float64, n int) *ropeTable {
	half := len(invFreq)
	t := &ropeTable{half: half, cos: make([]float32, n*half), sin: make([]float32, n*half), nsin: make([]float32, n*half)}
	for p := 0; p < n; p++ {
		for i, f := range invFreq {
			s, c := math.Sincos(float64(p) * f)
			t.cos[p*half+i], t.sin[p*half+i], t.nsin[p*half+i] = float32(c*scale), float32(s*scale), -float32(s*scale)
		}
	}
	return t
}

// ropeForward rotates every head of every row in place, rotate_half style
// (dimension i with i+half, over the first 2·half dims), at the row's position.
//
//	x: [R, nh·hd], pos: [R]
func ropeForward(x []float32, pos []int, nh, hd int, tab *ropeTable) {
	ropeApply(x, pos, nh, hd, tab.half, tab.cos, tab.sin)
}

// ropeBackward: RoPE is a rotation (times the attention factor), so its
// transpose is the rotation by −angle times the same factor.
//
//	dx: [R, nh·hd] (in place: d(after) → d(before))
func ropeBackward(dx []float32, pos []int, nh, hd int, tab *ropeTable) {
	ropeApply(dx, pos, nh, hd, tab.half, tab.cos, tab.nsin)
}

func ropeApply(x []float32, pos []int, nh, hd, half int, cos, sin []float32) {
	parallelRows(len(pos), nh*hd, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			p := pos[r]
			c, s := cos[p*half:(p+1)*half], sin[p*half:(p+1)*half]
			for h := 0; h < nh; h++ {
				kernels.RoPE(x[(r*nh+h)*hd:(r*nh+h)*hd+2*half], c, s)
			}
		}
	})
}

// ---------------------------------------------------------------- attention

// visible is the first key query i sees: 0, or i − window + 1 on a sliding layer.
func (a attnSpec) visible(i int) int {
	if a.window > 0 {
		return max(0, i-a.window+1)
	}
	return 0
}

// attnProbs computes one head's attention probabilities for one sequence:
// P = softmax(softcap(scale·Q·Kᵀ)) over the keys j each query i sees (j ≤ i,
// i − j < window), zero elsewhere. With a softcap, capT gets tanh(s/cap) of
// the visible scores s (the backward's 1 − tanh²).
//
//	q: rows of stride ldq, k: rows of stride ldk (both already at the head's
//	offset), P: [T, T] (=), capT: [T, T] (=) or nil
func attnProbs(P, capT, q []float32, ldq int, k []float32, ldk int, T int, a attnSpec) {
	kernels.MatMulTStrided(P, T, q, ldq, k, ldk, T, T, a.hd)
	for i := 0; i < T; i++ {
		lo := a.visible(i)
		row := P[i*T+lo : i*T+i+1]
		for j := range row {
			row[j] *= a.scale
		}
		if a.softcap > 0 {
			ct := capT[i*T+lo : i*T+i+1]
			for j, s := range row {
				t := float32(math.Tanh(float64(s / a.softcap)))
				ct[j], row[j] = t, a.softcap*t
			}
		}
		kernels.Softmax(row)
		clear(P[i*T : i*T+lo])
		clear(P[i*T+i+1 : (i+1)*T])
	}
}

// seqSpan is one sequence's rows [r0, r0+T).
type seqSpan struct{ r0, T int }

// attentionForward: grouped-query causal attention, per sequence and head;
// query head h reads kv head h/(nh/nkv).
//
//	q: [R, nh·hd], k, v: [R, nkv·hd] (RoPE applied), out: [R, nh·hd] (=)
func attentionForward(out, q, k, v []float32, seqs []seqSpan, a attnSpec) {
	nh, nkv, hd := a.nh, a.nkv, a.hd
	group := nh / nkv
	qd, kvd := nh*hd, nkv*hd
	type item struct{ s, h int }
	items := make([]item, 0, len(seqs)*nh)
	for s := range seqs {
		for h := 0; h < nh; h++ {
			items = append(items, item{s, h})
		}
	}
	kernels.Parallel(len(items), func(lo, hi int) {
		for _, it := range items[lo:hi] {
			sp, h := seqs[it.s], it.h
			T, g := sp.T, h/group
			P := make([]float32, T*T)
			var capT []float32
			if a.softcap > 0 {
				capT = make([]float32, T*T)
			}
			attnProbs(P, capT, q[sp.r0*qd+h*hd:], qd, k[sp.r0*kvd+g*hd:], kvd, T, a)
			vt := make([]float32, hd*T) // Vᵀ: [hd, T]
			for t := 0; t < T; t++ {
				for d, x := range v[(sp.r0+t)*kvd+g*hd : (sp.r0+t)*kvd+g*hd+hd] {
					vt[d*T+t] = x
				}
			}
			kernels.MatMulTStrided(out[sp.r0*qd+h*hd:], qd, P, T, vt, T, T, hd, T)
		}
	})
}

// attentionBackward recomputes P from q and k (it is not stored), then with
// O = P·V, S = scale·Q·Kᵀ and C = softcap(S) (C = S without a cap):
//
//	dP = dO·Vᵀ   dV = Pᵀ·dO   dC = P ⊙ (dP − rowsum(dP ⊙ P))
//	dS = dC ⊙ (1 − tanh²(S/cap))   dQ = scale·dS·K   dK = scale·dSᵀ·Q
//
// A kv head's dK and dV sum over the query heads of its group.
//
//	dout: [R, nh·hd]; dq: [R, nh·hd] (=), dk, dv: [R, nkv·hd] (=)
func attentionBackward(dq, dk, dv, dout, q, k, v []float32, seqs []seqSpan, a attnSpec) {
	nh, nkv, hd := a.nh, a.nkv, a.hd
	group := nh / nkv
	qd, kvd := nh*hd, nkv*hd
	sc := a.scale
	type item struct{ s, g int }
	items := make([]item, 0, len(seqs)*nkv)
	for s := range seqs {
		for g := 0; g < nkv; g++ {
			items = append(items, item{s, g})
		}
	}
	kernels.Parallel(len(items), func(lo, hi int) {
		for _, it := range items[lo:hi] {
			sp, g := seqs[it.s], it.g
			T := sp.T
			P := make([]float32, T*T)
			dP := make([]float32, T*T)
			var capT []float32
			if a.softcap > 0 {
				capT = make([]float32, T*T)
			}
			tT := make([]float32, T*T) // transposes of P and dS
			dOT := make([]float32, hd*T)
			QT := make([]float32, hd*T)
			KT := make([]float32, hd*T)
			acc := make([]float32, T*hd)
			dkAcc := make([]float32, T*hd)
			dvAcc := make([]float32, T*hd)
			kg := k[sp.r0*kvd+g*hd:]
			vg := v[sp.r0*kvd+g*hd:]
			for t := 0; t < T; t++ {
				for d, x := range kg[t*kvd : t*kvd+hd] {
					KT[d*T+t] = x
				}
			}
			for h := g * group; h < (g+1)*group; h++ {
				qh := q[sp.r0*qd+h*hd:]
				dOh := dout[sp.r0*qd+h*hd:]
				attnProbs(P, capT, qh, qd, kg, kvd, T, a)
				// dP = dO·Vᵀ: [T, T]
				kernels.MatMulTStrided(dP, T, dOh, qd, vg, kvd, T, T, hd)
				// dV += Pᵀ·dO
				transpose(tT, P, T, T)
				for t := 0; t < T; t++ {
					for d, x := range dOh[t*qd : t*qd+hd] {
						dOT[d*T+t] = x
					}
					for d, x := range qh[t*qd : t*qd+hd] {
						QT[d*T+t] = x
					}
				}
				kernels.MatMulT(acc, tT, dOT, T, hd, T)
				kernels.Add(dvAcc, acc)
				// dS (in dP), scaled
				for i := 0; i < T; i++ {
					lo := a.visible(i)
					p, d := P[i*T+lo:i*T+i+1], dP[i*T+lo:i*T+i+1]
					var s float64
					for j := range p {
						s += float64(p[j] * d[j])
					}
					sf := float32(s)
					for j := range p {
						d[j] = sc * p[j] * (d[j] - sf)
					}
					if capT != nil {
						for j, t := range capT[i*T+lo : i*T+i+1] {
							d[j] *= 1 - t*t
						}
					}
					clear(dP[i*T : i*T+lo])
					clear(dP[i*T+i+1 : (i+1)*T])
				}
				// dQ = dS·K
				kernels.MatMulTStrided(dq[sp.r0*qd+h*hd:], qd, dP, T, KT, T, T, hd, T)
				// dK += dSᵀ·Q
				transpose(tT, dP, T, T)
				kernels.MatMulT(acc, tT, QT, T, hd, T)
				kernels.Add(dkAcc, acc)
			}
			for t := 0; t < T; t++ {
				r := (sp.r0 + t) * kvd
				copy(dk[r+g*hd:r+g*hd+hd], dkAcc[t*hd:(t+1)*hd])
				copy(dv[r+g*hd:r+g*hd+hd], dvAcc[t*hd:(t+1)*hd])
			}
		}
	})
}

// ---------------------------------------------------------------- soft-capping

// softcapForward replaces x by cap·tanh(x/cap) and returns tanh(x/cap).
//
//	x: [n]
func softcapForward(x []float32, cap float32) []float32 {
	t := make([]float32, len(x))
	parallelRows(len(x)/1024+1, 1024*20, func(lo, hi int) {
		for i := lo * 1024; i < min(len(x), hi*1024); i++ {
			t[i] = float32(math.Tanh(float64(x[i] / cap)))
			x[i] = cap * t[i]
		}
	})
	return t
}

// softcapBackward: d/dx cap·tanh(x/cap) = 1 − tanh²(x/cap).
//
//	dy: [n] (in place: d(after) → d(before)), t: [n] tanh(x/cap)
func softcapBackward(dy, t []float32) {
	for i, v := range t {
		dy[i] *= 1 - v*v
	}
}

// ---------------------------------------------------------------- GeGLU

// gegluForward computes h = gelu_tanh(g) ⊙ u, the same function as the
// inference forward (model.GELUTanh).
//
//	g, u, h: [n] (h =)
func gegluForward(h, g, u []float32) {
	parallelRows(len(h)/256+1, 256*20, func(lo, hi int) {
		for i := lo * 256; i < min(len(h), hi*256); i++ {
			h[i] = model.GELUTanh(g[i]) * u[i]
		}
	})
}

// gegluBackward: with z = √(2/π)·(g + 0.044715·g³) and t = tanh z,
// gelu(g) = g/2·(1 + t) and gelu'(g) = (1 + t)/2 + g/2·(1 − t²)·√(2/π)·(1 + 3·0.044715·g²):
//
//	du = dh ⊙ gelu(g),   dg = dh ⊙ u ⊙ gelu'(g)
//	dh, g, u: [n]; dg, du: [n] (=)
func gegluBackward(dg, du, dh, g, u []float32) {
	const c = 0.7978845608028654 // √(2/π)
	parallelRows(len(dh)/256+1, 256*20, func(lo, hi int) {
		for i := lo * 256; i < min(len(dh), hi*256); i++ {
			x := float64(g[i])
			t := math.Tanh(c * (x + 0.044715*x*x*x))
			gelu := 0.5 * x * (1 + t)
			d := 0.5*(1+t) + 0.5*x*(1-t*t)*c*(1+3*0.044715*x*x)
			du[i] = dh[i] * float32(gelu)
			dg[i] = dh[i] * u[i] * float32(d)
		}
	})
}

// ---------------------------------------------------------------- SwiGLU

// swigluForward computes h = silu(g) ⊙ u, silu(g) = g·σ(g).
//
//	g, u, h: [n] (h =)
func swigluForward(h, g, u []float32) {
	copy(h, g)
	parallelRows(len(h)/64+1, 64*8, func(lo, hi int) {
		a, b := lo*64, min(len(h), hi*64)
		if a < b {
			kernels.SiLUMul(h[a:b], u[a:b])
		}
	})
}

// swigluBackward: with s = silu(g) and σ(g) = s/g,
//
//	du = dh ⊙ s,   dg = dh ⊙ u ⊙ σ(g)·(1 + g·(1−σ(g))) = dh ⊙ u ⊙ (σ + s·(1−σ))
//	dh, g, u: [n]; dg, du: [n] (=)
func swigluBackward(dg, du, dh, g, u []float32) {
	n := len(dh)
	const chunk = 256
	parallelRows((n+chunk-1)/chunk, chunk*8, func(lo, hi int) {
		var s, one [chunk]float32
		for i := range one {
			one[i] = 1
		}
		for c := lo; c < hi; c++ {
			a, b := c*chunk, min(n, c*chunk+chunk)
			sc := s[:b-a]
			copy(sc, g[a:b])
			kernels.SiLUMul(sc, one[:b-a]) // s = silu(g), vectorised
			for i, si := range sc {
				x := g[a+i]
				sg := float32(0.5)
				if x > 1e-20 || x < -1e-20 {
					sg = si / x
				}
				d := dh[a+i]
				du[a+i] = d * si
				dg[a+i] = d * u[a+i] * (sg + si*(1-sg))
			}
		}
	})
}
