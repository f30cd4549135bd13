package experts

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"roe/library"
	"roe/model"
	"roe/tasks"
	"roe/train"
)

// Recipe is how an expert is trained: the one recipe of the shipped starter
// experts, the CLI's `roe train` defaults, the server's training jobs and the
// quality benchmark.
type Recipe struct {
	Rank       int      `json:"rank"`
	Alpha      float64  `json:"alpha"`
	Targets    []string `json:"targets"`
	LR         float64  `json:"lr"`          // peak; linear warm-up then linear decay to 0
	WarmupFrac float64  `json:"warmup_frac"` // of the steps
	ClipNorm   float64  `json:"clip_norm"`   // global gradient norm (0: off)
	BatchSize  int      `json:"batch"`
	MaxLen     int      `json:"max_len"` // tokens per sequence; longer prompts lose their beginning
	NoEOS      bool     `json:"no_eos"`  // targets without EOS
	Steps      int      `json:"steps"`
	Seed       uint64   `json:"seed"`
}

// Steps of the default recipe by expert kind: a dataset expert mixes all its
// task's templates and sees more data than a prompt expert.
const (
	DatasetSteps = 300
	PromptSteps  = 150
)

// DefaultRecipe is the recipe of an expert of kind (prompt or dataset): rank
// 4, α 8, every projection, lr 1e-3 with 10% warm-up, gradient norm clipped
// to 1, batch 8, 128 tokens, targets without EOS, seed 1.
func DefaultRecipe(kind library.Kind) Recipe {
	steps := DatasetSteps
	if kind == library.KindPrompt {
		steps = PromptSteps
	}
	return Recipe{Rank: 4, Alpha: 8, Targets: append([]string(nil), train.AllTargets...), LR: 1e-3,
		WarmupFrac: train.DefaultWarmupFrac, ClipNorm: 1, BatchSize: 8, MaxLen: 128, NoEOS: true, Steps: steps, Seed: 1}
}

// Check refuses a recipe that cannot train (maxSteps > 0 bounds Steps).
func (r Recipe) Check(maxSteps int) error {
	switch {
	case r.Rank < 1 || r.Rank > 256:
		return invalid("rank", "rank must be in [1, 256], got %d", r.Rank)
	case !(r.Alpha > 0) || r.Alpha > 1e4:
		return invalid("alpha", "alpha must be in (0, 10000], got %g", r.Alpha)
	case !(r.LR > 0) || r.LR > 1:
		return invalid("lr", "lr must be in (0, 1], got %g", r.LR)
	case r.WarmupFrac < 0 || r.WarmupFrac >= 1:
		return invalid("warmup_frac", "warmup_frac must be in [0, 1), got %g", r.WarmupFrac)
	case r.ClipNorm < 0 || r.ClipNorm != r.ClipNorm:
		return invalid("clip_norm", "clip_norm must be ≥ 0 (0: off), got %g", r.ClipNorm)
	case r.BatchSize < 1 || r.BatchSize > 256:
		return invalid("batch", "batch must be in [1, 256], got %d", r.BatchSize)
	case r.MaxLen < 2 || r.MaxLen > 1<<16:
		return invalid("max_len", "max_len must be in [2, 65536], got %d", r.MaxLen)
	case r.Steps < 1:
		return invalid("steps", "steps must be ≥ 1, got %d", r.Steps)
	case maxSteps > 0 && r.Steps > maxSteps:
		return invalid("steps", "steps %d exceeds the limit of %d", r.Steps, maxSteps)
	}
	for _, t := range r.Targets {
		if !slices.Contains(train.AllTargets, t) {
			return invalid("targets", "unknown target module %q (known: %v)", t, train.AllTargets)
		}
	}
	return nil
}

// Options are the trainer's options for this recipe.
func (r Recipe) Options() train.Options {
	warm := r.WarmupFrac
	if warm == 0 {
		warm = -1 // the trainer reads 0 as its default
	}
	return train.Options{Rank: r.Rank, Alpha: r.Alpha, Targets: r.Targets, LR: r.LR, WarmupFrac: warm,
		ClipNorm: r.ClipNorm, BatchSize: r.BatchSize, Steps: r.Steps, MaxLen: r.MaxLen, NoEOS: r.NoEOS, Seed: r.Seed}
}

// TrainSpec is an expert to train on one task of a data folder.
type TrainSpec struct {
	Name        string
	Description string
	Task        string // a task folder of DataDir, by name
	Prompt      string // one template: a prompt expert; "" with AllPrompts
	AllPrompts  bool   // every template of the task, mixed: a dataset expert
	Recipe      Recipe
}

// TrainData is where training jobs find tasks and templates. Specs name a
// task folder of DataDir and templates of TemplatesDir by name only: no path
// from a request reaches the filesystem.
type TrainData struct {
	DataDir      string // folders of <split>.jsonl, one per task
	TemplatesDir string // promptsource templates
	MaxSteps     int    // largest Steps a spec may ask [5000]
}

// Kind is the kind of expert the spec trains.
func (s TrainSpec) Kind() library.Kind {
	if s.Prompt != "" {
		return library.KindPrompt
	}
	return library.KindDataset
}

