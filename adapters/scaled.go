package adapters

import (
	"roe/kernels"
	"roe/model"
)

// Scaled returns l applied at scale s without a scaled copy of its weights:
// each delta is computed as l's and added times s (y += s·Δ(x)), so one
// stored adapter serves any per-request scale. s = 1 returns l itself.
func Scaled(l *LoRA, s float32) model.Adapter {
	if s == 1 {
		return l
	}
	return &scaled{l: l, s: s}
}

type scaled struct {
	l *LoRA
	s float32
}

// AddDelta implements model.Adapter.
//
//	x: [rows, In], y: [rows, Out]
func (a *scaled) AddDelta(layer int, p model.Proj, x, y []float32, rows int) {
	pr := a.l.Pair(layer, p)
	if pr == nil || a.s == 0 {
		return
	}
	n := rows * pr.Out
	bp := scratch.Get().(*[]float32)
	if cap(*bp) < n {
		*bp = make([]float32, n)
	}
	d := (*bp)[:n]
	clear(d)
	a.l.AddDelta(layer, p, x, d, rows) // takes a scratch buffer of its own
	kernels.Axpy(a.s, d, y[:n])
	scratch.Put(bp)
}
