package adapters

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"roe/model"
)

// countMerges replaces the cache's merge function with one that counts calls
// (and first waits on gate, when not nil).
func countMerges(t *testing.T, gate chan struct{}) *atomic.Int64 {
	var n atomic.Int64
	t.Cleanup(func() { mergeFunc = Merge })
	mergeFunc = func(ls []*LoRA, o MergeOptions) (*LoRA, MergeReport, error) {
		n.Add(1)
		if gate != nil {
			<-gate
		}
		return Merge(ls, o)
	}
	return &n
}

func cacheExperts(t *testing.T) ([]string, []*LoRA) {
	rng := rand.New(rand.NewPCG(31, 32))
	ids := []string{"a", "b", "c"}
	ls := make([]*LoRA, len(ids))
	for i := range ls {
		ls[i] = randomLoRA(rng, testBase, 2, []model.Proj{model.ProjQ}, false)
	}
	return ids, ls
}

func TestCacheHit(t *testing.T) {
	n := countMerges(t, nil)
	ids, ls := cacheExperts(t)
	c := NewCache(1 << 30)
	a, _, err := c.Get(ids[:2], ls[:2], MergeOptions{Method: MethodLinear})
	if err != nil {
		t.Fatal(err)
	}
	// Explicit defaults are the same key as zero values.
	b, _, _ := c.Get(ids[:2], ls[:2], MergeOptions{Method: MethodLinear, Weights: []float64{0.5, 0.5}, Density: 0.3})
	if a != b || n.Load() != 1 || c.Len() != 1 {
		t.Errorf("second Get: same %v, merges %d, len %d", a == b, n.Load(), c.Len())
	}
	if want := loraBytes(a); c.Bytes() != want || want == 0 {
		t.Errorf("bytes %d, want %d", c.Bytes(), want)
	}
	// Order, weights and options are part of the key.
	for _, g := range []struct {
		ids []string
		ls  []*LoRA
		o   MergeOptions
	}{
		{[]string{"b", "a"}, []*LoRA{ls[1], ls[0]}, MergeOptions{Method: MethodLinear}},
		{ids[:2], ls[:2], MergeOptions{Method: MethodLinear, Weights: []float64{1, 2}}},
		{ids[:2], ls[:2], MergeOptions{Method: MethodLinear, Rank: 3}},
		{ids[:2], ls[:2], MergeOptions{Method: MethodDARELinear, Seed: 1}},
		{ids[:2], ls[:2], MergeOptions{Method: MethodDARELinear, Seed: 2}},
	} {
		if _, _, err := c.Get(g.ids, g.ls, g.o); err != nil {
			t.Fatal(err)
		}
	}
	if n.Load() != 6 || c.Len() != 6 {
		t.Errorf("merges %d, len %d, want 6", n.Load(), c.Len())
	}
	// Errors are returned, not cached.
	if _, _, err := c.Get(ids[:1], ls[:2], MergeOptions{Method: MethodLinear}); !errors.Is(err, ErrMerge) {
		t.Errorf("ids/experts mismatch: %v", err)
	}
	if _, _, err := c.Get(ids[:2], ls[:2], MergeOptions{Method: MethodSLERP, T: 3}); !errors.Is(err, ErrMerge) || c.Len() != 6 {
		t.Errorf("bad options: %v, len %d", err, c.Len())
	}
	c.Invalidate("b")
	if c.Len() != 0 || c.Bytes() != 0 {
		t.Errorf("after invalidating b: len %d bytes %d", c.Len(), c.Bytes())
	}
}

