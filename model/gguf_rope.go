package model

import (
	"encoding/binary"
	"fmt"
	"math"

	"roe/model/gguf"
)

// Llama 3.1 and later scale RoPE's low frequencies ("llama3" rope_scaling).
// llama.cpp's converter does not write the four parameters: it stores the
// per-frequency divisors they give as a rope_freqs tensor, and its rope
// divides each frequency by its entry. Reading one, roe recovers parameters
// that give the same divisors, so a GGUF model has the config (and the
// fingerprint, for its experts) of the Hugging Face checkpoint it came
// from; divisors no llama3 parameters give are kept as they are
// (RopeScaling type "rope_freqs").

const ropeFreqsTensor = "rope_freqs.weight"

// RopeFreqFactors returns the divisor of each RoPE frequency that c's
// rope_scaling applies, as llama.cpp's rope_freqs tensor holds them, or
// nil when c has no per-frequency scaling to write that way.
//
//	result: [Rotary()/2]
func (c Config) RopeFreqFactors() []float64 {
	switch c.Rope.Type {
	case "rope_freqs":
		return c.Rope.Factors
	case "llama3":
		return c.ropeDivisors(c.Rope)
	}
	return nil
}

// ropeDivisors returns each global RoPE frequency without scaling over the
// same with rs (for llama3, the converter's rope_factors).
func (c Config) ropeDivisors(rs RopeScaling) []float64 {
	c.Rope = RopeScaling{}
	base, _ := c.RopeFreqs(-1, false)
	c.Rope = rs
	scaled, _ := c.RopeFreqs(-1, false)
	for i := range base {
		base[i] /= scaled[i]
	}
	return base
}

func (c Config) unscaledFreqs() []float64 {
	c.Rope = RopeScaling{}
	f, _ := c.RopeFreqs(-1, false)
	return f
}

// ggufRopeFreqs reads a rope_freqs tensor into c.Rope (c's RoPE fields set).
func ggufRopeFreqs(f *gguf.File, c *Config) error {
	t, ok := f.Tensor(ropeFreqsTensor)
	if !ok {
		return nil
	}
	if c.Rope.Type != "" {
		return fmt.Errorf("%w: GGUF has both %s rope scaling and a %s tensor", ErrConfig, c.Rope.Type, ropeFreqsTensor)
	}
	if len(t.Shape) != 1 || t.Shape[0] != c.Rotary()/2 {
		return fmt.Errorf("%w: GGUF %s has shape %v, want [%d] (half the rotary dimensions)", ErrConfig, ropeFreqsTensor, t.Shape, c.Rotary()/2)
	}
	v, err := f.Float32(ropeFreqsTensor)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrWeights, ropeFreqsTensor, err)
	}
	div := make([]float64, len(v))
	ones := true
	for i, x := range v {
		if !(x > 0) || math.IsInf(float64(x), 0) {
			return fmt.Errorf("%w: GGUF %s[%d] = %g is not a positive divisor", ErrConfig, ropeFreqsTensor, i, x)
		}
		div[i] = float64(x)
		ones = ones && x == 1
	}
	if ones {
		return nil
	}
	if rs, ok := c.recoverLlama3(div); ok {
		c.Rope = rs
		return nil
	}
	c.Rope = RopeScaling{Type: "rope_freqs", Factors: div}
	return nil
}

// recoverLlama3 finds llama3 parameters whose divisors match div to float32
// precision. Only the ratios OriginalMaxPos : LowFreqFactor : HighFreqFactor
// shape the divisors; LowFreqFactor = 1 (every Llama 3 release) fixes them.
// The interpolated band gives s = (1/div − 1/F)/(1 − 1/F) = a/wavelen + b
// with a = orig/(high−low) and b = −low/(high−low), fitted by least squares.
// With fewer than two frequencies in that band the ratios are not
// determined; Llama 3's own (8192, 1, 4) are tried.
func (c Config) recoverLlama3(div []float64) (RopeScaling, bool) {
	base := c.unscaledFreqs()
	F := 0.0
	for _, d := range div {
		F = max(F, d)
	}
	if F <= 1 {
		return RopeScaling{}, false
	}
	var n, sx, sy, sxx, sxy float64
	for i, d := range div {
		if d > 1*(1+1e-6) && d < F*(1-1e-6) {
			x := base[i] / (2 * math.Pi) // 1/wavelen
			y := (1/d - 1/F) / (1 - 1/F)
			n, sx, sy, sxx, sxy = n+1, sx+x, sy+y, sxx+x*x, sxy+x*y
		}
	}
	cands := []RopeScaling{{Type: "llama3", Factor: F, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPos: 8192}}
	if den := n*sxx - sx*sx; n >= 2 && den != 0 {
		a := (n*sxy - sx*sy) / den
		b := (sy - a*sx) / n
		if b < 0 && a > 0 {
			D := -1 / b
			orig := math.Round(a * D)
			high := math.Round((1+D)*1e4) / 1e4
			cands = append([]RopeScaling{{Type: "llama3", Factor: roundSig(F), LowFreqFactor: 1, HighFreqFactor: high, OriginalMaxPos: int(orig)}}, cands...)
		}
	}
	for _, rs := range cands {
		if rs.OriginalMaxPos <= 0 || !(rs.HighFreqFactor > rs.LowFreqFactor) {
			continue
		}
		got := c.ropeDivisors(rs)
		match := true
		for i := range got {
			if math.Abs(got[i]-div[i]) > 1e-5*div[i] { // the converter computes in float32
				match = false
				break
			}
		}
		if match {
			return rs, true
		}
	}
	return RopeScaling{}, false
}

