package safetensors

import (
	"math"
	"math/rand"
	"testing"
)

func TestF16KnownBits(t *testing.T) {
	cases := []struct {
		f float32
		h uint16
	}{
		{0, 0x0000},
		{float32(math.Copysign(0, -1)), 0x8000},
		{1, 0x3c00},
		{-2, 0xc000},
		{0.5, 0x3800},
		{65504, 0x7bff},                 // largest finite
		{65519.996, 0x7bff},             // just below the rounding midpoint
		{65520, 0x7c00},                 // midpoint to inf: ties to even = inf
		{1e6, 0x7c00},                   // overflow
		{float32(math.Inf(1)), 0x7c00},  // +inf
		{float32(math.Inf(-1)), 0xfc00}, // -inf
		{0x1p-14, 0x0400},               // smallest normal
		{0x1p-24, 0x0001},               // smallest subnormal
		{0x1.8p-24, 0x0002},             // 1.5 ulp: tie, rounds to even (2)
		{0x1.4p-23, 0x0002},             // 2.5 ulp: tie, rounds to even (2)
		{0x1.cp-23, 0x0004},             // 3.5 ulp: tie, rounds to even (4)
		{0x1p-25, 0x0000},               // half the smallest subnormal: tie to 0
		{0x1.000002p-25, 0x0001},        // just above half: rounds up
		{0x1p-26, 0x0000},               // underflow
		{-0x1p-24, 0x8001},              // negative subnormal
		{0x1.ffcp-15, 0x0400},           // subnormal rounding up into the smallest normal
		{0x3ffp-24, 0x03ff},             // largest subnormal
		{0.1, 0x2e66},
		{float32(1.0 / 3), 0x3555},
		{1 + 0x1p-11, 0x3c00},            // tie between 1 and 1+2^-10: even (1)
		{1 + 3*0x1p-11, 0x3c02},          // tie: even (1+2^-9)
		{1 + 0x1p-11 + 0x1p-20, 0x3c01},  // above the tie
		{math.SmallestNonzeroFloat32, 0}, // f32 subnormal
	}
	for _, c := range cases {
		if got := F32ToF16(c.f); got != c.h {
			t.Errorf("F32ToF16(%g) = %#04x, want %#04x", c.f, got, c.h)
		}
	}
	// NaN stays NaN, including a NaN whose payload is only in the low bits.
	for _, bits := range []uint32{0x7fc00000, 0xffc00000, 0x7f800001, 0x7fa00000} {
		h := F32ToF16(math.Float32frombits(bits))
		if h&0x7c00 != 0x7c00 || h&0x3ff == 0 {
			t.Errorf("F32ToF16(NaN %#x) = %#04x, not a NaN", bits, h)
		}
		if h>>15 != uint16(bits>>31) {
			t.Errorf("F32ToF16(NaN %#x) = %#04x lost the sign", bits, h)
		}
	}
	// Decoding.
	dec := []struct {
		h uint16
		f float32
	}{
		{0x3c00, 1}, {0x0001, 0x1p-24}, {0x03ff, 0x3ffp-24}, {0x0400, 0x1p-14},
		{0x7bff, 65504}, {0x8001, -0x1p-24}, {0xc000, -2}, {0x3555, 0x1.554p-2},
	}
	for _, c := range dec {
		if got := F16ToF32(c.h); got != c.f {
			t.Errorf("F16ToF32(%#04x) = %g, want %g", c.h, got, c.f)
		}
	}
	if f := F16ToF32(0x7c00); !math.IsInf(float64(f), 1) {
		t.Errorf("F16ToF32(0x7c00) = %g, want +Inf", f)
	}
	if f := F16ToF32(0xfc00); !math.IsInf(float64(f), -1) {
		t.Errorf("F16ToF32(0xfc00) = %g, want -Inf", f)
	}
	if f := F16ToF32(0x7e00); !math.IsNaN(float64(f)) {
		t.Errorf("F16ToF32(0x7e00) = %g, want NaN", f)
	}
	if f := F16ToF32(0x8000); f != 0 || !math.Signbit(float64(f)) {
		t.Errorf("F16ToF32(0x8000) = %g, want -0", f)
	}
}

