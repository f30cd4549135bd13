package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// The worker pool: goroutines started once and fed jobs over a channel. A job
// is a range split into chunks that whoever holds the job claims with an
// atomic counter; the caller claims chunks too and never waits for a chunk
// nobody has started, so nested Parallel calls (MatMulT inside a per-head
// Parallel) cannot deadlock, they just run on fewer threads.

type job struct {
	fn       func(lo, hi int)
	n, grain int
	next     atomic.Int64 // next chunk to claim
	left     atomic.Int64 // chunks not yet finished
	done     chan struct{}
}

func (j *job) run() {
	for {
		lo := int(j.next.Add(1)-1) * j.grain
		if lo >= j.n {
			return
		}
		j.fn(lo, min(lo+j.grain, j.n))
		if j.left.Add(-1) == 0 {
			close(j.done)
		}
	}
}

var pool struct {
	mu      sync.Mutex
	threads atomic.Int32
	started int // workers running
	jobs    chan *job
}

func init() {
	pool.jobs = make(chan *job, 256)
	SetThreads(runtime.GOMAXPROCS(0))
}

// SetThreads sets how many threads (the caller plus n-1 pool workers) the
// kernels use; n < 1 means 1. Workers are started on demand and never stop.
func SetThreads(n int) {
	n = max(n, 1)
	pool.mu.Lock()
	defer pool.mu.Unlock()
	for ; pool.started < n-1; pool.started++ {
		go func() {
			for j := range pool.jobs {
				j.run()
			}
		}()
	}
	pool.threads.Store(int32(n))
}

// Threads reports the thread count set by SetThreads (default GOMAXPROCS).
func Threads() int { return int(pool.threads.Load()) }

// Parallel calls fn on disjoint ranges [lo, hi) covering [0, n), on the pool
// and the calling goroutine, and returns when all are done. Ranges are a few
// per thread so uneven items (attention heads) balance.
func Parallel(n int, fn func(lo, hi int)) {
	t := Threads()
	parallelFor(n, max(1, n/(4*t)), fn)
}

// parallelFor runs fn over [0, n) in chunks of grain items.
func parallelFor(n, grain int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	chunks := (n + grain - 1) / grain
	t := Threads()
	if t == 1 || chunks == 1 {
		fn(0, n)
		return
	}
	j := &job{fn: fn, n: n, grain: grain, done: make(chan struct{})}
	j.left.Store(int64(chunks))
	for range min(t, chunks) - 1 {
		select {
		case pool.jobs <- j:
		default: // queue full: the caller and idle workers do it
		}
	}
	j.run()
	<-j.done
}
