package kernels_test

import (
	"bytes"
	"path/filepath"
	"testing"

	"roe/internal/testenv"
	"roe/kernels"
	"roe/model/gguf"
)

const quantGolden = "../../shared/golden/gguf"

// TestQuantizeGolden quantizes every tensor of the F32 golden to the types
// llama-quantize gave it in each legacy-type golden (no importance matrix)
// and compares the blocks byte for byte.
func TestQuantizeGolden(t *testing.T) {
	for _, m := range []string{"tiny-llama", "tiny-qwen2"} {
		t.Run(m, func(t *testing.T) { quantizeGolden(t, filepath.Join(quantGolden, m, m)) })
	}
}

func quantizeGolden(t *testing.T, base string) {
	src, err := gguf.Open(base + "-F32.gguf")
	if err != nil {
		testenv.SkipOrFail(t, "F32 golden: %v", err)
		return
	}
	defer src.Close()
	for _, name := range []string{"Q8_0", "Q4_0", "Q4_1", "Q5_0", "F16", "BF16"} {
		t.Run(name, func(t *testing.T) {
			f, err := gguf.Open(base + "-" + name + ".gguf")
			if err != nil {
				testenv.SkipOrFail(t, "%v", err)
				return
			}
			defer f.Close()
			seen := map[kernels.QType]int{}
			for _, ti := range f.Tensors {
				x, err := src.Float32(ti.Name)
				if err != nil {
					t.Fatal(err)
				}
				want, err := f.Data(ti.Name)
				if err != nil {
					t.Fatal(err)
				}
				got := make([]byte, len(want))
				cols := ti.Shape[0]
				rb, err := kernels.RowBytes(ti.Type, cols)
				if err != nil {
					t.Fatal(err)
				}
				bad := 0
				for r := 0; r < len(x)/cols; r++ {
					g := got[r*rb : (r+1)*rb]
					if err := kernels.QuantizeRow(ti.Type, g, x[r*cols:(r+1)*cols]); err != nil {
						t.Fatalf("%s row %d: %v", ti.Name, r, err)
					}
					if !bytes.Equal(g, want[r*rb:(r+1)*rb]) {
						bad++
					}
				}
				if bad > 0 {
					t.Errorf("%s (%s): %d of %d rows differ", ti.Name, ti.Type, bad, len(x)/cols)
				}
				seen[ti.Type]++
			}
			t.Logf("tensors compared by type: %v", seen)
		})
	}
}
