package kernels

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"testing"
)

// iq4Golden is testdata/iq4-llamacpp.json: rows of IQ4_NL and IQ4_XS
// tensors from files llama-quantize wrote, each with what llama.cpp's own
// dequantizer made of it (see testdata/README.md).
type iq4Golden struct {
	Type    string `json:"type"`
	Tensor  string `json:"tensor"`
	Row     int    `json:"row"`
	Blocks  string `json:"blocks"`
	Dequant string `json:"dequant"`
}

func readIQ4Golden(t *testing.T) []iq4Golden {
	t.Helper()
	b, err := os.ReadFile("testdata/iq4-llamacpp.json")
	if err != nil {
		t.Fatal(err)
	}
	var rows []iq4Golden
	if err := json.Unmarshal(b, &rows); err != nil {
		t.Fatal(err)
	}
	return rows
}

func decodeGoldenRow(t *testing.T, g iq4Golden) (QType, []byte, []float32) {
	t.Helper()
	ty, ok := ParseQType(g.Type)
	if !ok {
		t.Fatalf("unknown type %q", g.Type)
	}
	raw, err := base64.StdEncoding.DecodeString(g.Blocks)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := base64.StdEncoding.DecodeString(g.Dequant)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]float32, len(fb)/4)
	for i := range want {
		want[i] = math.Float32frombits(binary.LittleEndian.Uint32(fb[4*i:]))
	}
	return ty, raw, want
}

// Every kernel set dequantizes llama.cpp's IQ4_NL and IQ4_XS rows to the
// bits llama.cpp's dequantizer gives.
func TestDequantizeIQ4Golden(t *testing.T) {
	rows := readIQ4Golden(t)
	seen := map[QType]int{}
	eachImpl(t, func(t *testing.T) {
		for _, g := range rows {
			ty, raw, want := decodeGoldenRow(t, g)
			seen[ty]++
			got := make([]float32, len(want))
			if err := DequantizeRow(ty, got, raw); err != nil {
				t.Fatalf("%s row %d: %v", g.Tensor, g.Row, err)
			}
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%s %s row %d: element %d got %v want %v", ty, g.Tensor, g.Row, i, got[i], want[i])
				}
			}
		}
	})
	if seen[IQ4_NL] == 0 || seen[IQ4_XS] == 0 {
		t.Fatalf("golden rows by type: %v", seen)
	}
}

// The fused GEMVs of every kernel set over the golden rows equal a float64
// dot product with llama.cpp's dequantized values, to float32 rounding.
func TestGEMVIQ4Golden(t *testing.T) {
	rows := readIQ4Golden(t)
	r := rand.New(rand.NewPCG(5, 6))
	eachImpl(t, func(t *testing.T) {
		for _, g := range rows {
			ty, raw, want := decodeGoldenRow(t, g)
			k := len(want)
			x := randVec(r, k, 1)
			var ref, mag float64
			for i, w := range want {
				ref += float64(w) * float64(x[i])
				mag += math.Abs(float64(w) * float64(x[i]))
			}
			dst := make([]float32, 1)
			MatMulTQ(dst, x, QMatrix{Type: ty, Rows: 1, Cols: k, Data: raw}, 1)
			if e := math.Abs(float64(dst[0]) - ref); e > 1e-5*mag {
				t.Errorf("%s %s row %d: got %v, float64 %v (|err| %.3g, Σ|w·x| %.3g)", ty, g.Tensor, g.Row, dst[0], ref, e, mag)
			}
		}
	})
}

// iq4Index is the nearest table value's index, ties to the lower one.
func TestIQ4Index(t *testing.T) {
	vals := []float32{-1000, -127, -115.5, -115.49, 0, 1, 7, 113, 1e9, float32(math.Inf(-1))}
	for i := range 15 {
		m := (float32(iq4Values[i]) + float32(iq4Values[i+1])) / 2
		vals = append(vals, m, math.Nextafter32(m, 1000), math.Nextafter32(m, -1000))
	}
	for _, v := range vals {
		want, bd := 0, math.Inf(1)
		for i, q := range iq4Values {
			if d := math.Abs(float64(v) - float64(q)); d < bd {
				want, bd = i, d
			}
		}
		if got := iq4Index(v); got != want {
			t.Errorf("iq4Index(%v) = %d, want %d", v, got, want)
		}
	}
}
