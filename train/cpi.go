package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"roe/adapters"
	"roe/model"
	"roe/tasks"
)

// CPI-FT (Core Parameter Isolation Fine-Tuning):
//
//  1. fine-tune a LoRA per task;
//  2. each task's core = the top p (default 1%) of |ΔW| entries, per module
//     (as adapters' cpi merge, so every projection keeps some core);
//  3. the Jaccard matrix of the core sets; tasks are grouped by single-linkage
//     at Jaccard ≥ τ (default 0.1);
//  4. fusion: adapters.Merge with method "cpi" (each task's core entries are
//     transplanted, the rest SLERP-ed for two tasks or averaged), with the
//     average's weights equal per group (a group of tasks that share their core
//     counts as one) and the fused adapter re-factored to rank Σ rᵢ;
//  5. a final fine-tune on all tasks' examples mixed, with the core frozen.
//
// Freezing the core of a LoRA. A LoRA trains A and B, not ΔW = s·B·A, and a
// ΔW entry (i, j) = s·Σₖ B[i,k]·A[k,j] depends on row i of B and column j of A
// only. So the final fine-tune freezes row i of B for every core row i and
// column j of A for every core column j (the union over tasks of the core
// entries' rows and columns, per module): every core entry then stays exactly
// as the fusion left it (checked: CPIReport.CoreDrift), while non-core entries
// in a core row still move through A, and those in a core column through B.
// The price is that entries at (core row, core column) that are not core are
// frozen too; CPIReport says how many parameters this freezes. Projecting the
// update onto "core ΔW unchanged" instead would be inexact after one step (the
// constraint is bilinear in A and B) and would need the dense ΔW each step.

// CPIOptions configure CPI-FT.
type CPIOptions struct {
	CoreFraction float64 // p, default adapters.DefaultCoreFraction (1%)
	Tau          float64 // Jaccard threshold for grouping, default 0.1
	// FusedRank is the rank of the fused adapter (default Σ task ranks).
	FusedRank int
	CoreFill  string // adapters.MergeOptions.CoreFill ("" = its default)
	// Final configures the last mixed-task fine-tune (default: the per-task
	// options). Its steps start from the fused adapter with a fresh optimizer.
	Final *Options
	// OutDir, when set, receives every intermediate artefact: task-<name>/
	// (per-task adapters), masks.json (core sizes by task and module),
	// jaccard.json, fused/ (the fused adapter), final/ (the result) and
	// report.json.
	OutDir string
}

// CPIReport describes a CPI-FT run.
type CPIReport struct {
	Tasks        []string    `json:"tasks"`
	CoreFraction float64     `json:"core_fraction"`
	Tau          float64     `json:"tau"`
	CoreSizes    []int       `json:"core_sizes"`
	Jaccard      [][]float64 `json:"jaccard"`
	Groups       [][]string  `json:"groups"`
	Weights      []float64   `json:"fusion_weights"`
	FusedRank    int         `json:"fused_rank"`
	// FusionRelError is the SVD re-factoring's relative Frobenius error.
	FusionRelError float64 `json:"fusion_rel_error"`
	CoreUnion      int     `json:"core_union_entries"`
	// FrozenParams / TrainableParams count LoRA parameters of the final phase.
	FrozenParams    int `json:"frozen_params"`
	TrainableParams int `json:"trainable_params"`
	// CoreDrift is max |ΔW_final − ΔW_fused| over the core entries (0 when
	// the freeze works).
	CoreDrift float64       `json:"core_drift"`
	Phases    []PhaseReport `json:"phases"`
}

// moduleMask is one module's core, as sorted flat indices into [Out, In].
type moduleMask struct {
	layer int
	proj  model.Proj
	idx   []int
}

// CoreMasks returns the core of an adapter: per module, the indices of the
// top p of |ΔW| (non-zero entries at or above the k-th largest, k = ⌊p·n⌋ ≥ 1).
func coreMasks(l *adapters.LoRA, p float64) []moduleMask {
	var out []moduleMask
	for layer := range l.Layers {
		for pr := model.Proj(0); pr < model.NumProj; pr++ {
			pair := l.Pair(layer, pr)
			if pair == nil {
				continue
			}
			d := pair.Delta()
			n := len(d)
			k := max(1, min(n, int(p*float64(n))))
			abs := make([]float32, n)
			for i, v := range d {
				abs[i] = float32(math.Abs(float64(v)))
			}
			s := slices.Clone(abs)
			slices.Sort(s)
			thr := s[n-k]
			var idx []int
			for i, v := range abs {
				if v != 0 && v >= thr {
					idx = append(idx, i)
				}
			}
			out = append(out, moduleMask{layer, pr, idx})
		}
	}
	return out
}

