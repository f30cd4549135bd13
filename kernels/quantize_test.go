package kernels

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// quantizableTypes are the types QuantizeRow writes.
var quantizableTypes = []QType{F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS}

// roundTrip quantizes x to t and dequantizes it.
func roundTrip(t testing.TB, typ QType, x []float32) []float32 {
	t.Helper()
	rb, err := RowBytes(typ, len(x))
	if err != nil {
		t.Fatal(err)
	}
	q := make([]byte, rb)
	if err := QuantizeRow(typ, q, x); err != nil {
		t.Fatalf("%s: %v", typ, err)
	}
	y := make([]float32, len(x))
	if err := DequantizeRow(typ, y, q); err != nil {
		t.Fatalf("%s: %v", typ, err)
	}
	return y
}

func gaussian(r *rand.Rand, n int, sigma float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64() * sigma)
	}
	return x
}

// relRMSE is the RMS of y − x over the RMS of x.
func relRMSE(x, y []float32) float64 {
	var e, s float64
	for i := range x {
		d := float64(y[i]) - float64(x[i])
		e += d * d
		s += float64(x[i]) * float64(x[i])
	}
	if s == 0 {
		return math.Sqrt(e)
	}
	return math.Sqrt(e / s)
}

// quantBounds caps the relative RMSE on N(0, 1) rows, about 10% above what
// was measured (TestQuantizeGaussianRMSE logs it): F16 2.1e-4, BF16 1.65e-3,
// Q8_0 0.0054, Q5_1 0.038, Q5_0 0.043, Q4_1 0.078, Q4_0 0.086 (these five
// are ggml's own algorithms), Q6_K 0.0173, Q5_K 0.0349, Q4_K 0.0701, Q3_K
// 0.144, Q2_K 0.260, IQ4_NL 0.0736, IQ4_XS 0.0744.
var quantBounds = map[QType]float64{
	F32: 0, F16: 2.4e-4, BF16: 1.9e-3, Q8_0: 0.006, Q5_1: 0.042, Q5_0: 0.047, Q4_1: 0.086, Q4_0: 0.095,
	Q6_K: 0.019, Q5_K: 0.039, Q4_K: 0.077, Q3_K: 0.16, Q2_K: 0.29, IQ4_NL: 0.081, IQ4_XS: 0.082,
}

// TestQuantizeGaussianRMSE measures each type's error on Gaussian rows and
// checks the K-quants are ordered by bits.
func TestQuantizeGaussianRMSE(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	x := gaussian(r, 256*512, 1)
	got := map[QType]float64{}
	for _, typ := range quantizableTypes {
		e := relRMSE(x, roundTrip(t, typ, x))
		got[typ] = e
		t.Logf("%-5s relative RMSE %.5f", typ, e)
		if e > quantBounds[typ] {
			t.Errorf("%s: relative RMSE %.5f over %.5f", typ, e, quantBounds[typ])
		}
	}
	// More bits, less error; and a K-quant beats the legacy type of about
	// its size (Q4_K and Q4_0 both take 4.5 bits a weight, Q5_K and Q5_0 5.5),
	// as does IQ4_NL (4.5) its table.
	better := [][2]QType{{Q6_K, Q5_K}, {Q5_K, Q4_K}, {Q4_K, Q3_K}, {Q3_K, Q2_K}, {Q4_K, Q4_0}, {Q5_K, Q5_0},
		{IQ4_NL, Q4_0}, {IQ4_XS, Q3_K}}
	for _, p := range better {
		if got[p[0]] >= got[p[1]] {
			t.Errorf("%s (%.4f) is not better than %s (%.4f)", p[0], got[p[0]], p[1], got[p[1]])
		}
	}
}

