package adapters

import (
	"fmt"
	"iter"
	"math"
	"sync/atomic"

	"roe/internal/hugepage"
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

// pack moves every pair's A and (Scale·B)ᵀ into one buffer, A then (Scale·B)ᵀ
// pair by pair in layer order, or, with bfloat16 decode factors (see
// SetDecodeDType), into one buffer of bfloat16 instead. Values are unchanged
// in float32; call it before l is shared (the constructors do).
func (l *LoRA) pack() {
	if l.packed {
		return
	}
	n := 0
	for pr := range l.pairs() {
		n += len(pr.A) + len(pr.bst)
	}
	mode := decodeMode.Load()
	if mode == modeBF16 || mode == modeAuto && l.exact(isBF16) {
		l.pack16(n, kernels.NarrowBF16, false)
		return
	}
	if mode == modeAuto && l.exact(isF16) {
		l.pack16(n, kernels.NarrowF16, true)
		return
	}
	if n*4 < packMin {
		return
	}
	l.packed = true
	move := layout(hugeBuf[float32](n, 4), func(dst, src []float32) { copy(dst, src) })
	for pr := range l.pairs() {
		pr.A, pr.bst = move(pr.A), move(pr.bst)
	}
}

// pack16 is pack into one buffer of 16-bit values, narrowed by narrow:
// bfloat16, or IEEE half with f16.
func (l *LoRA) pack16(n int, narrow func(dst []uint16, src []float32), f16 bool) {
	l.packed = true
	put := layout(hugeBuf[uint16](n, 2), narrow)
	for pr := range l.pairs() {
		pr.a16, pr.bst16, pr.f16 = put(pr.A), put(pr.bst), f16
		pr.bst = nil // decode's only: it reads bst16
	}
}

// DecodeFactors names the type an unmerged decode step reads l's factors
// in: "float32", "bfloat16" or "float16" (see SetDecodeDType).
func (l *LoRA) DecodeFactors() string {
	for pr := range l.pairs() { // pack treats every pair alike: the first says
		switch {
		case pr.f16:
			return "float16"
		case pr.a16 != nil:
			return "bfloat16"
		}
		return "float32"
	}
	return "float32"
}

// pairs yields l's adapted modules in layer order, then projection order.
func (l *LoRA) pairs() iter.Seq[*Pair] {
	return func(yield func(*Pair) bool) {
		for _, ps := range l.Layers {
			for _, pr := range ps {
				if pr != nil && !yield(pr) {
					return
				}
			}
		}
	}
}

// layout returns a function that puts its argument, converted by put, next
// in buf and returns where: pack's one pass over the factors.
func layout[T uint16 | float32](buf []T, put func(dst []T, src []float32)) func([]float32) []T {
	i := 0
	return func(v []float32) []T {
		dst := buf[i : i+len(v) : i+len(v)]
		put(dst, v)
		i += len(v)
		return dst
	}
}

// hugeBuf returns n elements of size bytes each, on huge pages over their
// aligned middle when they take at least packMin bytes.
func hugeBuf[T uint16 | float32](n, size int) []T {
	if n*size < packMin {
		return make([]T, n)
	}
	return hugepage.Buf[T](n)
}

// The --lora-dtype values: how an unmerged adapter's decode step reads its
// factors (A and Scale·Bᵀ).
const (
	// DecodeAuto (the default) reads them as bfloat16 where every value
	// is one (an adapter stored in bfloat16 with a power-of-two scale),
	// else as IEEE half where every value is one (stored in float16, as
	// llama.cpp's LoRA converter writes by default): half the bytes, the
	// same values. Others stay float32.
	DecodeAuto = "auto"
	// DecodeFloat32 reads float32 always.
	DecodeFloat32 = "float32"
	// DecodeBFloat16 rounds them to bfloat16 when the adapter is built:
	// half the bytes, lossy for float32 adapters.
	DecodeBFloat16 = "bfloat16"
)

const (
	modeAuto int32 = iota
	modeF32
	modeBF16
)

// decodeMode is the mode SetDecodeDType set (modeAuto until it is called).
var decodeMode atomic.Int32

// DecodeDType is the --lora-dtype in force: DecodeAuto, DecodeFloat32 or
// DecodeBFloat16.
func DecodeDType() string {
	switch decodeMode.Load() {
	case modeF32:
		return DecodeFloat32
	case modeBF16:
		return DecodeBFloat16
	}
	return DecodeAuto
}

// SetDecodeDType sets how adapters built from now on keep the factors an
// unmerged decode step reads (vLLM's --lora-dtype): "auto", "float32" or
// "bfloat16" (also "f32", "bf16"); see DecodeAuto. Prefill, merges and
// exports keep float32 whatever the setting.
func SetDecodeDType(dtype string) error {
	switch dtype {
	case DecodeAuto, "":
		decodeMode.Store(modeAuto)
	case DecodeFloat32, "f32":
		decodeMode.Store(modeF32)
	case DecodeBFloat16, "bf16":
		decodeMode.Store(modeBF16)
	default:
		return fmt.Errorf("adapter decode dtype %q: want auto, float32 or bfloat16", dtype)
	}
	return nil
}

// exact reports whether l has decode factors and is16 holds for every
// one, so that narrowing them loses nothing.
func (l *LoRA) exact(is16 func(float32) bool) bool {
	found := false
	for pr := range l.pairs() {
		found = true
		for _, v := range [][]float32{pr.A, pr.bst} {
			for _, x := range v {
				if !is16(x) {
					return false
				}
			}
		}
	}
	return found
}

// isBF16 reports whether x is a bfloat16 value (its low 16 bits zero).
func isBF16(x float32) bool { return math.Float32bits(x)&0xffff == 0 }

// isF16 reports whether x is an IEEE half-precision value: it survives the
// round trip (an adapter stored in float16, with a power-of-two scale).
func isF16(x float32) bool {
	return math.Float32bits(kernels.FromF16(kernels.ToF16(x))) == math.Float32bits(x)
}
