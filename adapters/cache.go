package adapters

// A cache of merged adapters.
//
// A request routed to several experts needs their merge, and the same top-k
// comes back for many requests of a task; merging (with the SVDs of dense or
// compressed merges) costs far more than a forward step. So each merge is computed once per key — concurrent
// requests for one key wait for the single computation — and kept under a byte
// budget with least-recently-used eviction.

import (
	"container/list"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// mergeFunc is what the Cache calls (tests replace it to count and block merges).
var mergeFunc = Merge

// Cache holds merged adapters keyed by (expert ids in order, method, all
// options after defaults), bounded by the bytes of their factors. It is safe for
// concurrent use; the adapters it returns are shared and must not be modified.
//
// An id must name one version of an expert: when an expert changes, give it a
// new id or call Invalidate.
type Cache struct {
	mu       sync.Mutex
	maxBytes int64
	bytes    int64
	lru      *list.List // of *cacheEntry, most recently used first
	items    map[string]*list.Element
	inflight map[string]*mergeCall
}

type cacheEntry struct {
	key  string
	ids  []string
	l    *LoRA
	rep  MergeReport
	size int64
}

// mergeCall is one merge in progress; waiters block on done.
type mergeCall struct {
	done  chan struct{}
	ids   []string
	stale bool // Invalidate ran while it computed: do not keep the result
	l     *LoRA
	rep   MergeReport
	err   error
}

// NewCache returns a cache that keeps at most maxBytes of merged factors.
func NewCache(maxBytes int64) *Cache {
	return &Cache{maxBytes: maxBytes, lru: list.New(), items: map[string]*list.Element{}, inflight: map[string]*mergeCall{}}
}

// Get returns the merge of experts (named by ids, in the same order) with o and
// its MergeReport (kept with the entry, so hits return it too), computing it at
// most once at a time per key. o.Rank is part of the key. Errors are not cached.
func (c *Cache) Get(ids []string, experts []*LoRA, o MergeOptions) (*LoRA, MergeReport, error) {
	if len(ids) != len(experts) {
		return nil, MergeReport{}, fmt.Errorf("%w: %d ids for %d experts", ErrMerge, len(ids), len(experts))
	}
	norm, err := o.normalized(len(experts))
	if err != nil {
		return nil, MergeReport{}, err
	}
	key := cacheKey(ids, norm)
	c.mu.Lock()
	if el, ok := c.items[key]; ok {
		c.lru.MoveToFront(el)
		e := el.Value.(*cacheEntry)
		c.mu.Unlock()
		return e.l, e.rep, nil
	}
	if call, ok := c.inflight[key]; ok {
		c.mu.Unlock()
		<-call.done
		return call.l, call.rep, call.err
	}
	call := &mergeCall{done: make(chan struct{}), ids: append([]string(nil), ids...)}
	c.inflight[key] = call
	c.mu.Unlock()

	defer func() { // also on a panic, so that waiters are never stuck
		c.mu.Lock()
		delete(c.inflight, key)
		if call.err == nil && call.l != nil && !call.stale {
			c.add(&cacheEntry{key: key, ids: call.ids, l: call.l, rep: call.rep, size: loraBytes(call.l)})
		}
		c.mu.Unlock()
		close(call.done)
	}()
	call.err = fmt.Errorf("%w: merge panicked", ErrMerge)
	call.l, call.rep, call.err = mergeFunc(experts, norm)
	return call.l, call.rep, call.err
}

// add stores e and evicts least-recently-used entries down to the budget; an
// entry larger than the whole budget is not kept. Called with c.mu held.
func (c *Cache) add(e *cacheEntry) {
	if e.size > c.maxBytes {
		return
	}
	c.items[e.key] = c.lru.PushFront(e)
	c.bytes += e.size
	for c.bytes > c.maxBytes {
		c.remove(c.lru.Back())
	}
}

func (c *Cache) remove(el *list.Element) {
	e := c.lru.Remove(el).(*cacheEntry)
	delete(c.items, e.key)
	c.bytes -= e.size
}

// Invalidate drops every merge that involves the expert id (and keeps merges in
// progress that involve it from being stored).
func (c *Cache) Invalidate(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for el := c.lru.Front(); el != nil; {
		next := el.Next()
		for _, x := range el.Value.(*cacheEntry).ids {
			if x == id {
				c.remove(el)
				break
			}
		}
		el = next
	}
	for _, call := range c.inflight {
		for _, x := range call.ids {
			call.stale = call.stale || x == id
		}
	}
}

// Len returns the number of cached merges.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// Bytes returns the memory the cached merges hold.
func (c *Cache) Bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}

// loraBytes is what an adapter holds: A, B and the scaled copy of B the forward
// uses, all float32.
func loraBytes(l *LoRA) int64 {
	var n int64
	for _, layer := range l.Layers {
		for _, pr := range layer {
			if pr != nil {
				n += int64(len(pr.A)+len(pr.B)+len(pr.bs)+len(pr.bst))*4 + int64(len(pr.a16)+len(pr.bst16))*2
			}
		}
	}
	return n
}

// cacheKey encodes ids (length-prefixed, so no id can fake a separator) and the
// normalised options, floats in their exact shortest form.
func cacheKey(ids []string, o MergeOptions) string {
	var b strings.Builder
	for _, id := range ids {
		b.WriteString(strconv.Itoa(len(id)))
		b.WriteByte(':')
		b.WriteString(id)
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	fmt.Fprintf(&b, "|%s|d=%s|t=%s|seed=%d|r=%d|p=%s|fill=%s|w=", o.Method, f(o.Density), f(o.T), o.Seed, o.Rank, f(o.CoreFraction), o.CoreFill)
	for _, w := range o.Weights {
		b.WriteString(f(w))
		b.WriteByte(',')
	}
	return b.String()
}
