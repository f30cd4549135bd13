package main

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// plots writes one PNG per measured section.
func plots(rep *Report) error {
	if rep.Seen != nil {
		if err := plotSeen(rep.Seen); err != nil {
			return err
		}
	}
	if rep.Routing != nil {
		if err := plotRouting(rep.Routing); err != nil {
			return err
		}
	}
	if rep.Add != nil {
		if err := plotAdd(rep.Add); err != nil {
			return err
		}
	}
	if u := rep.Unseen; u != nil {
		var names []string
		for _, t := range u.Tasks {
			names = append(names, t.Task)
		}
		var bars []barSet
		for _, c := range unseenConds {
			var v []float64
			for _, t := range u.Tasks {
				v = append(v, t.Results[c].Accuracy)
			}
			bars = append(bars, barSet{unseenLabels[c], append(v, u.Mean[c])})
		}
		var maj []float64
		for _, t := range u.Tasks {
			maj = append(maj, t.Majority)
		}
		bars = append(bars, barSet{"majority class", append(maj, u.Mean["majority"])})
		if err := groupedBars("Unseen (held-out) tasks: rank-classification accuracy", "unseen_tasks.png", append(names, "MEAN"), bars); err != nil {
			return err
		}
	}
	if st := rep.Stability; st != nil {
		var sets []barSet
		idx := map[string]int{}
		for _, c := range st.Cells {
			k := fmt.Sprintf("%d steps, bias corr. %v", c.Steps, c.BiasCorrection)
			if _, ok := idx[k]; !ok {
				idx[k] = len(sets)
				sets = append(sets, barSet{label: k})
			}
			sets[idx[k]].vals = append(sets[idx[k]].vals, c.Mean)
		}
		var maj []float64
		for _, t := range stabilityTasks {
			maj = append(maj, max(st.Majority[t], st.LabelMajority[t]))
		}
		sets = append(sets, barSet{"majority class", maj})
		if err := groupedBars(fmt.Sprintf("Stability: mean accuracy over %d seeds", len(st.Seeds)), "stability.png", stabilityTasks, sets); err != nil {
			return err
		}
	}
	if c := rep.CPI; c != nil {
		var sets []barSet
		for _, k := range cpiConds {
			var v []float64
			for _, r := range c.Rows {
				v = append(v, r.Results[k].Accuracy)
			}
			sets = append(sets, barSet{cpiLabels[k], append(v, c.Mean[k])})
		}
		var maj []float64
		for _, r := range c.Rows {
			maj = append(maj, r.Majority)
		}
		sets = append(sets, barSet{"majority class", append(maj, c.Mean["majority"])})
		if err := groupedBars("One adapter for several tasks: CPI-FT vs MTL vs merges", "cpi.png", append(slices.Clone(c.Tasks), "MEAN"), sets); err != nil {
			return err
		}
	}
	return nil
}

// barSet is one condition's bars: a value (0–1) per group.
type barSet struct {
	label string
	vals  []float64
}

// groupedBars draws accuracy (%) bars grouped by names, one colour per set;
// a set labelled "majority class" is grey.
func groupedBars(title, file string, names []string, sets []barSet) error {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = "accuracy (%)"
	w := vg.Points(float64(42 / max(1, len(sets))))
	for i, s := range sets {
		v := make(plotter.Values, len(s.vals))
		for j, x := range s.vals {
			v[j] = 100 * nz(x)
		}
		b, err := plotter.NewBarChart(v, w)
		if err != nil {
			return err
		}
		b.LineStyle.Width = vg.Length(0)
		b.Color = plotutil.Color(i)
		if s.label == "majority class" {
			b.Color = color.Gray{Y: 160}
		}
		b.Offset = w * vg.Length(float64(i)-float64(len(sets)-1)/2)
		p.Add(b)
		p.Legend.Add(s.label, b)
	}
	p.Legend.Top = true
	p.Legend.Left = false
	p.NominalX(names...)
	p.X.Tick.Label.Rotation = 0.6
	p.X.Tick.Label.XAlign = draw.XRight
	p.Y.Min, p.Y.Max = 0, 100
	return p.Save(12*vg.Inch, 5*vg.Inch, filepath.Join(*outDir, file))
}