// TestQuantizeEdges: zero, constant, tiny, huge and heavy-tailed rows.
func TestQuantizeEdges(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, typ := range quantizableTypes {
		n := 2 * max(typ.BlockSize(), 256)
		t.Run(typ.String(), func(t *testing.T) {
			zero := make([]float32, n)
			for i, v := range roundTrip(t, typ, zero) {
				if v != 0 {
					t.Fatalf("zero row: weight %d dequantizes to %g", i, v)
				}
			}
			for _, c := range []float32{1, -1, 0.3, -2.5e-3, 1000} {
				x := make([]float32, n)
				for i := range x {
					x[i] = c
				}
				for i, v := range roundTrip(t, typ, x) {
					if math.Abs(float64(v-c)) > 4e-3*math.Abs(float64(c)) {
						t.Fatalf("constant row %g: weight %d dequantizes to %g", c, i, v)
					}
				}
			}
			// Scales below f16's range flush to zero or to coarse
			// subnormals: the error stays within the weights' own size
			// plus f16's subnormal step (2⁻²⁴, twice: the "_1" types round
			// their min too), and nothing is NaN.
			for _, sigma := range []float64{1e-4, 1e-7, 1e-20, 1e-44} {
				x := gaussian(r, n, sigma)
				amax := float64(maxAbs(x))
				for i, v := range roundTrip(t, typ, x) {
					if d := math.Abs(float64(v - x[i])); !(d <= 2*amax+0x1p-23) {
						t.Fatalf("σ=%g: weight %d = %g dequantizes to %g", sigma, i, x[i], v)
					}
				}
				if sigma == 1e-4 {
					if e := relRMSE(x, roundTrip(t, typ, x)); e > 2*quantBounds[typ]+1e-3 {
						t.Errorf("σ=%g: relative RMSE %.4f", sigma, e)
					}
				}
			}
			// Large weights: fine while the f16 scales hold them, ErrRange after.
			for _, sigma := range []float64{1e3, 1e5, 1e30} {
				x := gaussian(r, n, sigma)
				rb, _ := RowBytes(typ, n)
				q := make([]byte, rb)
				err := QuantizeRow(typ, q, x)
				if err != nil {
					if !errors.Is(err, ErrRange) || typ == F32 || sigma < 1e4 {
						t.Fatalf("σ=%g: %v", sigma, err)
					}
					continue
				}
				y := make([]float32, n)
				if err := DequantizeRow(typ, y, q); err != nil {
					t.Fatal(err)
				}
				if e := relRMSE(x, y); e > quantBounds[typ]*1.5+1e-6 {
					t.Errorf("σ=%g: relative RMSE %.4f", sigma, e)
				}
			}
			// Heavy tails: a few weights 30σ out.
			x := gaussian(r, 256*16, 1)
			for i := 0; i < len(x); i += 97 {
				x[i] *= 30
			}
			e := relRMSE(x, roundTrip(t, typ, x))
			t.Logf("outlier rows: relative RMSE %.4f", e)
			if e > 3*quantBounds[typ] {
				t.Errorf("outlier rows: relative RMSE %.4f", e)
			}
		})
	}
}

func TestQuantizeRowErrors(t *testing.T) {
	x := make([]float32, 256)
	for _, typ := range []QType{Q8_1, Q8_K, 4, 16, 21, 99} {
		if err := QuantizeRow(typ, make([]byte, 1024), x); !errors.Is(err, ErrType) {
			t.Errorf("%s: %v, want ErrType", typ, err)
		}
	}
	for _, typ := range quantizableTypes {
		rb, _ := RowBytes(typ, 256)
		if err := QuantizeRow(typ, make([]byte, rb+1), x); !errors.Is(err, ErrSize) {
			t.Errorf("%s: long dst: %v", typ, err)
		}
		if typ.Quantized() {
			if err := QuantizeRow(typ, make([]byte, rb), x[:255]); !errors.Is(err, ErrSize) {
				t.Errorf("%s: 255 weights: %v", typ, err)
			}
		}
		for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
			y := make([]float32, 256)
			y[17] = bad
			if err := QuantizeRow(typ, make([]byte, rb), y); !errors.Is(err, ErrRange) {
				t.Errorf("%s: weight %v: %v", typ, bad, err)
			}
		}
	}
	if err := QuantizeRow(F16, make([]byte, 2), []float32{70000}); !errors.Is(err, ErrRange) {
		t.Errorf("F16 70000: %v", err)
	}
	if err := QuantizeRow(BF16, make([]byte, 2), []float32{math.MaxFloat32}); !errors.Is(err, ErrRange) {
		t.Errorf("BF16 MaxFloat32: %v", err)
	}
}

