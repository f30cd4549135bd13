package serve

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"roe/library"
	"roe/model/tokenizer"
	"roe/tasks"
	"roe/train"
)

// TrainConfig lets the server train experts itself (POST /v1/jobs/train).
// Requests name a task folder of DataDir and templates of TemplatesDir by
// name only: no path from a request reaches the filesystem.
type TrainConfig struct {
	DataDir      string // folders of <split>.jsonl, one per task
	TemplatesDir string // promptsource templates
	MaxSteps     int    // largest steps a job may ask [5000]
}

// trainRequest is the body of POST /v1/jobs/train.
type trainRequest struct {
	Name        string  `json:"name"`
	Task        string  `json:"task"`
	Prompt      string  `json:"prompt"`      // one template: a prompt expert
	AllPrompts  bool    `json:"all_prompts"` // all templates mixed: a dataset expert
	Description string  `json:"description"`
	Steps       int     `json:"steps"`
	Rank        int     `json:"rank"`
	LR          float64 `json:"lr"`
	Batch       int     `json:"batch"`
	MaxLen      int     `json:"max_len"`
	Seed        uint64  `json:"seed"`
	NoEOS       bool    `json:"no_eos"`
}

// job is one training run of the server.
type job struct {
	ID       string            `json:"id"`
	Object   string            `json:"object"`
	Status   string            `json:"status"` // queued, running, succeeded, failed, cancelled
	Request  trainRequest      `json:"request"`
	Progress *train.Progress   `json:"progress,omitempty"`
	Expert   *library.Manifest `json:"expert,omitempty"`
	Error    string            `json:"error,omitempty"`
	Created  time.Time         `json:"created"`
	Finished *time.Time        `json:"finished,omitempty"`
	cancel   context.CancelFunc
}

// jobs runs training jobs one at a time, in the order they came.
type jobs struct {
	mu    sync.Mutex
	byID  map[string]*job
	queue chan *job
	done  chan struct{} // closed when the runner has stopped
}

func newJobs() *jobs {
	return &jobs{byID: map[string]*job{}, queue: make(chan *job, 16), done: make(chan struct{})}
}

func (s *Server) startJobs(ctx context.Context) {
	go func() {
		defer close(s.jobs.done)
		for {
			select {
			case <-ctx.Done():
				return
			case j := <-s.jobs.queue:
				s.runJob(j)
			}
		}
	}()
}

func (s *Server) snapshot(j *job) job {
	s.jobs.mu.Lock()
	defer s.jobs.mu.Unlock()
	c := *j
	if j.Progress != nil {
		p := *j.Progress
		c.Progress = &p
	}
	return c
}

func (s *Server) setJob(j *job, f func(*job)) {
	s.jobs.mu.Lock()
	f(j)
	s.jobs.mu.Unlock()
}

