package model

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"roe/kernels"
	"roe/model/gguf"
)

// TestGGUFFamilies: the Qwen3, Gemma 2 and Gemma 3 goldens written as GGUF
// (llama.cpp's names: Gemma's post_attention_norm/ffn_norm/post_ffw_norm,
// attn_q_norm/attn_k_norm; its norms stored with the one added) read back
// to the same config, fingerprint and logits, in float32 and in Q8_0. A
// golden whose family fields are not the ones llama.cpp derives (Gemma 3's
// sliding_window_pattern 3, a query_pre_attn_scalar off the rule) is
// refused by name; the test then writes it with the derived values.
func TestGGUFFamilies(t *testing.T) {
	for _, tc := range []struct {
		name, arch string
		refused    string // what writing the golden as it is is refused for
	}{
		{"qwen3", "qwen3", ""},
		{"gemma2", "gemma2", "query_pre_attn_scalar"},
		{"gemma3", "gemma3", "query_pre_attn_scalar"},
		{"phi3", "phi3", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(archDir, tc.name)
			src := loadModel(t, dir)
			err := ggufConfigWritable(src.Config)
			if tc.refused == "" && err != nil || tc.refused != "" && (!errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), tc.refused)) {
				t.Fatalf("writing the golden as it is: %v (want refusal for %q)", err, tc.refused)
			}
			if err != nil {
				// The golden with the family fields llama.cpp derives.
				d, err := ggufDerived(src.Config)
				if err != nil {
					t.Fatal(err)
				}
				if src, err = Random(d, 11); err != nil {
					t.Fatal(err)
				}
			}
			if r := &src.Config.Rope; r.Type == "longrope" {
				// A GGUF holds longrope's factors as float32 (so do Phi-3's
				// own configs); the golden's 1.05 is not one.
				d := src.Config
				d.Rope.ShortFactor, d.Rope.LongFactor = roundF32(r.ShortFactor), roundF32(r.LongFactor)
				if src, err = Random(d, 11); err != nil {
					t.Fatal(err)
				}
			}
			ids := []int{2, 17, 33, 250, 4, 99, 180, 3, 7, 7, 7, 12, 301, 5}
			want := forwardWhole(t, src, ids, nil).Logits
			for _, typ := range []string{"f32", "q8_0"} {
				path, f := writeGGUF(t, src, GGUFWriteOptions{FileType: mustFileType(t, typ)})
				if a, _ := f.Architecture(); a != tc.arch {
					t.Errorf("%s: general.architecture %q", typ, a)
				}
				var names []string
				for _, ti := range f.Tensors {
					if strings.HasPrefix(ti.Name, "blk.0.") && strings.Contains(ti.Name, "norm") {
						names = append(names, ti.Name)
					}
				}
				t.Logf("%s: block 0 norms %v", typ, names)
				m, lf, err := LoadGGUF(path, LoadOptions{})
				if err != nil {
					t.Fatalf("%s: %v", typ, err)
				}
				defer lf.Close()
				// BOS/EOS come from the vocabulary (none written here), the
				// dtype from the file's tensors.
				mc, sc := m.Config, src.Config
				mc.BOS, mc.EOS, mc.TorchDType, sc.BOS, sc.EOS, sc.TorchDType = nil, nil, "", nil, nil, ""
				if got, want := fmt.Sprintf("%+v", mc), fmt.Sprintf("%+v", sc); got != want {
					t.Errorf("%s: config\n got %s\nwant %s", typ, got, want)
				}
				if m.Fingerprint() != src.Fingerprint() {
					t.Errorf("%s: fingerprint %.12s, source %.12s", typ, m.Fingerprint(), src.Fingerprint())
				}
				if typ != "f32" {
					// Written again in its own type, every block is kept (Phi-3's
					// fused q/k/v and gate/up included).
					_, again := writeGGUF(t, m, GGUFWriteOptions{FileType: mustFileType(t, typ)})
					for _, ti := range f.Tensors {
						a, _ := f.Data(ti.Name)
						b, err := again.Data(ti.Name)
						if err != nil || !bytes.Equal(a, b) {
							t.Errorf("%s %s: blocks not kept (%v)", typ, ti.Name, err)
						}
					}
				}
				got := forwardWhole(t, m, ids, nil).Logits
				ref := want
				if typ != "f32" {
					ref = forwardWhole(t, m.Clone(), ids, nil).Logits // its own dequantized weights
				}
				if d := maxAbsDiff(got, ref); d > tol {
					t.Errorf("%s: logits differ by %.3g", typ, d)
				}
				if typ == "f32" {
					// The norms as stored: (1 + w) for Gemma, as llama.cpp's converter writes them.
					ti, _ := f.Tensor("blk.0.attn_norm.weight")
					if ti.Type != kernels.F32 {
						t.Errorf("attn_norm stored as %s", ti.Type)
					}
					v, err := f.Float32("blk.0.attn_norm.weight")
					if err != nil {
						t.Fatal(err)
					}
					if d := maxAbsDiff(v, src.layers[0].attnNorm); d != 0 {
						t.Errorf("stored attn_norm differs from the model's %v norm by %g", src.Config.NormPlusOne, d)
					}
				}
			}
		})
	}
}