// TestF32ToF16 checks rounding against every half: each converts back to
// itself, and the points halfway between neighbours go to the even one.
func TestF32ToF16(t *testing.T) {
	for h := 0; h < 0x10000; h++ {
		u := uint16(h)
		f := f16ToF32(u)
		if u&0x7c00 == 0x7c00 && u&0x3ff != 0 {
			if g := f32ToF16(f); g&0x7c00 != 0x7c00 || g&0x3ff == 0 {
				t.Fatalf("NaN %#04x → %#04x", u, g)
			}
			continue
		}
		if g := f32ToF16(f); g != u {
			t.Fatalf("%#04x (%g) → %#04x", u, f, g)
		}
		if u&0x7fff >= 0x7bff { // the largest finite and infinities: no next half
			continue
		}
		next := f16ToF32(u + 1)
		if u&0x8000 != 0 && u != 0x8000 {
			next = f16ToF32(u - 1) // towards zero for negatives
		}
		if u == 0x8000 {
			continue
		}
		mid := float32((float64(f) + float64(next)) / 2)
		if float64(mid) != (float64(f)+float64(next))/2 {
			continue // not representable in float32 (never for halves)
		}
		lo, hi := u, u+1
		if u&0x8000 != 0 {
			hi = u - 1
		}
		want := lo
		if lo&1 == 1 {
			want = hi
		}
		if g := f32ToF16(mid); g != want {
			t.Fatalf("midpoint of %#04x and %#04x (%g) → %#04x, want %#04x", lo, hi, mid, g, want)
		}
		// Just off the midpoint rounds to the nearer one.
		above := math.Nextafter32(mid, float32(math.Inf(1)))
		below := math.Nextafter32(mid, float32(math.Inf(-1)))
		a, b := f32ToF16(above), f32ToF16(below)
		if a != hi || b != lo { // above is towards +∞: the larger of the two
			t.Fatalf("around %g: %#04x %#04x", mid, a, b)
		}
	}
	for _, c := range []struct {
		f float32
		h uint16
	}{{65520, 0x7c00}, {65519.996, 0x7bff}, {1e-8, 0}, {-1e-8, 0x8000}, {2.9802322e-08, 0}, {2.9802326e-08, 1}} {
		if g := f32ToF16(c.f); g != c.h {
			t.Errorf("%g → %#04x, want %#04x", c.f, g, c.h)
		}
	}
}

// FuzzQuantizeRow: any finite row either quantizes to blocks that
// dequantize to finite weights no larger than about twice the row's
// largest, or is refused with ErrRange.
func FuzzQuantizeRow(f *testing.F) {
	f.Add(uint8(0), []byte{0, 0, 128, 63})
	f.Add(uint8(12), make([]byte, 1024))
	f.Add(uint8(3), []byte{1, 2, 3, 4, 5, 6, 7, 8, 0xff, 0xff, 0x7f, 0x7f})
	f.Fuzz(func(t *testing.T, sel uint8, b []byte) {
		typ := quantizableTypes[int(sel)%len(quantizableTypes)]
		bs := typ.BlockSize()
		n := (len(b)/4 + bs - 1) / bs * bs
		if n == 0 || n > 1<<14 {
			return
		}
		x := make([]float32, n)
		for i := 0; i+4 <= len(b); i += 4 {
			x[i/4] = math.Float32frombits(le32(b[i:]))
		}
		rb, _ := RowBytes(typ, n)
		q := make([]byte, rb)
		err := QuantizeRow(typ, q, x)
		if err != nil {
			if !errors.Is(err, ErrRange) {
				t.Fatal(err)
			}
			return
		}
		y := make([]float32, n)
		if err := DequantizeRow(typ, y, q); err != nil {
			t.Fatal(err)
		}
		amax := float64(maxAbs(x))
		for i, v := range y {
			if math.IsNaN(float64(v)) || math.Abs(float64(v)) > 2*amax+0x1p-23 {
				t.Fatalf("%s: weight %d = %g dequantizes to %g (max |x| %g)", typ, i, x[i], v, amax)
			}
		}
	})
}
