package serve

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"roe/model"
)

// ErrQueueFull means the scheduler's queue is at capacity: answer 429.
var ErrQueueFull = errors.New("server busy: request queue is full")

// ErrShuttingDown means the server no longer takes new sequences.
var ErrShuttingDown = errors.New("server is shutting down")

// Scheduler runs continuous batching: sequences join the running batch between
// steps, each step is one Forward over all active sequences (each with its own
// adapter), and finished or abandoned sequences leave at once.
type Scheduler struct {
	m        *model.Model
	maxBatch int
	queue    chan *Job
	metrics  *Metrics

	mu      sync.Mutex
	closed  bool
	abandon atomic.Bool // the shutdown deadline passed: stop everything
	done    chan struct{}
}

// Job is one sequence submitted to the scheduler; its text arrives through Next.
type Job struct {
	seq   *model.Sequence
	ctx   context.Context
	alive func() bool // nil, or false once the client has gone

	mu       sync.Mutex
	pending  string
	finished bool
	err      error
	notify   chan struct{} // capacity 1: "something changed"

	submitted time.Time
	firstTok  time.Time
}

// NewScheduler starts the batching loop; Close stops it.
func NewScheduler(m *model.Model, maxBatch, queueSize int, metrics *Metrics) *Scheduler {
	s := &Scheduler{m: m, maxBatch: max(1, maxBatch), queue: make(chan *Job, max(1, queueSize)),
		metrics: metrics, done: make(chan struct{})}
	go s.loop()
	return s
}

// Submit queues a sequence; ctx ending (a client gone) stops it within one step.
func (s *Scheduler) Submit(ctx context.Context, seq *model.Sequence) (*Job, error) {
	return s.SubmitWatched(ctx, seq, nil)
}

// SubmitWatched is Submit with a liveness check run before every step: when it
// reports false the sequence stops, within one token.
func (s *Scheduler) SubmitWatched(ctx context.Context, seq *model.Sequence, alive func() bool) (*Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrShuttingDown
	}
	j := &Job{seq: seq, ctx: ctx, alive: alive, notify: make(chan struct{}, 1), submitted: time.Now()}
	select {
	case s.queue <- j:
		s.metrics.queueDepth.Set(float64(len(s.queue)))
		return j, nil
	default:
		return nil, ErrQueueFull
	}
}

// QueueLen is the number of sequences waiting to join the batch.
func (s *Scheduler) QueueLen() int { return len(s.queue) }

// Close stops taking sequences, lets the running and queued ones finish until
// ctx ends (then stops them), and returns when the loop has exited.
func (s *Scheduler) Close(ctx context.Context) error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.queue)
	}
	s.mu.Unlock()
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		s.abandon.Store(true)
		<-s.done
		return ctx.Err()
	}
}

func (s *Scheduler) loop() {
	defer close(s.done)
	var active []*Job
	var steps []model.Step
	var outs []model.Output // reused across steps: logits buffers stay allocated
	open := true
	for open || len(active) > 0 {
		s.metrics.engine.observe(active, len(s.queue))
		// Block for work when idle; otherwise take what is waiting.
		if len(active) == 0 {
			j, ok := <-s.queue
			if !ok {
				return
			}
			active = append(active, j)
		}
	fill:
		for open && len(active) < s.maxBatch {
			select {
			case j, ok := <-s.queue:
				if !ok {
					open = false
					break fill
				}
				active = append(active, j)
			default:
				break fill
			}
		}
		s.metrics.queueDepth.Set(float64(len(s.queue)))
		// Drop sequences whose clients left.
		kept := active[:0]
		for _, j := range active {
			if s.abandon.Load() {
				j.seq.Stop("cancelled")
				j.finish(ErrShuttingDown)
				continue
			}
			if j.ctx.Err() != nil || (j.alive != nil && !j.alive()) {
				j.seq.Stop("cancelled")
				j.finish(context.Canceled)
				continue
			}
			kept = append(kept, j)
		}
		active = kept
		if len(active) == 0 {
			continue
		}
		steps = steps[:0]
		for _, j := range active {
			steps = append(steps, j.seq.Step())
		}
		for len(outs) < len(steps) {
			outs = append(outs, model.Output{})
		}
		s.metrics.batchSize.Observe(float64(len(active)))
		t0 := time.Now()
		err := s.forward(steps, outs[:len(steps)])
		out := outs
		if err != nil {
			for _, j := range active {
				j.finish(fmt.Errorf("forward: %w", err))
			}
			active = active[:0]
			continue
		}
		s.metrics.stepSeconds.Observe(time.Since(t0).Seconds())
		kept = active[:0]
		for i, j := range active {
			piece := j.seq.Accept(out[i].Logits)
			s.metrics.tokens.Inc()
			j.push(piece, s.metrics)
			if j.seq.Done() {
				j.finish(nil)
				continue
			}
			kept = append(kept, j)
		}
		active = kept
	}
}

// forward runs one step, turning a panic into an error for this batch only,
// so one bad sequence cannot take the server down.
func (s *Scheduler) forward(steps []model.Step, outs []model.Output) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error in the forward pass: %v", r)
		}
	}()
	return s.m.ForwardInto(steps, outs)
}

func (j *Job) push(piece string, m *Metrics) {
	j.mu.Lock()
	if j.firstTok.IsZero() {
		j.firstTok = time.Now()
		m.ttft.Observe(j.firstTok.Sub(j.submitted).Seconds())
	}
	j.pending += piece
	j.mu.Unlock()
	select {
	case j.notify <- struct{}{}:
	default:
	}
}

func (j *Job) finish(err error) {
	j.mu.Lock()
	j.finished, j.err = true, err
	j.mu.Unlock()
	select {
	case j.notify <- struct{}{}:
	default:
	}
}

// Next waits for new text. It returns the text since the last call and done
// when the sequence has ended (err says why, when it was not a normal finish).
func (j *Job) Next(ctx context.Context) (text string, done bool, err error) {
	for {
		j.mu.Lock()
		text, done, err = j.pending, j.finished, j.err
		j.pending = ""
		j.mu.Unlock()
		if text != "" || done {
			return text, done, err
		}
		select {
		case <-j.notify:
		case <-ctx.Done():
			return "", true, ctx.Err()
		}
	}
}

// Wait collects the whole text.
func (j *Job) Wait(ctx context.Context) (string, error) {
	var all string
	for {
		t, done, err := j.Next(ctx)
		all += t
		if done {
			return all, err
		}
	}
}

// Sequence is the job's sequence (tokens, finish reason) once it is done.
func (j *Job) Sequence() *model.Sequence { return j.seq }
