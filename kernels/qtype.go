package kernels

import (
	"fmt"
	"math"
	"strings"
)

// QType is a weight storage type, numbered as GGUF (ggml) numbers them so a
// GGUF tensor's type field converts directly.
type QType uint32

// The types roe reads. Quantized types pack a block of BlockSize weights
// with their scales into BlockBytes bytes; a row is a whole number of blocks.
const (
	F32  QType = 0
	F16  QType = 1
	Q4_0 QType = 2
	Q4_1 QType = 3
	Q5_0 QType = 6
	Q5_1 QType = 7
	Q8_0 QType = 8
	Q8_1 QType = 9
	Q2_K QType = 10
	Q3_K QType = 11
	Q4_K QType = 12
	Q5_K QType = 13
	Q6_K QType = 14
	Q8_K QType = 15
	// IQ4_NL and IQ4_XS look 4-bit indices up in a fixed non-uniform table
	// (iq4Values); llama.cpp writes IQ4_NL where a K-quant does not fit a
	// row (Q2_K, Q3_K and IQ4_XS files of models 576 or 896 wide).
	IQ4_NL QType = 20
	IQ4_XS QType = 23
	BF16   QType = 30
)

// qtypeInfo: elements per block and bytes per block.
type qtypeInfo struct {
	name         string
	block, bytes int
}

// Block layouts (bytes): Q4_0 = f16 d + 16 nibble bytes; Q4_1 = d, m + 16;
// Q5_0 = d + 4 high-bit bytes + 16; Q5_1 = d, m + 4 + 16; Q8_0 = d + 32 int8;
// Q8_1 = d, s + 32; K-quants cover 256 weights: Q2_K = 16 scale bytes + 64
// + d, dmin; Q3_K = 32 hmask + 64 + 12 scales + d; Q4_K = d, dmin + 12
// scales + 128; Q5_K = d, dmin + 12 + 32 qh + 128; Q6_K = 128 ql + 64 qh +
// 16 int8 scales + d; Q8_K = f32 d + 256 int8 + 16 int16 sums; IQ4_NL = d +
// 16 nibble bytes (as Q4_0); IQ4_XS covers 256 weights: d, 16 high scale
// bits, 4 bytes of low scale nibbles + 128 nibble bytes.
var qtypes = map[QType]qtypeInfo{
	F32:    {"F32", 1, 4},
	F16:    {"F16", 1, 2},
	BF16:   {"BF16", 1, 2},
	Q4_0:   {"Q4_0", 32, 18},
	Q4_1:   {"Q4_1", 32, 20},
	Q5_0:   {"Q5_0", 32, 22},
	Q5_1:   {"Q5_1", 32, 24},
	Q8_0:   {"Q8_0", 32, 34},
	Q8_1:   {"Q8_1", 32, 36},
	Q2_K:   {"Q2_K", 256, 84},
	Q3_K:   {"Q3_K", 256, 110},
	Q4_K:   {"Q4_K", 256, 144},
	Q5_K:   {"Q5_K", 256, 176},
	Q6_K:   {"Q6_K", 256, 210},
	Q8_K:   {"Q8_K", 256, 292},
	IQ4_NL: {"IQ4_NL", 32, 18},
	IQ4_XS: {"IQ4_XS", 256, 136},
}

// iq4Values is the table IQ4_NL and IQ4_XS quants index: a 4-bit index i
// stands for iq4Values[i] times the block's scale.
var iq4Values = [16]int8{-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113}

// ggmlNames names the ggml types roe does not read, so a refusal can say
// which one a file holds.
var ggmlNames = map[QType]string{
	4: "Q4_2", 5: "Q4_3", 16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S",
	21: "IQ3_S", 22: "IQ2_S", 24: "I8", 25: "I16", 26: "I32",
	27: "I64", 28: "F64", 29: "IQ1_M", 31: "Q4_0_4_4", 32: "Q4_0_4_8", 33: "Q4_0_8_8",
	34: "TQ1_0", 35: "TQ2_0", 36: "IQ4_NL_4_4", 37: "IQ4_NL_4_8", 38: "IQ4_NL_8_8",
}

// String is the type's ggml name, e.g. "Q4_K".
func (t QType) String() string {
	if i, ok := qtypes[t]; ok {
		return i.name
	}
	if n, ok := ggmlNames[t]; ok {
		return n
	}
	return fmt.Sprintf("type%d", uint32(t))
}

// Known reports whether roe can store and compute with weights of type t.
// Q8_1 and Q8_K are ggml's activation formats; roe knows their layout but
// does not read weights in them.
func (t QType) Known() bool {
	_, ok := qtypes[t]
	return ok && t != Q8_1 && t != Q8_K
}

// BlockSize is the number of weights in one block (1 for float types).
func (t QType) BlockSize() int { return qtypes[t].block }

// BlockBytes is the size of one block in bytes.
func (t QType) BlockBytes() int { return qtypes[t].bytes }

// Quantized reports whether t packs blocks with scales (not a float type).
func (t QType) Quantized() bool { return t.BlockSize() > 1 }

// RowBytes is the size of a row of n weights, or an error when n is not a
// whole number of blocks or t is unknown.
func RowBytes(t QType, n int) (int, error) {
	i, ok := qtypes[t]
	if !ok {
		return 0, fmt.Errorf("tensor type %s: %w", t, ErrType)
	}
	if n < 0 || n%i.block != 0 {
		return 0, fmt.Errorf("%s rows hold whole blocks of %d weights, not %d: %w", t, i.block, n, ErrSize)
	}
	if n/i.block > math.MaxInt/i.bytes {
		return 0, fmt.Errorf("a %s row of %d weights overflows: %w", t, n, ErrSize)
	}
	return n / i.block * i.bytes, nil
}

// ParseQType finds a type by its ggml name, case-insensitively ("q4_k").
func ParseQType(s string) (QType, bool) {
	for t, i := range qtypes {
		if strings.EqualFold(i.name, s) {
			return t, true
		}
	}
	return 0, false
}
