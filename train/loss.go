package train

import (
	"math"

	"roe/kernels"
	"roe/model"
)

// lmHeadForward computes the logits of the selected rows.
//
//	x: [N, H] final-norm output, L: [V, H] (lm_head, or the embedding when tied),
//	logits: [N, V] (=)
func lmHeadForward(logits, x []float32, L model.Weight, N, V, H int) {
	L.MulT(logits[:N*V], x[:N*H], N)
}

// lmHeadBackward: dx = dlogits·L, dL = dlogitsᵀ·x.
//
//	dlogits: [N, V], x: [N, H]; dx: [N, H] (=), dL: [V, H] (+=, nil to skip)
func lmHeadBackward(dx, dL, dlogits, x []float32, L model.Weight, N, V, H int) {
	clear(dx[:N*H])
	mulN(dx, dlogits, L, N)
	if dL != nil {
		t := make([]float32, V*H)
		kernels.MatMulT(t, transposed(dlogits, N, V), transposed(x, N, H), V, H, N)
		kernels.Add(dL, t)
	}
}

// crossEntropyForwardBackward is the shifted causal-LM loss, already gathered
// to the N counted predictions: row j of logits predicts targets[j].
//
//	loss = (1/N) Σ_j −log softmax(logits_j)[targets_j]
//	d loss / d logits_j = (softmax(logits_j) − onehot(targets_j)) / N
//
// logits: [N, V], overwritten by d loss / d logits. Returns the loss and the
// per-row −log p(target), both float64 (from the float32 softmax, whose exp is
// accurate to ~2.5e-7 relative).
func crossEntropyForwardBackward(logits []float32, targets []int, N, V int) (float64, []float64) {
	nll := make([]float64, N)
	inv := float32(1 / float64(N))
	parallelRows(N, 4*V, func(lo, hi int) {
		for j := lo; j < hi; j++ {
			row := logits[j*V : (j+1)*V]
			y := targets[j]
			// −log p_y = logsumexp − z_y = −log p_max − (z_y − max): p_max ≥ 1/V
			// cannot underflow, unlike p_y.
			am := 0
			for i, v := range row {
				if v > row[am] {
					am = i
				}
			}
			zy := float64(row[y] - row[am])
			kernels.Softmax(row)
			nll[j] = -math.Log(float64(row[am])) - zy
			for i := range row {
				row[i] *= inv
			}
			row[y] -= inv
		}
	})
	var loss float64
	for _, v := range nll {
		loss += v
	}
	return loss / float64(N), nll
}
