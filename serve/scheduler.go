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

// Group is one prompt's completions: Lead runs the prompt, and right after
// its prefill Fork makes completions 1 … N-1 from it (model.Sequence.Fork),
// so that the prompt is computed once. N ≤ 1 (or a nil Fork) is Lead alone.
type Group struct {
	Lead *model.Sequence
	N    int
	Fork func(lead *model.Sequence, j int) (*model.Sequence, error)
}

// Piece is new output of one sequence of a job.
type Piece struct {
	Index          int                  // the sequence: group g's completion j is Σ N of earlier groups + j
	Text           string               // text safe to show since the last piece
	Logprobs       []model.TokenLogprob // of the tokens accepted since the last piece, when asked
	PromptLogprobs []model.TokenLogprob // on the sequence's first piece, when its prompt is scored
	Done           bool                 // the sequence has ended
	Finish         string               // why, when Done: its FinishReason
	Err            error                // when Done: the sequence's Err (its constraint failed)
}

// Job is one request's sequences, submitted together; their output arrives
// through Pieces (or Next, for a job of one sequence).
type Job struct {
	seqs   []*model.Sequence // by index; a fork is nil until its lead's prefill ran
	groups []Group
	ctx    context.Context
	alive  func() bool // nil, or false once the client has gone
	checks int         // the step whose liveness was last checked (scheduler only)
	gone   bool

	mu       sync.Mutex
	pending  []Piece
	at       map[int]int // index → its piece in pending
	lpSent   []int       // log-probabilities handed out, by index (scheduler only)
	started  []bool      // a first piece was made, by index (scheduler only)
	live     int         // sequences not finished
	finished bool
	err      error
	notify   chan struct{} // capacity 1: "something changed"

	submitted time.Time
	firstTok  time.Time
}

// slot is one sequence in the batch.
type slot struct {
	job   *Job
	index int
	seq   *model.Sequence
	group *Group // a lead whose forks are still to be made, else nil
}

// size is the sequences the slot will be once its forks are made.
func (sl slot) size() int {
	if sl.group != nil {
		return sl.group.N
	}
	return 1
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
	return s.SubmitGroups(ctx, []Group{{Lead: seq}}, alive)
}

// SubmitGroups queues the sequences of one request: each group's lead, whose
// forks join the batch after its prefill. alive is as for SubmitWatched.
func (s *Scheduler) SubmitGroups(ctx context.Context, groups []Group, alive func() bool) (*Job, error) {
	n := 0
	for i := range groups {
		groups[i].N = max(groups[i].N, 1)
		if groups[i].Fork == nil {
			groups[i].N = 1
		}
		n += groups[i].N
	}
	j := &Job{seqs: make([]*model.Sequence, n), ctx: ctx, alive: alive, checks: -1, at: map[int]int{},
		lpSent: make([]int, n), started: make([]bool, n), live: n, notify: make(chan struct{}, 1), submitted: time.Now()}
	off := 0
	for _, g := range groups {
		j.seqs[off] = g.Lead
		off += g.N
	}
	j.groups = groups
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrShuttingDown
	}
	select {
	case s.queue <- j:
		s.metrics.queueDepth.Set(float64(len(s.queue)))
		return j, nil
	default:
		return nil, ErrQueueFull
	}
}

// QueueLen is the number of requests waiting to join the batch.
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

// slots are a job's leads, in index order.
func (j *Job) slots() []slot {
	var out []slot
	off := 0
	for i := range j.groups {
		g := &j.groups[i]
		sl := slot{job: j, index: off, seq: g.Lead}
		if g.N > 1 {
			sl.group = g
		}
		out = append(out, sl)
		off += g.N
	}
	return out
}

func (s *Scheduler) loop() {
	defer close(s.done)
	var active, waiting []slot // in the batch; taken from the queue, waiting for room
	var next []slot            // the next step's batch (reused)
	var steps []model.Step
	var outs []model.Output // reused across steps: logits buffers stay allocated
	open := true
	for step := 0; open || len(active) > 0 || len(waiting) > 0; step++ {
		s.metrics.engine.observe(active, waiting, len(s.queue))
		// Block for work when idle; otherwise take what is waiting.
		if len(active) == 0 && len(waiting) == 0 {
			j, ok := <-s.queue
			if !ok {
				return
			}
			waiting = append(waiting, j.slots()...)
		}
	fill:
		for open && len(active)+len(waiting) < s.maxBatch {
			select {
			case j, ok := <-s.queue:
				if !ok {
					open = false
					break fill
				}
				waiting = append(waiting, j.slots()...)
			default:
				break fill
			}
		}
		s.metrics.queueDepth.Set(float64(len(s.queue)))
		// Drop the sequences of jobs whose clients left or that failed.
		active, waiting = s.sweep(active, step), s.sweep(waiting, step)
		// A lead joins with room for its forks (or into an empty batch).
		size := 0 // the batch once its leads have forked
		for _, sl := range active {
			size += sl.size()
		}
		for len(waiting) > 0 && (size == 0 || size+waiting[0].size() <= s.maxBatch) {
			size += waiting[0].size()
			active, waiting = append(active, waiting[0]), waiting[1:]
		}
		if len(active) == 0 {
			continue
		}
		steps = steps[:0]
		for _, sl := range active {
			steps = append(steps, sl.seq.Step())
		}
		for len(outs) < len(steps) {
			outs = append(outs, model.Output{})
		}
		s.metrics.batchSize.Observe(float64(len(active)))
		t0 := time.Now()
		err := s.forward(steps, outs[:len(steps)])
		out := outs
		if err != nil {
			for _, sl := range active {
				sl.job.fail(fmt.Errorf("forward: %w", err))
			}
			active = active[:0]
			continue
		}
		s.metrics.stepSeconds.Observe(time.Since(t0).Seconds())
		kept := next[:0]
		for i, sl := range active {
			j := sl.job
			if g := sl.group; g != nil {
				// The prompt is in the lead's cache: fork the other completions
				// now, before the lead draws its first token.
				for k := 1; k < g.N; k++ {
					f, err := g.Fork(sl.seq, k)
					if err != nil {
						j.fail(err)
						break
					}
					j.seqs[sl.index+k] = f
					if s.accept(j, sl.index+k, f, out[i].Logits) {
						kept = append(kept, slot{job: j, index: sl.index + k, seq: f})
					}
				}
			}
			if s.accept(j, sl.index, sl.seq, out[i].Logits) {
				kept = append(kept, slot{job: j, index: sl.index, seq: sl.seq})
			}
		}
		active, next = kept, active
	}
}

