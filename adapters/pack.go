package adapters

import "unsafe"

// An unmerged LoRA's decode step reads every adapted module's A and
// (Scale·B)ᵀ once: for a rank-16 adapter on all seven projections of a
// 135M model, 19.5 MB in 420 pieces of 9–49 KB. Read from 4 KiB pages,
// a good share of that step is page walks (the base model's weights evict
// the factors' page-table entries from the caches between steps); from
// 2 MiB pages it is a handful. pack gathers the factors into one buffer and
// asks for huge pages over its aligned middle (Linux, with transparent huge
// pages on "always" or "madvise"; elsewhere the hint is a no-op).

// packMin is the factors' size below which pack leaves an adapter as it is:
// under two huge pages there is little to gain for the buffer's slack.
var packMin = 4 << 20

// hugePage is the huge page size pack aligns to.
const hugePage = 2 << 20

// pack moves every pair's A and (Scale·B)ᵀ into one buffer, A then (Scale·B)ᵀ
// pair by pair in layer order. Values are unchanged; call it before l is
// shared (the constructors do).
func (l *LoRA) pack() {
	n := 0
	for _, ps := range l.Layers {
		for _, pr := range ps {
			if pr != nil {
				n += len(pr.A) + len(pr.bst)
			}
		}
	}
	if n*4 < packMin {
		return
	}
	buf := make([]float32, n+hugePage/4)
	off := int((hugePage - uintptr(unsafe.Pointer(&buf[0]))%hugePage) % hugePage / 4)
	f := buf[off : off+n : off+n]
	adviseHuge(f)
	i := 0
	move := func(v []float32) []float32 {
		dst := f[i : i+len(v) : i+len(v)]
		copy(dst, v)
		i += len(v)
		return dst
	}
	for _, ps := range l.Layers {
		for _, pr := range ps {
			if pr != nil {
				pr.A, pr.bst = move(pr.A), move(pr.bst)
			}
		}
	}
}