func maskKey(layer int, p model.Proj) string { return fmt.Sprintf("%d.%s", layer, p) }

// jaccard of two tasks' core sets over all modules.
func jaccard(a, b []moduleMask) float64 {
	bm := map[string][]int{}
	for _, m := range b {
		bm[maskKey(m.layer, m.proj)] = m.idx
	}
	inter, union := 0, 0
	seen := map[string]bool{}
	for _, m := range a {
		k := maskKey(m.layer, m.proj)
		seen[k] = true
		x, y := m.idx, bm[k]
		i, j := 0, 0
		for i < len(x) && j < len(y) {
			switch {
			case x[i] == y[j]:
				inter++
				i++
				j++
			case x[i] < y[j]:
				i++
			default:
				j++
			}
		}
		union += len(x) + len(y)
	}
	for _, m := range b {
		if !seen[maskKey(m.layer, m.proj)] {
			union += len(m.idx)
		}
	}
	union -= inter
	if union == 0 {
		return 0
	}
	return float64(inter) / float64(union)
}

// groupTasks is single-linkage clustering: i and j share a group when a chain
// of pairs with Jaccard ≥ tau joins them.
func groupTasks(J [][]float64, tau float64) [][]int {
	n := len(J)
	parent := make([]int, n)
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(i int) int {
		for parent[i] != i {
			i = parent[i]
		}
		return i
	}
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			if J[i][j] >= tau {
				if a, b := find(i), find(j); a != b {
					parent[max(a, b)] = min(a, b)
				}
			}
		}
	}
	byRoot := map[int][]int{}
	var roots []int
	for i := 0; i < n; i++ {
		r := find(i)
		if _, ok := byRoot[r]; !ok {
			roots = append(roots, r)
		}
		byRoot[r] = append(byRoot[r], i)
	}
	sort.Ints(roots)
	var out [][]int
	for _, r := range roots {
		out = append(out, byRoot[r])
	}
	return out
}

// TrainCPI runs CPI-FT over tasks (at least two) and returns the final adapter.
func TrainCPI(ctx context.Context, m *model.Model, tok tasks.Tokenizer, tds []TaskData, o Options, co CPIOptions) (*adapters.LoRA, *CPIReport, error) {
	if o.Full {
		return nil, nil, errors.New("train: CPI-FT trains LoRA adapters (not full fine-tuning)")
	}
	if len(tds) < 2 {
		return nil, nil, errors.New("train: CPI-FT needs at least two tasks (the target and --aux)")
	}
	o = o.withDefaults()
	if co.CoreFraction <= 0 {
		co.CoreFraction = adapters.DefaultCoreFraction
	}
	if co.Tau <= 0 {
		co.Tau = 0.1
	}
	r := &cpiRun{m: m, tok: tok, tds: tds, o: o, co: co, rep: &CPIReport{CoreFraction: co.CoreFraction, Tau: co.Tau}}
	if co.OutDir != "" {
		if err := os.MkdirAll(co.OutDir, 0o755); err != nil {
			return nil, nil, err
		}
	}
	if err := r.trainTasks(ctx); err != nil {
		return nil, nil, err
	}
	if err := r.findCores(); err != nil {
		return nil, nil, err
	}
	if err := r.group(); err != nil {
		return nil, nil, err
	}
	if err := r.fuse(); err != nil {
		return nil, nil, err
	}
	if err := r.finalTune(ctx); err != nil {
		return nil, nil, err
	}
	if err := r.write("report.json", r.rep); err != nil {
		return nil, nil, err
	}
	return r.fused, r.rep, nil
}

// cpiRun is the state of a CPI-FT run, step by step.
type cpiRun struct {
	m     *model.Model
	tok   tasks.Tokenizer
	tds   []TaskData
	o     Options
	co    CPIOptions
	rep   *CPIReport
	ls    []*adapters.LoRA // step 1: per task
	masks [][]moduleMask   // step 2: per task
	fused *adapters.LoRA   // step 4, then trained in step 5
}

