package adapters

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"roe/kernels"
)

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
// pair by pair in layer order, and, with bfloat16 decode factors (see
// SetDecodeDType), rounds them into one buffer of bfloat16 instead. Values
// are unchanged in float32; call it before l is shared (the constructors do).
func (l *LoRA) pack() {
	if l.packed {
		return
	}
	n := 0
	for _, ps := range l.Layers {
		for _, pr := range ps {
			if pr != nil {
				n += len(pr.A) + len(pr.bst)
			}
		}
	}
	if decodeBF16.Load() {
		l.packed = true
		h := hugeBuf[uint16](n, 2)
		i := 0
		round := func(v []float32) []uint16 {
			dst := h[i : i+len(v) : i+len(v)]
			kernels.NarrowBF16(dst, v)
			i += len(v)
			return dst
		}
		for _, ps := range l.Layers {
			for _, pr := range ps {
				if pr != nil {
					pr.a16, pr.bst16 = round(pr.A), round(pr.bst)
					pr.bst = nil // decode's only: it reads bst16
				}
			}
		}
		return
	}
	if n*4 < packMin {
		return
	}
	l.packed = true
	f := hugeBuf[float32](n, 4)
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

// hugeBuf returns n elements of size bytes each, on huge pages over their
// aligned middle when they take at least packMin bytes.
func hugeBuf[T uint16 | float32](n, size int) []T {
	if n*size < packMin {
		return make([]T, n)
	}
	buf := make([]T, n+hugePage/size)
	off := int((hugePage - uintptr(unsafe.Pointer(&buf[0]))%hugePage) % hugePage / uintptr(size))
	f := buf[off : off+n : off+n]
	adviseHuge(unsafe.Slice((*byte)(unsafe.Pointer(&f[0])), n*size))
	return f
}

// DecodeDType is the dtype SetDecodeDType set: "float32" or "bfloat16".
func DecodeDType() string {
	if decodeBF16.Load() {
		return "bfloat16"
	}
	return "float32"
}

// decodeBF16 is whether pack rounds decode factors to bfloat16.
var decodeBF16 atomic.Bool

// SetDecodeDType sets how adapters built from now on keep the factors an
// unmerged decode step reads: "float32" (the default, also "auto": exact) or
// "bfloat16" (rounded once when the adapter is built: half the bytes a
// decode step reads, lossy unless the adapter's values are bfloat16
// already; prefill, merges and exports keep float32). It is vLLM's
// --lora-dtype, whose auto is the model's compute dtype: float32 here.
func SetDecodeDType(dtype string) error {
	switch dtype {
	case "float32", "f32", "auto", "":
		decodeBF16.Store(false)
	case "bfloat16", "bf16":
		decodeBF16.Store(true)
	default:
		return fmt.Errorf("adapter decode dtype %q: want float32 (auto) or bfloat16", dtype)
	}
	return nil
}
