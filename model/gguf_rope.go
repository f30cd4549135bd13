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
	}
	return fmt.Errorf("%w: writing %s rope scaling of a %s model to GGUF", ErrUnsupported, c.Rope.Type, c.Architecture)
}

// ropeFreqsData is the rope_freqs tensor of c: its divisors as float32.
func ropeFreqsData(c Config) []byte {
	d := c.RopeFreqFactors()
	out := make([]byte, 4*len(d))
	for i, x := range d {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(float32(x)))
	}
	return out
}
