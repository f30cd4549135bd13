package train

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"roe/adapters"
	"roe/model"
	"roe/tasks"
)

// Strategy says how auxiliary data is used.
type Strategy string

// The strategies (Weller et al. 2022).
const (
	// Single trains on the target task alone.
	Single Strategy = "single"
	// STILTs trains on the auxiliary task(s) first, then on the target,
	// starting from the first phase's adapter with a fresh optimizer.
	STILTs Strategy = "stilts"
	// MTL trains on mixed batches of target and auxiliary examples.
	MTL Strategy = "mtl"
	// Auto picks STILTs when the target set is larger than the auxiliary one,
	// else MTL (Weller et al.'s rule).
	Auto Strategy = "auto"
)

// Weighting says how multi-task batches weight each example's loss.
type Weighting string

// The MTL loss weightings.
const (
	// PerExample: every example counts the same (tasks count by their size).
	PerExample Weighting = "example"
	// PerTask: each task's examples together count the same, whatever its size
	// (example weight N/(K·Nₖ)).
	PerTask Weighting = "task"
	// TargetUp: as PerExample, with the target's examples weighted by
	// TargetWeight (default 2).
	TargetUp Weighting = "target"
)

// TaskData is one task's rendered training examples.
type TaskData struct {
	Name  string
	Items []tasks.Item
}

// StrategyOptions choose the strategy and the MTL weighting.
type StrategyOptions struct {
	Strategy     Strategy
	Weighting    Weighting // MTL only; default PerExample
	TargetWeight float64   // TargetUp's factor; default 2
	// AuxOptions, when set, configure STILTs' first phase (default: the
	// target's options).
	AuxOptions *Options
}

// PhaseReport describes one training phase.
type PhaseReport struct {
	Name      string    `json:"name"`
	Tasks     []string  `json:"tasks"`
	Sequences int       `json:"sequences"`
	Skipped   int       `json:"skipped"`
	Steps     int       `json:"steps"`
	Losses    []float64 `json:"-"`
	FinalLoss float64   `json:"final_loss"`
	// TaskWeights are the MTL example weights by task name.
	TaskWeights map[string]float64 `json:"task_weights,omitempty"`
}

// StrategyReport says what was run and why.
type StrategyReport struct {
	Requested Strategy      `json:"requested"`
	Strategy  Strategy      `json:"strategy"`
	Reason    string        `json:"reason"`
	Phases    []PhaseReport `json:"phases"`
}

// Steps is the number of optimizer steps over all phases.
func (r *StrategyReport) Steps() int {
	n := 0
	for _, p := range r.Phases {
		n += p.Steps
	}
	return n
}

// ChooseStrategy resolves Auto: STILTs when the target set is larger than the
// auxiliary one, else MTL (Weller et al. 2022, "Use the MTL vs STILTs rule of
// thumb"). It returns the strategy and the reason.
func ChooseStrategy(s Strategy, target TaskData, aux []TaskData) (Strategy, string, error) {
	na := 0
	for _, a := range aux {
		na += len(a.Items)
	}
	nt := len(target.Items)
	switch s {
	case "", Single:
		if len(aux) > 0 {
			return Single, "single: auxiliary data given but not used", nil
		}
		return Single, "single: target task only", nil
	case STILTs, MTL:
		if len(aux) == 0 {
			return "", "", fmt.Errorf("train: strategy %s needs auxiliary data", s)
		}
		return s, fmt.Sprintf("%s requested (target %d examples, auxiliary %d)", s, nt, na), nil
	case Auto:
		if len(aux) == 0 {
			return Single, "auto: no auxiliary data, single-task", nil
		}
		if nt > na {
			return STILTs, fmt.Sprintf("auto: target set (%d) larger than auxiliary (%d): STILTs (Weller et al. 2022)", nt, na), nil
		}
		return MTL, fmt.Sprintf("auto: target set (%d) not larger than auxiliary (%d): multi-task learning (Weller et al. 2022)", nt, na), nil
	}
	return "", "", fmt.Errorf("train: unknown strategy %q (single, stilts, mtl, auto)", s)
}

// MTLWeights returns each task's example weight (target first, then aux).
func MTLWeights(w Weighting, sizes []int, targetWeight float64) ([]float64, error) {
	out := make([]float64, len(sizes))
	total := 0
	for _, n := range sizes {
		total += n
	}
	switch w {
	case "", PerExample:
		for i := range out {
			out[i] = 1
		}
	case PerTask:
		for i, n := range sizes {
			out[i] = float64(total) / (float64(len(sizes)) * float64(max(1, n)))
		}
	case TargetUp:
		if targetWeight <= 0 {
			targetWeight = 2
		}
		for i := range out {
			out[i] = 1
		}
		out[0] = targetWeight
	default:
		return nil, fmt.Errorf("train: unknown MTL weighting %q (example, task, target)", w)
	}
	return out, nil
}

