package model

import (
	"fmt"
	"math/rand/v2"

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
			if len(shape) == 1 {
				v[i] += 1
			}
		}
		src[name] = memTensor{shape, v}
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
		if c.AttentionBias {
			add(p+"self_attn.q_proj.bias", c.NumHeads*hd)
			add(p+"self_attn.k_proj.bias", c.NumKVHeads*hd)
			add(p+"self_attn.v_proj.bias", c.NumKVHeads*hd)
		}
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

// NumParamsHint counts the parameters a model of this config has (embedding,
// norms, every block's projections and biases, and an untied LM head), without
// building it.
func (c Config) NumParamsHint() int {
	H, I, V := c.HiddenSize, c.IntermediateSize, c.VocabSize
	qd, kvd := c.NumHeads*c.HeadDim, c.NumKVHeads*c.HeadDim
	per := 2*H + qd*H + 2*kvd*H + H*qd + 3*I*H
	if c.AttentionBias {
		per += qd + 2*kvd
	}
	n := V*H + H + c.NumLayers*per
	if !c.TieWordEmbeddings {
		n += V * H
	}
	return n
}
