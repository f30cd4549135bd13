package model

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"roe/kernels"
	"roe/model/safetensors"
)

// mapSource serves tensors from memory, for benchmark models built in-process.
type mapSource map[string]safetensors.Tensor

func (m mapSource) Info(name string) (safetensors.TensorInfo, bool) {
	t, ok := m[name]
	return safetensors.TensorInfo{Name: name, DType: t.DType, Shape: t.Shape}, ok
}

func (m mapSource) Float32(name string) ([]float32, error) {
	t := m[name]
	v := make([]float32, len(t.Data)/4)
	for i := range v {
		v[i] = f32at(t.Data, i)
	}
	return v, nil
}

// smolLM2Config has SmolLM2-135M's shape: hidden 576, 30 layers, 9/3 heads,
// FFN 1536, vocab 49152, tied embeddings.
func smolLM2Config() Config {
	c, err := ParseConfig([]byte(`{"architectures":["LlamaForCausalLM"],"hidden_size":576,"intermediate_size":1536,
	"num_hidden_layers":30,"num_attention_heads":9,"num_key_value_heads":3,"vocab_size":49152,"rms_norm_eps":1e-5,
	"rope_theta":100000,"max_position_embeddings":8192,"tie_word_embeddings":true}`))
	if err != nil {
		panic(err)
	}
	return c
}

// RandomModel builds a model of the given shape with random weights (speed does not depend on values).
func randomModel(tb testing.TB, c Config) *Model {
	tb.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	src := mapSource{}
	add := func(name string, shape ...int) {
		n := 1
		for _, s := range shape {
			n *= s
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.NormFloat64() * 0.02)
		}
		if len(shape) == 1 {
			for i := range v {
				v[i] += 1
			}
		}
		src[name] = safetensors.F32Tensor(name, shape, v)
	}
	H, I, V, hd := c.HiddenSize, c.IntermediateSize, c.VocabSize, c.HeadDim
	add("model.embed_tokens.weight", V, H)
	add("model.norm.weight", H)
	if !c.TieWordEmbeddings {
		add("lm_head.weight", V, H)
	}
	for l := 0; l < c.NumLayers; l++ {
		p := fmt.Sprintf("model.layers.%d.", l)
		add(p+"input_layernorm.weight", H)
		add(p+"post_attention_layernorm.weight", H)
		add(p+"self_attn.q_proj.weight", c.NumHeads*hd, H)
		add(p+"self_attn.k_proj.weight", c.NumKVHeads*hd, H)
		add(p+"self_attn.v_proj.weight", c.NumKVHeads*hd, H)
		add(p+"self_attn.o_proj.weight", H, c.NumHeads*hd)
		add(p+"mlp.gate_proj.weight", I, H)
		add(p+"mlp.up_proj.weight", I, H)
		add(p+"mlp.down_proj.weight", H, I)
	}
	m, err := New(c, src)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func benchTokens(n int) []int {
	ids := make([]int, n)
	for i := range ids {
		ids[i] = (i*7919 + 13) % 49152
	}
	return ids
}

// BenchmarkPrefill reports prefill tokens/s on the SmolLM2-135M shape.
func BenchmarkPrefill(b *testing.B) {
	m := randomModel(b, smolLM2Config())
	for _, n := range []int{128, 512} {
		for _, th := range []int{1, 2} {
			b.Run(fmt.Sprintf("tokens=%d/threads=%d", n, th), func(b *testing.B) {
				defer kernels.SetThreads(kernels.Threads())
				kernels.SetThreads(th)
				ids := benchTokens(n)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := m.Forward([]Step{{Cache: m.NewCache(), Tokens: ids}}); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "tok/s")
			})
		}
	}
}

// BenchmarkDecode reports decode tokens/s after a 128-token prompt on the SmolLM2-135M shape.
func BenchmarkDecode(b *testing.B) {
	m := randomModel(b, smolLM2Config())
	for _, th := range []int{1, 2} {
		b.Run(fmt.Sprintf("ctx=128/threads=%d", th), func(b *testing.B) {
			defer kernels.SetThreads(kernels.Threads())
			kernels.SetThreads(th)
			c := m.NewCache()
			if _, err := m.Forward([]Step{{Cache: c, Tokens: benchTokens(128)}}); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c.Truncate(128)
				if _, err := m.Forward([]Step{{Cache: c, Tokens: []int{42}}}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tok/s")
		})
	}
}