// accept hands one sequence its logits and reports whether it goes on.
func (s *Scheduler) accept(j *Job, index int, seq *model.Sequence, logits []float32) bool {
	if j.failed() {
		return false
	}
	piece := seq.Accept(logits)
	s.metrics.tokens.Inc()
	j.push(index, piece, seq, s.metrics)
	return !seq.Done()
}

// sweep drops the slots of jobs that ended: failed, cancelled or abandoned.
func (s *Scheduler) sweep(slots []slot, step int) []slot {
	kept := slots[:0]
	for _, sl := range slots {
		j := sl.job
		switch {
		case j.failed():
			continue
		case s.abandon.Load():
			j.fail(ErrShuttingDown)
			continue
		case j.isGone(step):
			j.fail(context.Canceled)
			continue
		}
		kept = append(kept, sl)
	}
	return kept
}

// isGone reports whether the client left, checking once per step.
func (j *Job) isGone(step int) bool {
	if j.checks != step {
		j.checks = step
		j.gone = j.ctx.Err() != nil || (j.alive != nil && !j.alive())
	}
	return j.gone
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

// push records one sequence's new output (scheduler goroutine only).
func (j *Job) push(index int, text string, seq *model.Sequence, m *Metrics) {
	done := seq.Done()
	first := !j.started[index]
	if text == "" && !done && !first {
		return // its log-probabilities wait for the text they belong to
	}
	j.started[index] = true
	var lps []model.TokenLogprob
	if n := len(seq.Logprobs); n > j.lpSent[index] {
		lps = append(lps, seq.Logprobs[j.lpSent[index]:]...)
		j.lpSent[index] = n
	}
	j.mu.Lock()
	if j.firstTok.IsZero() && text != "" {
		j.firstTok = time.Now()
		m.ttft.Observe(j.firstTok.Sub(j.submitted).Seconds())
	}
	if k, ok := j.at[index]; ok && !j.pending[k].Done {
		p := &j.pending[k]
		p.Text += text
		p.Logprobs = append(p.Logprobs, lps...)
		p.Done = done
		if done {
			p.Finish, p.Err = seq.FinishReason, seq.Err
		}
	} else {
		p := Piece{Index: index, Text: text, Logprobs: lps, Done: done}
		if done {
			p.Finish, p.Err = seq.FinishReason, seq.Err
		}
		if first {
			p.PromptLogprobs = seq.PromptLogprobs
		}
		j.at[index] = len(j.pending)
		j.pending = append(j.pending, p)
	}
	if done {
		j.live--
		if j.live == 0 {
			j.finished = true
		}
	}
	j.mu.Unlock()
	j.wake()
}

func (j *Job) wake() {
	select {
	case j.notify <- struct{}{}:
	default:
	}
}

// fail ends the job with err: its sequences stop (scheduler goroutine only).
func (j *Job) fail(err error) {
	for _, seq := range j.seqs {
		if seq != nil {
			seq.Stop("cancelled")
		}
	}
	j.mu.Lock()
	if !j.finished {
		j.finished, j.err = true, err
	}
	j.mu.Unlock()
	j.wake()
}

func (j *Job) failed() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.finished && j.err != nil
}

// Pieces waits for new output and returns it, in order for each sequence;
// done when every sequence has ended (err says why, when one failed).
func (j *Job) Pieces(ctx context.Context) (pieces []Piece, done bool, err error) {
	for {
		j.mu.Lock()
		pieces, done, err = j.pending, j.finished, j.err
		j.pending, j.at = nil, map[int]int{}
		j.mu.Unlock()
		if len(pieces) > 0 || done {
			return pieces, done, err
		}
		select {
		case <-j.notify:
		case <-ctx.Done():
			return nil, true, ctx.Err()
		}
	}
}

// Next waits for new text. It returns the text since the last call and done
// when the job has ended (err says why, when it was not a normal finish).
func (j *Job) Next(ctx context.Context) (text string, done bool, err error) {
	for {
		pieces, done, err := j.Pieces(ctx)
		for _, p := range pieces {
			text += p.Text
		}
		if text != "" || done {
			return text, done, err
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

// Sequence is the job's first sequence (tokens, finish reason) once it is done.
func (j *Job) Sequence() *model.Sequence { return j.seqs[0] }

// Sequences are the job's sequences by index, once it is done.
func (j *Job) Sequences() []*model.Sequence { return j.seqs }