// write writes v as JSON to co.OutDir/name (nothing without an OutDir).
func (r *cpiRun) write(name string, v any) error {
	if r.co.OutDir == "" {
		return nil
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(r.co.OutDir, name), append(b, '\n'), 0o644)
}

// trainTasks is step 1: one LoRA per task, each from the same initialisation.
func (r *cpiRun) trainTasks(ctx context.Context) error {
	o := r.o
	for _, td := range r.tds {
		l, err := NewLoRA(r.m.Config, o.Rank, o.Alpha, o.Targets, o.Seed)
		if err != nil {
			return err
		}
		to := o
		if to.CheckpointDir != "" {
			to.CheckpointDir = filepath.Join(to.CheckpointDir, "task-"+td.Name)
		}
		ph, err := runPhase(ctx, r.m, l, r.tok, "task-"+td.Name, []TaskData{td}, nil, to)
		if err != nil {
			return fmt.Errorf("cpi: task %s: %w", td.Name, err)
		}
		r.rep.Phases = append(r.rep.Phases, ph)
		r.rep.Tasks = append(r.rep.Tasks, td.Name)
		if r.co.OutDir != "" {
			if err := l.Save(filepath.Join(r.co.OutDir, "task-"+td.Name)); err != nil {
				return err
			}
		}
		r.ls = append(r.ls, l)
	}
	return nil
}

// findCores is step 2: each task's core masks (written to masks.json).
func (r *cpiRun) findCores() error {
	for _, l := range r.ls {
		mk := coreMasks(l, r.co.CoreFraction)
		r.masks = append(r.masks, mk)
		n := 0
		for _, mm := range mk {
			n += len(mm.idx)
		}
		r.rep.CoreSizes = append(r.rep.CoreSizes, n)
	}
	type maskStats struct {
		Task    string         `json:"task"`
		Entries int            `json:"core_entries"`
		Modules map[string]int `json:"by_module"`
	}
	var ms []maskStats
	for i, mk := range r.masks {
		s := maskStats{Task: r.rep.Tasks[i], Entries: r.rep.CoreSizes[i], Modules: map[string]int{}}
		for _, mm := range mk {
			s.Modules[maskKey(mm.layer, mm.proj)] = len(mm.idx)
		}
		ms = append(ms, s)
	}
	return r.write("masks.json", ms)
}

// group is step 3: the Jaccard matrix of the cores, the groups, and the
// fusion weights (equal per group), written to jaccard.json.
func (r *cpiRun) group() error {
	rep, n := r.rep, len(r.tds)
	rep.Jaccard = make([][]float64, n)
	for i := range rep.Jaccard {
		rep.Jaccard[i] = make([]float64, n)
		for j := range rep.Jaccard[i] {
			if i == j {
				rep.Jaccard[i][j] = 1
			} else {
				rep.Jaccard[i][j] = jaccard(r.masks[i], r.masks[j])
			}
		}
	}
	groups := groupTasks(rep.Jaccard, r.co.Tau)
	rep.Weights = make([]float64, n)
	for _, g := range groups {
		var names []string
		for _, i := range g {
			names = append(names, rep.Tasks[i])
			rep.Weights[i] = 1 / float64(len(groups)*len(g))
		}
		rep.Groups = append(rep.Groups, names)
	}
	return r.write("jaccard.json", map[string]any{"tasks": rep.Tasks, "tau": r.co.Tau, "jaccard": rep.Jaccard, "groups": rep.Groups})
}

// fuse is step 4: the cpi merge of the task adapters (saved to fused/).
func (r *cpiRun) fuse() error {
	rank := r.co.FusedRank
	if rank <= 0 {
		rank = r.o.Rank * len(r.tds)
	}
	fused, mr, err := adapters.Merge(r.ls, adapters.MergeOptions{Method: adapters.MethodCPI, CoreFraction: r.co.CoreFraction,
		Weights: r.rep.Weights, CoreFill: r.co.CoreFill, Rank: rank})
	if err != nil {
		return fmt.Errorf("cpi: fusion: %w", err)
	}
	r.fused = fused
	r.rep.FusedRank, r.rep.FusionRelError = mr.Rank, mr.RelFrobError
	if r.co.OutDir != "" {
		if err := fused.Save(filepath.Join(r.co.OutDir, "fused")); err != nil {
			return err
		}
	}
	return nil
}

