package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// The worker pool: goroutines started once that poll for the latest job. A
// job is a range split into chunks, and the chunks into one contiguous
// segment per participant (the caller and each helper it asked for). Each
// works through its own segment in order, claiming chunks with an atomic
// counter, then takes what is left of the others'. The caller claims chunks
// too and never waits for a chunk nobody has started, so nested Parallel
// calls (MatMulT inside a per-head Parallel) cannot deadlock, they just run
// on fewer threads.
//
// A caller publishes its job in pool.post and bumps pool.seq; idle workers
// spin on pool.seq (atomic loads: a channel here takes its lock on every
// hand-off) and park on pool.wake only after spinFor without work. A job published
// over another one before a worker saw it is simply done by fewer threads.
// Jobs are recycled through a free list and carry a runner interface rather
// than a fresh closure, so a parallel GEMM allocates nothing in steady state.
// A worker joins a job only while it has holders (state): one that finds a
// finished or recycled job drops it, so late workers never keep a job from
// being reused.

// runner is the work of one job: run items [lo, hi).
type runner interface{ run(lo, hi int) }

// funcRunner adapts a plain function (func values are pointer-shaped, so the
// conversion does not allocate).
type funcRunner func(lo, hi int)

func (f funcRunner) run(lo, hi int) { f(lo, hi) }

type job struct {
	r        runner
	n, grain int
	segs     []segment     // one per participant: its own run of chunks
	joined   atomic.Int64  // participants so far; the next one takes segment joined
	left     atomic.Int64  // chunks not yet finished
	state    atomic.Uint64 // generation<<32 | holders
	done     chan struct{} // one send when left reaches 0
}

var jobPool = newFreeList(func() *job { return &job{done: make(chan struct{}, 1)} })

// freeList recycles objects through a channel. Unlike sync.Pool it is shared
// by all Ps at once (a job put back by a worker is found by the next caller
// on another P) and is not emptied by the garbage collector.
type freeList[T any] struct {
	c   chan *T
	new func() *T
}

func newFreeList[T any](new func() *T) *freeList[T] {
	return &freeList[T]{c: make(chan *T, 64), new: new}
}

func (f *freeList[T]) get() *T {
	select {
	case v := <-f.c:
		return v
	default:
		return f.new()
	}
}

func (f *freeList[T]) put(v *T) {
	select {
	case f.c <- v:
	default: // full: let the collector have it
	}
}

// segment is a contiguous run of chunks [next, end) that one participant
// works through in order, so its reads stay one stream (a decode GEMV's
// rows); others take chunks from it only once their own run is done.
type segment struct {
	next atomic.Int64
	end  int64
	_    [48]byte // a cache line each: claims on different segments do not collide
}

// run claims chunks from segment self first, then from the others in turn.
func (j *job) run(self int) {
	ns := len(j.segs)
	for s := 0; s < ns; s++ {
		seg := &j.segs[(self+s)%ns]
		for {
			c := seg.next.Add(1) - 1
			if c >= seg.end {
				break
			}
			lo := int(c) * j.grain
			j.r.run(lo, min(lo+j.grain, j.n))
			if j.left.Add(-1) == 0 {
				j.done <- struct{}{}
			}
		}
	}
}

// acquire makes the caller a holder of generation gen, if it is still live.
func (j *job) acquire(gen uint32) bool {
	for {
		s := j.state.Load()
		if uint32(s>>32) != gen || uint32(s) == 0 {
			return false
		}
		if j.state.CompareAndSwap(s, s+1) {
			return true
		}
	}
}

// release drops one holder; the last one recycles the job.
func (j *job) release() {
	if uint32(j.state.Add(^uint64(0))) == 0 {
		j.r = nil
		jobPool.put(j)
	}
}

var pool struct {
	mu      sync.Mutex
	threads atomic.Int32
	started int // workers running

	post   atomic.Pointer[job] // the latest job offered to the workers
	seq    atomic.Uint64       // bumped after each post
	parked atomic.Int32        // workers blocked on wake
	wake   chan struct{}
}

func init() {
	pool.wake = make(chan struct{}, 256)
	SetThreads(runtime.GOMAXPROCS(0))
}

// SetThreads sets how many threads (the caller plus n-1 pool workers) the
// kernels use; n < 1 means 1. Workers are started on demand and never stop.
func SetThreads(n int) {
	n = max(n, 1)
	pool.mu.Lock()
	defer pool.mu.Unlock()
	for ; pool.started < n-1; pool.started++ {
		go worker()
	}
	pool.threads.Store(int32(n))
}