// taskDir maps a task name to its folder by listing DataDir.
func (s *Server) taskDir(name string) (string, error) {
	ents, err := os.ReadDir(s.cfg.Train.DataDir)
	if err != nil {
		return "", err
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() {
			if e.Name() == name {
				return s.cfg.Train.DataDir + string(os.PathSeparator) + e.Name(), nil
			}
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return "", badRequest("task", "unknown task %q (tasks: %v)", name, names)
}

func (s *Server) createTrainJob(c *fiber.Ctx) error {
	e, err := s.needExperts()
	if err != nil {
		return err
	}
	if s.cfg.Train.DataDir == "" || s.cfg.Train.TemplatesDir == "" {
		return &apiError{Status: fiber.StatusNotImplemented, Type: "invalid_request_error",
			Message: "training is not enabled: start roe serve with --data DIR --templates DIR"}
	}
	if s.jobsCtx.Err() != nil {
		return ErrShuttingDown
	}
	var r trainRequest
	if err := decode(c, &r); err != nil {
		return err
	}
	if r.Name == "" || r.Task == "" {
		return badRequest("name", "name and task are required")
	}
	if e.has(r.Name) {
		return libraryError(fmt.Errorf("%w: %s", library.ErrExists, r.Name))
	}
	if (r.Prompt == "") == !r.AllPrompts {
		return badRequest("prompt", "give either prompt (one template) or all_prompts: true")
	}
	maxSteps := defaultInt(s.cfg.Train.MaxSteps, 5000)
	if r.Steps <= 0 {
		r.Steps = 300
	}
	if r.Steps > maxSteps {
		return unprocessable("steps", "steps_exceeded", "steps %d exceeds the server limit of %d", r.Steps, maxSteps)
	}
	if r.Rank < 0 || r.Rank > 256 || r.LR < 0 || r.LR > 1 || r.Batch < 0 || r.Batch > 256 || r.MaxLen < 0 {
		return badRequest("", "rank must be in [1, 256], lr in (0, 1], batch in [1, 256], max_len ≥ 0")
	}
	if _, err := s.taskDir(r.Task); err != nil {
		return err
	}
	j := &job{ID: newID("trainjob-"), Object: "train.job", Status: "queued", Request: r, Created: time.Now().UTC(), cancel: func() {}}
	s.jobs.mu.Lock()
	s.jobs.byID[j.ID] = j
	s.jobs.mu.Unlock()
	select {
	case s.jobs.queue <- j:
	default:
		s.jobs.mu.Lock()
		delete(s.jobs.byID, j.ID)
		s.jobs.mu.Unlock()
		return &apiError{Status: fiber.StatusTooManyRequests, Type: "rate_limit_error", Message: "too many training jobs queued"}
	}
	return c.Status(fiber.StatusAccepted).JSON(s.snapshot(j))
}

func (s *Server) getJob(c *fiber.Ctx) error {
	s.jobs.mu.Lock()
	j, ok := s.jobs.byID[c.Params("id")]
	s.jobs.mu.Unlock()
	if !ok {
		return notFound("no job %q", c.Params("id"))
	}
	return c.JSON(s.snapshot(j))
}

func (s *Server) cancelJob(c *fiber.Ctx) error {
	s.jobs.mu.Lock()
	j, ok := s.jobs.byID[c.Params("id")]
	if ok && (j.Status == "queued" || j.Status == "running") {
		j.cancel()
		if j.Status == "queued" {
			j.Status = "cancelled"
		}
	}
	s.jobs.mu.Unlock()
	if !ok {
		return notFound("no job %q", c.Params("id"))
	}
	return c.JSON(s.snapshot(j))
}

// runJob trains, then stores the expert; the library and index change only at the end.
func (s *Server) runJob(j *job) {
	s.jobs.mu.Lock()
	if j.Status != "queued" {
		s.jobs.mu.Unlock()
		return
	}
	j.Status = "running"
	ctx, cancel := context.WithCancel(s.jobsCtx)
	defer cancel()
	j.cancel = cancel
	s.jobs.mu.Unlock()
	m, err := s.trainExpert(ctx, j)
	now := time.Now().UTC()
	s.setJob(j, func(j *job) {
		j.Finished = &now
		switch {
		case errors.Is(err, context.Canceled):
			j.Status = "cancelled"
		case err != nil:
			j.Status, j.Error = "failed", err.Error()
		default:
			j.Status, j.Expert = "succeeded", &m
		}
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		s.log.Error("training job failed", "job", j.ID, "err", err)
	}
}

func (s *Server) trainExpert(ctx context.Context, j *job) (library.Manifest, error) {
	r, e := j.Request, s.cfg.Experts
	dir, err := s.taskDir(r.Task)
	if err != nil {
		return library.Manifest{}, err
	}
	ts, fm, err := tasks.TemplatesFor(r.Task, s.cfg.Train.TemplatesDir)
	if err != nil {
		return library.Manifest{}, err
	}
	kind := library.KindDataset
	if r.Prompt != "" {
		t, ok := tasks.FindTemplate(ts, r.Prompt)
		if !ok {
			return library.Manifest{}, fmt.Errorf("task %s has no template %q", r.Task, r.Prompt)
		}
		ts, kind = []tasks.Template{t}, library.KindPrompt
	}
	ex, err := tasks.LoadTask(dir, "train")
	if err != nil {
		return library.Manifest{}, err
	}
	items, _, err := tasks.RenderItems(ex, ts, fm, 0, r.Seed)
	if err != nil {
		return library.Manifest{}, err
	}
	o := train.Options{Rank: r.Rank, LR: r.LR, BatchSize: r.Batch, Steps: r.Steps, MaxLen: r.MaxLen, NoEOS: r.NoEOS, Seed: r.Seed,
		Progress: func(p train.Progress) { s.setJob(j, func(j *job) { j.Progress = &p }) }}
	if o.LR == 0 {
		o.LR = 1e-3
	}
	tok := s.cfg.Tokenizer
	seqs, _, err := train.EncodeItems(tokAdapter{tok}, items, max(o.MaxLen, 0), o.NoEOS)
	if err != nil {
		return library.Manifest{}, err
	}
	o2 := o
	if o2.Rank == 0 {
		o2.Rank = 8
	}
	lora, err := train.NewLoRA(s.cfg.Model.Config, o2.Rank, float64(2*o2.Rank), train.AllTargets, r.Seed)
	if err != nil {
		return library.Manifest{}, err
	}
	tr, err := train.NewTrainer(s.cfg.Model, lora, seqs, o)
	if err != nil {
		return library.Manifest{}, err
	}
	loss, err := tr.Run(ctx)
	if err != nil {
		return library.Manifest{}, err
	}
	train.SyncLoRA(lora)
	x := &library.Expert{}
	x.Name, x.Kind, x.Dataset, x.Prompt, x.Description = r.Name, kind, r.Task, r.Prompt, r.Description
	if x.AdapterConfig, x.Tensors, err = library.ExpertFromLoRA(lora); err != nil {
		return library.Manifest{}, err
	}
	ins := make([]library.Instance, len(items))
	for i, it := range items {
		ins[i] = library.Instance{Text: it.Input, AnswerChoices: it.AnswerChoices, Target: it.Target}
	}
	if x.Instances, err = PrepareInstances(e.cfg.Embedder, e.cfg.InstanceFormat, ins, library.DefaultSampleSize, r.Seed); err != nil {
		return library.Manifest{}, err
	}
	x.BaseFingerprint, x.Embedder = s.cfg.Model.Fingerprint(), e.cfg.Embedder.ID()
	x.Training = library.Training{DataSize: len(items), Steps: tr.TotalSteps(), Seeds: []int64{int64(r.Seed)},
		Metrics: map[string]float64{"final_loss": loss}}
	m, err := e.cfg.Library.Add(x)
	if err != nil {
		return library.Manifest{}, err
	}
	return m, e.load(m)
}

// tokAdapter gives train the tokenizer's Encode and EOS.
type tokAdapter struct{ *tokenizer.Tokenizer }