// taskDir maps a task name to its folder by listing DataDir.
func (d TrainData) taskDir(name string) (string, error) {
	ents, err := os.ReadDir(d.DataDir)
	if err != nil {
		return "", err
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() {
			if e.Name() == name {
				return filepath.Join(d.DataDir, e.Name()), nil
			}
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return "", notFound("task", "unknown task %q (tasks: %v)", name, names)
}

// templates resolves the spec's templates.
func (d TrainData) templates(s TrainSpec) ([]tasks.Template, tasks.FieldMap, error) {
	ts, fm, err := tasks.TemplatesFor(s.Task, d.TemplatesDir)
	if err != nil {
		return nil, nil, invalid("task", "task %q: %v", s.Task, err)
	}
	if s.Prompt == "" {
		return ts, fm, nil
	}
	t, ok := tasks.FindTemplate(ts, s.Prompt)
	if !ok {
		names := make([]string, len(ts))
		for i, t := range ts {
			names[i] = t.Name
		}
		return nil, nil, notFound("prompt", "task %s has no template %q (templates: %v)", s.Task, s.Prompt, names)
	}
	return []tasks.Template{t}, fm, nil
}

// CheckTrain validates a spec before any training: name (free, not
// reserved, a valid library name), task and template, recipe.
func (c *Catalog) CheckTrain(d TrainData, s TrainSpec) error {
	if d.DataDir == "" || d.TemplatesDir == "" {
		return fmt.Errorf("%w: training is not enabled (no data and templates folders)", ErrInvalid)
	}
	if err := CheckName(s.Name, c.cfg.BaseID); err != nil {
		return err
	}
	if err := library.CheckName(s.Name); err != nil {
		return &FieldError{Field: "name", Err: ErrInvalid, Msg: err.Error()}
	}
	if c.Has(s.Name) {
		return fmt.Errorf("%w: %s", library.ErrExists, s.Name)
	}
	if s.Task == "" {
		return invalid("task", "task is required")
	}
	if (s.Prompt == "") == !s.AllPrompts {
		return invalid("prompt", "give either prompt (one template) or all_prompts: true")
	}
	if err := s.Recipe.Check(orDefault(d.MaxSteps, 5000)); err != nil {
		return err
	}
	if _, err := d.taskDir(s.Task); err != nil {
		return err
	}
	_, _, err := d.templates(s)
	return err
}

// Train trains the spec's expert on the task's train split with the spec's
// recipe and adds it (see Add); progress, when set, is called after every
// optimizer step. The library changes only at the end.
func (c *Catalog) Train(ctx context.Context, d TrainData, s TrainSpec, tok tasks.Tokenizer, progress func(train.Progress)) (library.Manifest, error) {
	if err := c.CheckTrain(d, s); err != nil {
		return library.Manifest{}, err
	}
	dir, err := d.taskDir(s.Task)
	if err != nil {
		return library.Manifest{}, err
	}
	ts, fm, err := d.templates(s)
	if err != nil {
		return library.Manifest{}, err
	}
	ex, err := tasks.LoadTask(dir, "train")
	if err != nil {
		return library.Manifest{}, err
	}
	items, _, err := tasks.RenderItems(ex, ts, fm, 0, s.Recipe.Seed)
	if err != nil {
		return library.Manifest{}, err
	}
	x, err := TrainExpert(ctx, c.cfg.Base, tok, items, s.Recipe, progress)
	if err != nil {
		return library.Manifest{}, err
	}
	x.Name, x.Kind, x.Dataset, x.Prompt, x.Description = s.Name, s.Kind(), s.Task, s.Prompt, s.Description
	return c.Add(x, AddOptions{Seed: s.Recipe.Seed})
}

// TrainExpert trains a LoRA on items with recipe r and returns it as an
// expert (adapter, instances from the items, training record) for Add or
// Prepare; name and kind are the caller's.
func TrainExpert(ctx context.Context, base *model.Model, tok tasks.Tokenizer, items []tasks.Item, r Recipe, progress func(train.Progress)) (*library.Expert, error) {
	if err := r.Check(0); err != nil {
		return nil, err
	}
	o := r.Options()
	o.Progress = progress
	seqs, _, err := train.EncodeItems(tok, items, r.MaxLen, r.NoEOS)
	if err != nil {
		return nil, err
	}
	lora, err := train.NewLoRA(base.Config, r.Rank, r.Alpha, r.Targets, r.Seed)
	if err != nil {
		return nil, err
	}
	tr, err := train.NewTrainer(base, lora, seqs, o)
	if err != nil {
		return nil, err
	}
	loss, err := tr.Run(ctx)
	if err != nil {
		return nil, err
	}
	train.SyncLoRA(lora)
	x := &library.Expert{}
	if x.AdapterConfig, x.Tensors, err = library.ExpertFromLoRA(lora); err != nil {
		return nil, err
	}
	x.Instances = make([]library.Instance, len(items))
	for i, it := range items {
		x.Instances[i] = library.Instance{Text: it.Input, AnswerChoices: it.AnswerChoices, Target: it.Target}
	}
	x.Training = library.Training{DataSize: len(items), Steps: tr.TotalSteps(), Seeds: []int64{int64(r.Seed)},
		Metrics: map[string]float64{"final_loss": loss}}
	return x, nil
}