// Every half value decodes exactly and encodes back to itself.
func TestF16Exhaustive(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		f := F16ToF32(h)
		back := F32ToF16(f)
		if h&0x7c00 == 0x7c00 && h&0x3ff != 0 { // NaN: payload kept, made quiet
			if back != h|0x200 {
				t.Fatalf("NaN %#04x -> %g -> %#04x", h, f, back)
			}
			continue
		}
		if back != h {
			t.Fatalf("%#04x -> %g -> %#04x", h, f, back)
		}
		// Cross-check the decoded value with float64 arithmetic.
		exp := int(h>>10) & 0x1f
		mant := float64(h & 0x3ff)
		var want float64
		switch exp {
		case 0:
			want = math.Ldexp(mant, -24)
		case 0x1f:
			want = math.Inf(1)
		default:
			want = math.Ldexp(1+mant/1024, exp-15)
		}
		if h&0x8000 != 0 {
			want = -want
		}
		if float64(f) != want {
			t.Fatalf("F16ToF32(%#04x) = %g, want %g", h, f, want)
		}
	}
}

// F32ToF16 picks the nearest half (ties to even) for random float32 values,
// checked against its neighbours in float64 arithmetic.
func TestF16RoundingProperty(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 200000; i++ {
		var f float32
		if i%2 == 0 {
			f = math.Float32frombits(r.Uint32())
		} else { // concentrate on the f16 range, subnormals included
			f = float32(math.Ldexp(r.Float64()*2-1, r.Intn(44)-28))
		}
		if f != f {
			continue
		}
		h := F32ToF16(f)
		x := float64(f)
		got := float64(F16ToF32(h))
		if math.IsInf(got, 0) {
			if math.Abs(x) < 65520 {
				t.Fatalf("%g -> inf", f)
			}
			continue
		}
		d := math.Abs(got - x)
		for _, nb := range []uint16{h + 1, h - 1} {
			if nb&0x7c00 == 0x7c00 || (h&0x7fff == 0 && nb == h-1) {
				continue
			}
			nd := math.Abs(float64(F16ToF32(nb)) - x)
			if nd < d || (nd == d && h&1 == 1) {
				t.Fatalf("F32ToF16(%g) = %#04x (%g), neighbour %#04x (%g) is nearer or even", f, h, got, nb, F16ToF32(nb))
			}
		}
	}
}

func TestBF16KnownBits(t *testing.T) {
	cases := []struct {
		f float32
		h uint16
	}{
		{0, 0x0000},
		{float32(math.Copysign(0, -1)), 0x8000},
		{1, 0x3f80},
		{-1, 0xbf80},
		{1 + 0x1p-8, 0x3f80},           // tie: even
		{1 + 3*0x1p-8, 0x3f82},         // tie: even (up)
		{1 + 0x1p-8 + 0x1p-20, 0x3f81}, // above the tie
		{float32(math.Pi), 0x4049},
		{math.MaxFloat32, 0x7f80}, // rounds up to inf
		{float32(math.Inf(-1)), 0xff80},
		{0x1p-133, 0x0001}, // f32 subnormal survives
	}
	for _, c := range cases {
		if got := F32ToBF16(c.f); got != c.h {
			t.Errorf("F32ToBF16(%g) = %#04x, want %#04x", c.f, got, c.h)
		}
		if c.f == c.f && !math.IsInf(float64(c.f), 0) && c.f != math.MaxFloat32 {
			if back := F32ToBF16(BF16ToF32(c.h)); back != c.h {
				t.Errorf("BF16 %#04x does not round trip", c.h)
			}
		}
	}
	for _, bits := range []uint32{0x7fc00000, 0x7f800001, 0xff800001, 0x7fffffff} {
		h := F32ToBF16(math.Float32frombits(bits))
		if f := BF16ToF32(h); !math.IsNaN(float64(f)) {
			t.Errorf("F32ToBF16(NaN %#x) = %#04x, not NaN", bits, h)
		}
	}
	if BF16ToF32(0x3f80) != 1 || BF16ToF32(0xc049) != -3.140625 {
		t.Error("BF16ToF32 wrong")
	}
}
