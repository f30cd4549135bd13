package serve

import (
	"context"
	"errors"
	"os"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"roe/experts"
	"roe/library"
	"roe/train"
)

// trainRequest is the body of POST /v1/jobs/train. Recipe fields left out
// take experts.DefaultRecipe of the expert's kind.
type trainRequest struct {
	Name        string   `json:"name"`
	Task        string   `json:"task"`
	Prompt      string   `json:"prompt"`      // one template: a prompt expert
	AllPrompts  bool     `json:"all_prompts"` // all templates mixed: a dataset expert
	Description string   `json:"description"`
	Steps       *int     `json:"steps,omitempty"`
	Rank        *int     `json:"rank,omitempty"`
	Alpha       *float64 `json:"alpha,omitempty"`
	LR          *float64 `json:"lr,omitempty"`
	ClipNorm    *float64 `json:"clip_norm,omitempty"`
	Batch       *int     `json:"batch,omitempty"`
	MaxLen      *int     `json:"max_len,omitempty"`
	Seed        *uint64  `json:"seed,omitempty"`
	NoEOS       *bool    `json:"no_eos,omitempty"`
}

// spec is the request as a training spec: the default recipe with the
// request's overrides.
func (r trainRequest) spec() experts.TrainSpec {
	sp := experts.TrainSpec{Name: r.Name, Description: r.Description, Task: r.Task, Prompt: r.Prompt, AllPrompts: r.AllPrompts}
	rc := experts.DefaultRecipe(sp.Kind())
	set := func(dst *int, src *int) {
		if src != nil {
			*dst = *src
		}
	}
	setF := func(dst *float64, src *float64) {
		if src != nil {
			*dst = *src
		}
	}
	set(&rc.Steps, r.Steps)
	set(&rc.Rank, r.Rank)
	set(&rc.BatchSize, r.Batch)
	set(&rc.MaxLen, r.MaxLen)
	setF(&rc.LR, r.LR)
	setF(&rc.ClipNorm, r.ClipNorm)
	if r.Alpha != nil {
		rc.Alpha = *r.Alpha
	} else if r.Rank != nil {
		rc.Alpha = 2 * float64(*r.Rank) // the recipe's α/r = 2
	}
	if r.Seed != nil {
		rc.Seed = *r.Seed
	}
	if r.NoEOS != nil {
		rc.NoEOS = *r.NoEOS
	}
	sp.Recipe = rc
	return sp
}

// job is one training run of the server.
type job struct {
	ID       string          `json:"id"`
	Object   string          `json:"object"`
	Status   string          `json:"status"` // queued, running, succeeded, failed, cancelled
	Request  trainRequest    `json:"request"`
	Recipe   experts.Recipe  `json:"recipe"`
	Progress *train.Progress `json:"progress,omitempty"`
	// Losses is the loss curve so far: [step, loss] pairs, thinned to at
	// most maxLossPoints by dropping every other point when full.
	Losses   [][2]float64      `json:"losses,omitempty"`
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
	c.Losses = slices.Clone(j.Losses)
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
	if err := decodeStrict(c, &r); err != nil {
		return err
	}
	sp := r.spec()
	// Everything a job could fail on before training is checked here, before 202.
	if err := e.CheckTrain(s.cfg.Train, sp); err != nil {
		return domainError(err)
	}
	j := &job{ID: newID("trainjob-"), Object: "train.job", Status: "queued", Request: r, Recipe: sp.Recipe, Created: time.Now().UTC(), cancel: func() {}}
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

// maxLossPoints bounds a job's loss curve.
const maxLossPoints = 512

// listJobs is GET /v1/jobs: every job of this server, newest first.
func (s *Server) listJobs(c *fiber.Ctx) error {
	s.jobs.mu.Lock()
	js := make([]*job, 0, len(s.jobs.byID))
	for _, j := range s.jobs.byID {
		js = append(js, j)
	}
	s.jobs.mu.Unlock()
	out := make([]job, len(js))
	for i, j := range js {
		out[i] = s.snapshot(j)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].ID > out[j].ID
	})
	return c.JSON(fiber.Map{"object": "list", "data": out})
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
	sp := j.Request.spec()
	return s.cfg.Experts.Train(ctx, s.cfg.Train, sp, s.cfg.Tokenizer, func(p train.Progress) {
		s.setJob(j, func(j *job) {
			j.Progress = &p
			if len(j.Losses) == maxLossPoints {
				for i := range maxLossPoints / 2 {
					j.Losses[i] = j.Losses[2*i+1]
				}
				j.Losses = j.Losses[:maxLossPoints/2]
			}
			j.Losses = append(j.Losses, [2]float64{float64(p.Step), p.Loss})
		})
	})
}
