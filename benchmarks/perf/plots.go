package main

import (
	"fmt"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// plots writes tokens/s vs threads and tokens/s vs batch size.
func plots(rep *Report) error {
	p := plot.New()
	p.Title.Text = "roe, random SmolLM2-135M shape: tokens/s vs threads"
	p.X.Label.Text = "threads"
	p.Y.Label.Text = "tokens/s"
	var lines []any
	for _, w := range []string{"f32", "bf16"} {
		for _, mt := range []string{"prefill512", "decode128"} {
			var xy plotter.XYs
			for _, t := range []int{1, 2} {
				xy = append(xy, plotter.XY{X: float64(t), Y: find(rep, "random-135M", w, t, mt)})
			}
			lines = append(lines, fmt.Sprintf("roe %s %s", w, mt), xy)
		}
	}
	for _, mt := range []string{"prefill512", "decode128"} {
		var xy plotter.XYs
		for _, t := range []int{1, 2} {
			if tr := rep.Torch[strconv.Itoa(t)]; tr != nil {
				xy = append(xy, plotter.XY{X: float64(t), Y: tr[mt]})
			}
		}
		if len(xy) > 0 {
			lines = append(lines, "PyTorch f32 "+mt, xy)
		}
	}
	if err := plotutil.AddLinePoints(p, lines...); err != nil {
		return err
	}
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	if err := p.Save(7*vg.Inch, 5*vg.Inch, filepath.Join(*outDir, "tokens_vs_threads.png")); err != nil {
		return err
	}

	q := plot.New()
	q.Title.Text = "roe batched decode: total tokens/s vs sequences"
	q.X.Label.Text = "sequences in the batch"
	q.Y.Label.Text = "tokens/s"
	lines = nil
	for _, w := range []string{"f32", "bf16"} {
		for _, t := range []int{1, 2} {
			var xy plotter.XYs
			for _, b := range rep.Batches {
				if b.Weights == w && b.Threads == t {
					xy = append(xy, plotter.XY{X: float64(b.Batch), Y: b.TokPerS})
				}
			}
			lines = append(lines, fmt.Sprintf("%s, %d thread(s)", w, t), xy)
		}
	}
	if err := plotutil.AddLinePoints(q, lines...); err != nil {
		return err
	}
	return q.Save(7*vg.Inch, 5*vg.Inch, filepath.Join(*outDir, "tokens_vs_batch.png"))
}
