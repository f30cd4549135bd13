package model

import (
	"math/rand/v2"
	"strconv"
	"strings"

	"roe/model/safetensors"
)

// memSource serves float32 tensors from memory.
type memSource map[string]memTensor

type memTensor struct {
	shape []int
	v     []float32
}

func (m memSource) Info(name string) (safetensors.TensorInfo, bool) {
	t, ok := m[name]
	return safetensors.TensorInfo{Name: name, DType: safetensors.F32, Shape: t.shape}, ok
}

func (m memSource) Float32(name string) ([]float32, error) { return m[name].v, nil }

// Random builds a model of the given shape with seeded random weights (norms
// near 1, matrices with std 0.02): speed does not depend on the values, so
// benchmarks use it instead of downloading a checkpoint.
func Random(c Config, seed uint64) (*Model, error) {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	src := memSource{}
	add := func(name string, shape ...int) {
		n := 1
		for _, s := range shape {
			n *= s
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.NormFloat64() * 0.02)
			if len(shape) == 1 && !c.NormPlusOne {
				v[i] += 1
			}
		}
		src[name] = memTensor{shape, v}
	}
	// Per layer: norms, then matrices, then biases (the order seeds have
	// always drawn them in).
	m := &Model{Config: c, layers: make([]layer, c.NumLayers)}
	ws := m.tensorWants()
	kind := func(w tensorWant) int {
		switch {
		case w.norm:
			return 0
		case w.vec != nil:
			return 2
		}
		return 1
	}
	i := 0
	for ; i < len(ws) && !strings.HasPrefix(ws[i].name, "model.layers."); i++ {
		add(ws[i].name, ws[i].shape...)
	}
	for l := 0; l < c.NumLayers; l++ {
		j := i
		for j < len(ws) && strings.HasPrefix(ws[j].name, "model.layers."+strconv.Itoa(l)+".") {
			j++
		}
		for k := 0; k < 3; k++ {
			for _, w := range ws[i:j] {
				if kind(w) == k {
					add(w.name, w.shape...)
				}
			}
		}
		i = j
	}
	return New(c, src)
}

// SmolLM2Shape is the shape of SmolLM2-135M (hidden 576, 30 layers, 9/3 heads,
// FFN 1536, vocab 49152, tied): roe's benchmark model.
func SmolLM2Shape() Config {
	c, err := ParseConfig([]byte(`{"architectures":["LlamaForCausalLM"],"hidden_size":576,"intermediate_size":1536,
	"num_hidden_layers":30,"num_attention_heads":9,"num_key_value_heads":3,"vocab_size":49152,"rms_norm_eps":1e-5,
	"rope_theta":100000,"max_position_embeddings":8192,"tie_word_embeddings":true}`))
	if err != nil {
		panic(err) // a constant config
	}
	return c
}

// Gemma3_270MShape is the shape of Gemma 3 270M (hidden 640, 18 layers, 4
// query heads and 1 KV head of 256, FFN 2048, vocab 262144, tied; five
// 512-token sliding layers to each global one).
func Gemma3_270MShape() Config {
	return mustShape(`{"architectures":["Gemma3ForCausalLM"],"model_type":"gemma3_text","hidden_size":640,
	"intermediate_size":2048,"num_hidden_layers":18,"num_attention_heads":4,"num_key_value_heads":1,"head_dim":256,
	"vocab_size":262144,"rms_norm_eps":1e-6,"rope_theta":1000000,"rope_local_base_freq":10000,
	"query_pre_attn_scalar":256,"sliding_window":512,"sliding_window_pattern":6,"max_position_embeddings":32768,
	"hidden_activation":"gelu_pytorch_tanh","tie_word_embeddings":true}`)
}

// Qwen3_06BShape is the shape of Qwen3-0.6B (hidden 1024, 28 layers, 16/8
// heads of 128, FFN 3072, vocab 151936, tied).
func Qwen3_06BShape() Config {
	return mustShape(`{"architectures":["Qwen3ForCausalLM"],"hidden_size":1024,"intermediate_size":3072,
	"num_hidden_layers":28,"num_attention_heads":16,"num_key_value_heads":8,"head_dim":128,"vocab_size":151936,
	"rms_norm_eps":1e-6,"rope_theta":1000000,"max_position_embeddings":40960,"tie_word_embeddings":true}`)
}

func mustShape(js string) Config {
	c, err := ParseConfig([]byte(js))
	if err != nil {
		panic(err) // a constant config
	}
	return c
}

// NumParamsHint counts the parameters a model of this config has (embedding,
// norms, every block's projections and biases, and an untied LM head), without
// building it.
func (c Config) NumParamsHint() int {
	H, I, V := c.HiddenSize, c.IntermediateSize, c.VocabSize
	qd, kvd := c.NumHeads*c.HeadDim, c.NumKVHeads*c.HeadDim
	per := 2*H + qd*H + 2*kvd*H + H*qd + 3*I*H
	for p := Proj(0); p < NumProj; p++ {
		if c.HasBias(p) {
			out, _ := c.ProjShape(p)
			per += out
		}
	}
	if c.SandwichNorm {
		per += 2 * H
	}
	if c.QKNorm {
		per += 2 * c.HeadDim
	}
	n := V*H + H + c.NumLayers*per
	if !c.TieWordEmbeddings {
		n += V * H
	}
	return n
}