// spinFor is how long an idle worker polls for the next job (and a caller for
// its helpers) before parking: a decode step is hundreds of GEMMs of tens of
// microseconds each, and a park costs a scheduler wake-up of 20–80 µs, which
// with 50 µs here hit one job in ten (measured: the worker joined late or not
// at all in 21% of 100 µs jobs; none at 200 µs).
const spinFor = 200 * time.Microsecond

func worker() {
	var seen uint64
	for {
		q := pool.seq.Load()
		if q == seen {
			q = awaitPost(seen)
		}
		seen = q
		j := pool.post.Load()
		if j == nil {
			continue
		}
		if j.acquire(uint32(j.state.Load() >> 32)) {
			j.run(int(j.joined.Add(1)))
			j.release()
		}
	}
}

// awaitPost spins until pool.seq moves past seen, then parks on pool.wake;
// it returns the new sequence number.
func awaitPost(seen uint64) uint64 {
	start := time.Now()
	for i := 0; ; i++ {
		if q := pool.seq.Load(); q != seen {
			return q
		}
		if i%64 == 63 && time.Since(start) > spinFor {
			pool.parked.Add(1)
			// A post after this point either is seen here or finds
			// parked > 0 and sends a wake-up.
			if q := pool.seq.Load(); q != seen {
				pool.parked.Add(-1)
				return q
			}
			<-pool.wake
			pool.parked.Add(-1)
			start, i = time.Now(), 0
		}
	}
}

// Threads reports the thread count set by SetThreads (default GOMAXPROCS).
func Threads() int { return int(pool.threads.Load()) }

// Parallel calls fn on disjoint ranges [lo, hi) covering [0, n), on the pool
// and the calling goroutine, and returns when all are done. Ranges are a few
// per thread so uneven items (attention heads) balance. Parallel itself does
// not allocate; a closure that fn captures does, unless the caller keeps it.
func Parallel(n int, fn func(lo, hi int)) {
	t := Threads()
	parallelFor(n, max(1, n/(4*t)), funcRunner(fn))
}

// serialWork is the number of multiply-adds below which splitting a job
// across the pool costs more (a dispatch and a wait) than it saves.
const serialWork = 32 << 10

// ParallelWork is Parallel for work that the caller can size: below about
// 32K multiply-adds in all it runs fn(0, n) on the calling goroutine, since a
// dispatch would cost more than the split saves.
func ParallelWork(n, work int, fn func(lo, hi int)) {
	if work < serialWork {
		if n > 0 {
			fn(0, n)
		}
		return
	}
	Parallel(n, fn)
}

// dispatches counts the jobs handed to the pool (see ParallelDispatches).
var dispatches atomic.Uint64

// ParallelDispatches reports how many jobs Parallel and MatMulT have handed
// to the worker pool since the process started (calls that ran on the caller
// alone are not counted): each costs one synchronisation.
func ParallelDispatches() uint64 { return dispatches.Load() }

// parallelFor runs r over [0, n) in chunks of grain items.
func parallelFor(n, grain int, r runner) {
	if n <= 0 {
		return
	}
	chunks := (n + grain - 1) / grain
	// Helpers beyond GOMAXPROCS could not run alongside the caller: they
	// would only pick up the job after it is done.
	helpers := min(Threads(), chunks, runtime.GOMAXPROCS(0)) - 1
	if helpers <= 0 {
		r.run(0, n)
		return
	}
	dispatches.Add(1)
	j := jobPool.get()
	gen := uint32(j.state.Load()>>32) + 1
	j.r, j.n, j.grain = r, n, grain
	// One contiguous segment per participant (the caller and each helper).
	ns := helpers + 1
	if cap(j.segs) < ns {
		j.segs = make([]segment, ns)
	}
	j.segs = j.segs[:ns]
	for i := range j.segs {
		j.segs[i].next.Store(int64(i * chunks / ns))
		j.segs[i].end = int64((i + 1) * chunks / ns)
	}
	j.joined.Store(0)
	j.left.Store(int64(chunks))
	j.state.Store(uint64(gen)<<32 | 1) // publishes the fields above
	pool.post.Store(j)
	pool.seq.Add(1)
	for n := min(int(pool.parked.Load()), helpers); n > 0; n-- {
		select {
		case pool.wake <- struct{}{}:
		default:
		}
	}
	j.run(0)
	// Helpers may still be finishing a chunk: poll the done token before
	// parking, since a parked caller costs a scheduler wake-up (tens of µs)
	// per GEMV. (Polling left instead missed the window between the last
	// chunk's decrement and its send, and parked the caller on one GEMV in
	// ten on two cores.)
	start := time.Now()
	for i := 0; ; i++ {
		select {
		case <-j.done:
			j.release()
			return
		default:
		}
		if i%64 == 63 && time.Since(start) > spinFor {
			break
		}
	}
	<-j.done
	j.release()
}