func roundF32(v []float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(float32(x))
	}
	return out
}

// TestGGUFSlidingKeys: newer converters' attention.sliding_window_pattern
// (flags or a period) and rope.freq_base_swa override what the reader
// would derive for Gemma 3; a pattern of the wrong shape is refused.
func TestGGUFSlidingKeys(t *testing.T) {
	c := loadModel(t, filepath.Join(archDir, "gemma3")).Config
	d, err := ggufDerived(c)
	if err != nil {
		t.Fatal(err)
	}
	src, err := Random(d, 4)
	if err != nil {
		t.Fatal(err)
	}
	kvs, ts, err := src.ggufContents(GGUFWriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		kvs    []gguf.KV
		layers []bool
		local  float64
		err    bool
	}{
		{"flags", []gguf.KV{{Key: "gemma3.attention.sliding_window_pattern", Value: gguf.NewBools([]bool{true, false, true})}}, []bool{true, false, true}, 10000, false},
		{"period", []gguf.KV{{Key: "gemma3.attention.sliding_window_pattern", Value: gguf.NewUint32(2)}}, []bool{true, false, true}, 10000, false},
		{"base", []gguf.KV{{Key: "gemma3.rope.freq_base_swa", Value: gguf.NewFloat32(20000)}}, nil, 20000, false},
		{"short", []gguf.KV{{Key: "gemma3.attention.sliding_window_pattern", Value: gguf.NewBools([]bool{true})}}, nil, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := gguf.Write(&buf, append(slices.Clone(kvs), tc.kvs...), ts); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "m.gguf")
			if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			m, lf, err := LoadGGUF(path, LoadOptions{})
			if tc.err {
				if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "sliding_window_pattern") {
					t.Errorf("got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer lf.Close()
			if !slices.Equal(m.Config.SlidingLayers, tc.layers) || m.Config.LocalRopeTheta != tc.local {
				t.Errorf("sliding layers %v, local base %g; want %v, %g", m.Config.SlidingLayers, m.Config.LocalRopeTheta, tc.layers, tc.local)
			}
			// The forward pass follows: the same weights under that config.
			want := src.Clone()
			want.Config.SlidingLayers, want.Config.LocalRopeTheta = tc.layers, tc.local
			ids := []int{2, 17, 33, 250, 4, 99, 180, 3, 7, 7, 7, 12, 301, 5}
			if dd := maxAbsDiff(forwardWhole(t, m, ids, nil).Logits, forwardWhole(t, want, ids, nil).Logits); dd > tol {
				t.Errorf("logits differ by %.3g", dd)
			}
		})
	}
}