func TestCacheEviction(t *testing.T) {
	countMerges(t, nil)
	ids, ls := cacheExperts(t)
	one, _, _ := Merge(ls[:2], MergeOptions{Method: MethodLinear})
	size := loraBytes(one)
	c := NewCache(2 * size) // room for two merges of this size
	get := func(w float64) *LoRA {
		l, _, err := c.Get(ids[:2], ls[:2], MergeOptions{Method: MethodLinear, Weights: []float64{1, w}})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	m1 := get(1)
	get(2)
	if get(1) != m1 { // touch 1: now 2 is the least recently used
		t.Fatal("miss on a cached merge")
	}
	get(3) // evicts 2
	if c.Len() != 2 || c.Bytes() != 2*size {
		t.Errorf("len %d bytes %d, want 2 and %d", c.Len(), c.Bytes(), 2*size)
	}
	if get(1) != m1 {
		t.Error("the recently used merge was evicted")
	}
	before := c.Len()
	get(2) // recomputed, evicts 3
	if c.Len() != before {
		t.Errorf("len %d", c.Len())
	}
	// A merge larger than the whole budget is returned but not kept.
	small := NewCache(size - 1)
	if l, _, err := small.Get(ids[:2], ls[:2], MergeOptions{Method: MethodLinear}); err != nil || l == nil || small.Len() != 0 || small.Bytes() != 0 {
		t.Errorf("oversize: %v, len %d", err, small.Len())
	}
}

// Concurrent requests for one key run one merge; different keys run in parallel.
func TestCacheConcurrent(t *testing.T) {
	gate := make(chan struct{})
	n := countMerges(t, gate)
	ids, ls := cacheExperts(t)
	c := NewCache(1 << 30)
	const workers = 16
	var wg sync.WaitGroup
	got := make([]*LoRA, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, _, err := c.Get(ids, ls, MergeOptions{Method: MethodTIES})
			if err != nil {
				t.Error(err)
			}
			got[w] = l
		}()
	}
	// Let the goroutines pile up on the one merge, then release it.
	deadline := time.Now().Add(5 * time.Second)
	for n.Load() < 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	close(gate)
	wg.Wait()
	if n.Load() != 1 {
		t.Errorf("%d merges for one key", n.Load())
	}
	for _, l := range got {
		if l != got[0] || l == nil {
			t.Fatal("waiters got different results")
		}
	}
	// Many keys, many goroutines, a small budget: no race, bounded bytes.
	one, _, _ := Merge(ls[:2], MergeOptions{Method: MethodLinear})
	small := NewCache(3 * loraBytes(one))
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				wt := float64((w + i) % 5)
				if _, _, err := small.Get(ids[:2], ls[:2], MergeOptions{Method: MethodLinear, Weights: []float64{1, wt}}); err != nil {
					t.Error(err)
				}
				if i%7 == 0 {
					small.Invalidate(fmt.Sprint("zz", i))
				}
				if b := small.Bytes(); b > 3*loraBytes(one) {
					t.Errorf("bytes %d over budget", b)
				}
			}
		}()
	}
	wg.Wait()
	if small.Len() > 3 {
		t.Errorf("len %d", small.Len())
	}
}

// A hit returns the report of the merge it keeps; Rank is part of the key, so
// a compressed merge and the exact one are kept apart.
func TestCacheReport(t *testing.T) {
	n := countMerges(t, nil)
	rng := rand.New(rand.NewPCG(33, 34))
	ids := []string{"a", "b"}
	ls := []*LoRA{randomLoRA(rng, testBase, 2, nil, false), randomLoRA(rng, testBase, 3, nil, false)}
	c := NewCache(1 << 30)
	for i := 0; i < 2; i++ {
		_, exact, err := c.Get(ids, ls, MergeOptions{Method: MethodLinear})
		if err != nil {
			t.Fatal(err)
		}
		_, small, err := c.Get(ids, ls, MergeOptions{Method: MethodLinear, Rank: 2})
		if err != nil {
			t.Fatal(err)
		}
		if exact.Compressed || exact.RelFrobError != 0 || exact.Rank != 5 || exact.ExactRank != 5 {
			t.Errorf("Get %d, exact: %+v", i, exact)
		}
		if !small.Compressed || small.RelFrobError < 0.05 || small.Rank != 2 || small.ExactRank != 5 {
			t.Errorf("Get %d, rank 2: %+v", i, small)
		}
	}
	if n.Load() != 2 || c.Len() != 2 {
		t.Errorf("merges %d, len %d, want 2 and 2", n.Load(), c.Len())
	}
}