// plotSeen: grouped bars, accuracy per task and condition, plus the mean.
func plotSeen(s *SeenReport) error {
	names := make([]string, 0, len(s.Tasks)+1)
	for _, t := range s.Tasks {
		names = append(names, t.Task)
	}
	conds := []struct {
		label string
		get   func(SeenRow) float64
		key   string
	}{
		{"base", func(r SeenRow) float64 { return r.Base.Accuracy }, "base"},
		{"dataset expert", func(r SeenRow) float64 { return r.Expert.Accuracy }, "dataset_expert"},
		{"MTL-all", func(r SeenRow) float64 { return r.MTL.Accuracy }, "mtl_all"},
		{"auto (top-1)", func(r SeenRow) float64 { return r.Auto.Accuracy }, "auto_top1"},
		{"majority class", func(r SeenRow) float64 { return r.Majority }, "majority"},
	}
	var sets []barSet
	for _, c := range conds {
		var v []float64
		for _, t := range s.Tasks {
			v = append(v, c.get(t))
		}
		sets = append(sets, barSet{c.label, append(v, s.Mean[c.key])})
	}
	return groupedBars("Seen tasks: rank-classification accuracy", "seen_tasks.png", append(names, "MEAN"), sets)
}

// plotRouting: routing accuracy vs Q, one line per task and the mean.
func plotRouting(r *RoutingReport) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Top-1 routing accuracy vs Q (%d tasks, shipped library)", len(r.Tasks))
	p.X.Label.Text = "Q (query instances per routing decision)"
	p.Y.Label.Text = "routing accuracy (%)"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.ConstantTicks([]plot.Tick{{Value: 1, Label: "1"}, {Value: 8, Label: "8"}, {Value: 32, Label: "32"}})
	var lines []any
	for _, t := range r.Tasks {
		var xy plotter.XYs
		for _, s := range t.Scores {
			xy = append(xy, plotter.XY{X: float64(s.Q), Y: 100 * s.Accuracy})
		}
		lines = append(lines, t.Task, xy)
	}
	if err := plotutil.AddLinePoints(p, lines...); err != nil {
		return err
	}
	var xy plotter.XYs
	for _, q := range qList {
		xy = append(xy, plotter.XY{X: float64(q), Y: 100 * r.Mean[fmt.Sprintf("q%d", q)]})
	}
	l, err := plotter.NewLine(xy)
	if err != nil {
		return err
	}
	l.Width = vg.Points(4)
	l.Color = color.Black
	p.Add(l)
	p.Legend.Add("MEAN", l)
	p.Legend.Left = true
	p.Legend.Top = false
	p.Y.Min, p.Y.Max = 0, 105
	return p.Save(8*vg.Inch, 6*vg.Inch, filepath.Join(*outDir, "routing_vs_q.png"))
}

// plotAdd: the new task's routing accuracy vs Q before and after the addition.
func plotAdd(a *AddReport) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Adding the %s expert: its task's routing accuracy", a.NewExpert)
	p.X.Label.Text = "Q"
	p.Y.Label.Text = "routing accuracy (%)"
	w := vg.Points(20)
	var names []string
	for _, q := range qList {
		names = append(names, fmt.Sprintf("Q = %d", q))
	}
	for i, tr := range []struct {
		label string
		t     taskRouting
	}{{"before", a.Before}, {"after", a.After}} {
		var v plotter.Values
		for _, q := range qList {
			v = append(v, nz(100*tr.t.At(q)))
		}
		b, err := plotter.NewBarChart(v, w)
		if err != nil {
			return err
		}
		b.Color = plotutil.Color(i)
		b.LineStyle.Width = vg.Length(0)
		b.Offset = w * vg.Length(float64(i)-0.5)
		p.Add(b)
		p.Legend.Add(tr.label, b)
	}
	p.NominalX(names...)
	p.Legend.Top, p.Legend.Left = true, true
	p.Y.Min, p.Y.Max = 0, 120
	return p.Save(6*vg.Inch, 4*vg.Inch, filepath.Join(*outDir, "add_expert.png"))
}

// nz is x, or 0 for NaN (a Q the task has too few queries for).
func nz(x float64) float64 {
	if math.IsNaN(x) {
		return 0
	}
	return x
}