// roundSig rounds a float32-stored factor to the float64 it most likely
// was: the nearest value with 6 significant digits when that is within
// float32 rounding of it.
func roundSig(x float64) float64 {
	p := math.Pow(10, 5-math.Floor(math.Log10(x)))
	r := math.Round(x*p) / p
	if float32(r) == float32(x) {
		return r
	}
	return x
}

// ggufRopeWritable refuses rope scaling a GGUF file of c cannot hold:
// llama.cpp reads linear scaling from keys, and per-frequency divisors
// (llama3, rope_freqs) from a rope_freqs tensor of llama models only.
func ggufRopeWritable(c Config) error {
	switch c.Rope.Type {
	case "", "linear":
		return nil
	case "llama3", "rope_freqs":
		if c.GGUFArchitecture() == "llama" {
			return nil
		}
	case "longrope":
		if c.GGUFArchitecture() == "phi3" {
			return nil
		}
	}
	return fmt.Errorf("%w: writing %s rope scaling of a %s model to GGUF", ErrUnsupported, c.Rope.Type, c.Architecture)
}

// ropeFreqsData is the rope_freqs tensor of c: its divisors as float32.
func ropeFreqsData(c Config) []byte { return ropeFactorsData(c.RopeFreqFactors()) }

// Phi-3's longrope is stored as two tensors of per-frequency divisors (short
// and long, float32) and an attention factor key beside the original
// context length.
const (
	ropeLongTensor  = "rope_factors_long.weight"
	ropeShortTensor = "rope_factors_short.weight"
)

// ggufLongRope reads longrope into c.Rope from the two tensors, computing
// the attention factor as transformers does from the context lengths (so the
// config is the checkpoint's) unless the file's attn_factor says otherwise.
func ggufLongRope(f *gguf.File, p string, c *Config) error {
	_, hasLong := f.Tensor(ropeLongTensor)
	_, hasShort := f.Tensor(ropeShortTensor)
	if !hasLong && !hasShort {
		return nil
	}
	if c.ModelType != "phi3" || !hasLong || !hasShort || c.Rope.Type != "" {
		return fmt.Errorf("%w: GGUF %s needs both %s and %s, a phi3 model and no other rope scaling", ErrConfig, p[:len(p)-1], ropeLongTensor, ropeShortTensor)
	}
	rs := RopeScaling{Type: "longrope"}
	for _, t := range []struct {
		name string
		dst  *[]float64
	}{{ropeShortTensor, &rs.ShortFactor}, {ropeLongTensor, &rs.LongFactor}} {
		ti, _ := f.Tensor(t.name)
		if len(ti.Shape) != 1 || ti.Shape[0] != c.Rotary()/2 {
			return fmt.Errorf("%w: GGUF %s has shape %v, want [%d] (half the rotary dimensions)", ErrConfig, t.name, ti.Shape, c.Rotary()/2)
		}
		v, err := f.Float32(t.name)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrWeights, t.name, err)
		}
		*t.dst = make([]float64, len(v))
		for i, x := range v {
			if !(x > 0) || math.IsInf(float64(x), 0) {
				return fmt.Errorf("%w: GGUF %s[%d] = %g is not a positive divisor", ErrConfig, t.name, i, x)
			}
			(*t.dst)[i] = float64(x)
		}
	}
	orig, err := f.Uint(p + "rope.scaling.original_context_length")
	if err != nil || orig == 0 || orig > 1<<24 {
		return fmt.Errorf("%w: longrope needs %srope.scaling.original_context_length", ErrConfig, p)
	}
	rs.OriginalMaxPos = int(orig)
	rs.AttnFactor = longRopeAttnFactor(c.MaxPositions, rs.OriginalMaxPos)
	if v, ok := f.Get(p + "rope.scaling.attn_factor"); ok {
		a, ok := v.Float()
		if !ok || !(a > 0) || math.IsInf(a, 0) {
			return fmt.Errorf("%w: %srope.scaling.attn_factor must be positive", ErrConfig, p)
		}
		if float32(a) != float32(rs.AttnFactor) {
			rs.AttnFactor = a
		}
	}
	c.Rope = rs
	return nil
}

// longRopeAttnFactor is transformers' longrope attention factor for a model
// of max positions trained at orig: √(1 + ln(max/orig)/ln(orig)), or 1.
func longRopeAttnFactor(max, orig int) float64 {
	factor := float64(max) / float64(orig)
	if factor <= 1 || orig <= 1 {
		return 1
	}
	return math.Sqrt(1 + math.Log(factor)/math.Log(float64(orig)))
}

// ropeFactorsData is a float32 tensor of v.
func ropeFactorsData(v []float64) []byte {
	out := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(float32(x)))
	}
	return out
}