// finalTune is step 5: a fine-tune of the fused adapter on all tasks mixed,
// with the core frozen (saved to final/). It reports the frozen parameters
// and the core's drift.
func (r *cpiRun) finalTune(ctx context.Context) error {
	union := r.coreUnion()
	freeze, before := r.freezeCore(union)
	fo := r.o
	if r.co.Final != nil {
		fo = r.co.Final.withDefaults()
		fo.Seed, fo.MaxLen, fo.NoEOS = r.o.Seed, r.o.MaxLen, r.o.NoEOS
	}
	fo.Freeze = freeze
	if fo.CheckpointDir != "" {
		fo.CheckpointDir = filepath.Join(fo.CheckpointDir, "final")
	}
	ws := make([]float64, len(r.tds))
	for i := range ws {
		ws[i] = 1
	}
	ph, err := runPhase(ctx, r.m, r.fused, r.tok, "final", r.tds, ws, fo)
	if err != nil {
		return fmt.Errorf("cpi: final fine-tune: %w", err)
	}
	r.rep.Phases = append(r.rep.Phases, ph)
	r.rep.CoreDrift = coreDrift(r.fused, union, before)
	if r.co.OutDir != "" {
		if err := r.fused.Save(filepath.Join(r.co.OutDir, "final")); err != nil {
			return err
		}
	}
	return nil
}

// coreUnion is the union over tasks of the core entries, by module.
func (r *cpiRun) coreUnion() map[string]map[int]bool {
	union := map[string]map[int]bool{}
	for _, mk := range r.masks {
		for _, mm := range mk {
			k := maskKey(mm.layer, mm.proj)
			if union[k] == nil {
				union[k] = map[int]bool{}
			}
			for _, i := range mm.idx {
				union[k][i] = true
			}
		}
	}
	return union
}

// freezeCore returns the freeze masks of the fused adapter's A and B (the
// core entries' columns of A and rows of B) and its ΔW before the final
// fine-tune, by module; it counts the frozen and trainable parameters in the
// report.
func (r *cpiRun) freezeCore(union map[string]map[int]bool) (freeze map[string][]bool, before map[string][]float32) {
	freeze, before = map[string][]bool{}, map[string][]float32{}
	rep := r.rep
	for layer := range r.fused.Layers {
		for p := model.Proj(0); p < model.NumProj; p++ {
			pr := r.fused.Pair(layer, p)
			if pr == nil {
				continue
			}
			core := union[maskKey(layer, p)]
			rep.CoreUnion += len(core)
			before[maskKey(layer, p)] = pr.Delta()
			rows, cols := map[int]bool{}, map[int]bool{}
			for e := range core {
				rows[e/pr.In], cols[e%pr.In] = true, true
			}
			fa, fb := make([]bool, len(pr.A)), make([]bool, len(pr.B))
			for k := 0; k < pr.Rank; k++ {
				for c := range cols {
					fa[k*pr.In+c] = true
				}
			}
			for i := range rows {
				for k := 0; k < pr.Rank; k++ {
					fb[i*pr.Rank+k] = true
				}
			}
			freeze[LoRAKey(layer, p, "A")] = fa
			freeze[LoRAKey(layer, p, "B")] = fb
			for _, f := range append(fa, fb...) {
				if f {
					rep.FrozenParams++
				} else {
					rep.TrainableParams++
				}
			}
		}
	}
	return freeze, before
}

// coreDrift is max |ΔW − before| over the core entries of l.
func coreDrift(l *adapters.LoRA, union map[string]map[int]bool, before map[string][]float32) float64 {
	drift := 0.0
	for layer := range l.Layers {
		for p := model.Proj(0); p < model.NumProj; p++ {
			pr := l.Pair(layer, p)
			if pr == nil {
				continue
			}
			k := maskKey(layer, p)
			after, b := pr.Delta(), before[k]
			for e := range union[k] {
				drift = math.Max(drift, math.Abs(float64(after[e]-b[e])))
			}
		}
	}
	return drift
}