// encodeTasks tokenizes tasks, tagging each sequence with its task index and weight.
func encodeTasks(tok tasks.Tokenizer, tds []TaskData, weights []float64, maxLen int, noEOS bool) ([]Sequence, int, error) {
	var all []Sequence
	skipped := 0
	for i, td := range tds {
		items := make([]tasks.Item, len(td.Items))
		for j, it := range td.Items {
			it.Task = i
			items[j] = it
		}
		seqs, sk, err := EncodeItems(tok, items, maxLen, noEOS)
		if err != nil {
			return nil, 0, fmt.Errorf("task %s: %w", td.Name, err)
		}
		skipped += sk
		for j := range seqs {
			if weights != nil {
				seqs[j].Weight = weights[i]
			}
		}
		all = append(all, seqs...)
	}
	return all, skipped, nil
}

// runPhase trains l (or the model, when o.Full) on tasks.
func runPhase(ctx context.Context, m *model.Model, l *adapters.LoRA, tok tasks.Tokenizer, name string, tds []TaskData, weights []float64, o Options) (PhaseReport, error) {
	o = o.withDefaults()
	seqs, skipped, err := encodeTasks(tok, tds, weights, o.MaxLen, o.NoEOS)
	if err != nil {
		return PhaseReport{}, err
	}
	tr, err := NewTrainer(m, l, seqs, o)
	if err != nil {
		return PhaseReport{}, err
	}
	if o.Resume && o.CheckpointDir != "" {
		if _, err := os.Stat(filepath.Join(o.CheckpointDir, "trainer.json")); err == nil {
			if err := tr.LoadCheckpoint(o.CheckpointDir); err != nil {
				return PhaseReport{}, err
			}
		}
	}
	last, err := tr.Run(ctx)
	if err != nil {
		return PhaseReport{}, err
	}
	rep := PhaseReport{Name: name, Sequences: len(seqs), Skipped: skipped, Steps: tr.Step(), Losses: tr.Losses, FinalLoss: last}
	for i, td := range tds {
		rep.Tasks = append(rep.Tasks, td.Name)
		if weights != nil {
			if rep.TaskWeights == nil {
				rep.TaskWeights = map[string]float64{}
			}
			rep.TaskWeights[td.Name] = weights[i]
		}
	}
	return rep, nil
}

// TrainStrategy trains an expert for target, using aux as the strategy says.
// For LoRA (o.Full false) it returns a new adapter initialised from o.Seed;
// with o.Full the model m is trained in place (pass a clone) and the adapter
// is nil. Each phase's checkpoints go to o.CheckpointDir/<phase> when set.
func TrainStrategy(ctx context.Context, m *model.Model, tok tasks.Tokenizer, target TaskData, aux []TaskData, o Options, so StrategyOptions) (*adapters.LoRA, *StrategyReport, error) {
	o = o.withDefaults()
	s, reason, err := ChooseStrategy(so.Strategy, target, aux)
	if err != nil {
		return nil, nil, err
	}
	rep := &StrategyReport{Requested: so.Strategy, Strategy: s, Reason: reason}
	var l *adapters.LoRA
	if !o.Full {
		if l, err = NewLoRA(m.Config, o.Rank, o.Alpha, o.Targets, o.Seed); err != nil {
			return nil, nil, err
		}
	}
	phaseOpts := func(base Options, phase string) Options {
		if base.CheckpointDir != "" {
			base.CheckpointDir = filepath.Join(base.CheckpointDir, phase)
		}
		return base
	}
	switch s {
	case Single:
		p, err := runPhase(ctx, m, l, tok, "target", []TaskData{target}, nil, phaseOpts(o, "target"))
		if err != nil {
			return nil, nil, err
		}
		rep.Phases = append(rep.Phases, p)
	case STILTs:
		ao := o
		if so.AuxOptions != nil {
			ao = so.AuxOptions.withDefaults()
			ao.Full, ao.Seed, ao.MaxLen, ao.NoEOS = o.Full, o.Seed, o.MaxLen, o.NoEOS
		}
		p1, err := runPhase(ctx, m, l, tok, "auxiliary", aux, nil, phaseOpts(ao, "auxiliary"))
		if err != nil {
			return nil, nil, err
		}
		// Phase 2 starts from phase 1's adapter with a fresh optimizer and schedule.
		p2, err := runPhase(ctx, m, l, tok, "target", []TaskData{target}, nil, phaseOpts(o, "target"))
		if err != nil {
			return nil, nil, err
		}
		rep.Phases = append(rep.Phases, p1, p2)
	case MTL:
		tds := append([]TaskData{target}, aux...)
		sizes := make([]int, len(tds))
		for i, td := range tds {
			sizes[i] = len(td.Items)
		}
		ws, err := MTLWeights(so.Weighting, sizes, so.TargetWeight)
		if err != nil {
			return nil, nil, err
		}
		p, err := runPhase(ctx, m, l, tok, "mtl", tds, ws, phaseOpts(o, "mtl"))
		if err != nil {
			return nil, nil, err
		}
		rep.Phases = append(rep.Phases, p)
	}
	return l, rep, nil
}
