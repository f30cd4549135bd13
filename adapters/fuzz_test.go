package adapters

import (
	"bytes"
	"testing"

	"roe/kernels"
	"roe/model"
)

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"peft_type":"LORA","r":4,"lora_alpha":8,"target_modules":["q_proj","v_proj"]}`))
	f.Add([]byte(`{"r":8,"target_modules":".*\\.(q|v)_proj","rank_pattern":{"v_proj":2},"alpha_pattern":{"(":1}}`))
	f.Add([]byte(`{"r":8,"target_modules":"all-linear","layers_to_transform":[0,1],"use_rslora":true}`))
	f.Add([]byte(`{"r":-1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err != nil {
			return
		}
		if c.R <= 0 {
			t.Fatalf("accepted rank %d", c.R)
		}
		for l := 0; l < 3; l++ {
			for p := model.Proj(0); p < model.NumProj; p++ {
				c.targets(l, p)
				if r, _ := c.rankAlpha(l, p); r <= 0 {
					t.Fatalf("rank %d for %s", r, p)
				}
			}
		}
	})
}

// FuzzParseGGUF: a GGUF LoRA of any bytes is refused with an error or
// accepted with every pair shaped as its module of the base, whose delta
// then runs on a decode row and on a prefill's rows.
func FuzzParseGGUF(f *testing.F) {
	base, err := model.ParseConfig([]byte(`{"architectures":["LlamaForCausalLM"],"hidden_size":32,"intermediate_size":48,
	"num_hidden_layers":2,"num_attention_heads":2,"num_key_value_heads":1,"vocab_size":40,"rms_norm_eps":1e-5,
	"rope_theta":10000,"max_position_embeddings":64}`))
	if err != nil {
		f.Fatal(err)
	}
	for _, ty := range []kernels.QType{kernels.F32, kernels.F16} {
		l := Random(base, 2, 3)
		l.Layers[1][model.ProjK] = nil
		var buf bytes.Buffer
		if err := l.WriteGGUFAs(&buf, base, ty); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ParseGGUF("f.gguf", b, base)
		if err != nil {
			return
		}
		for li, ps := range l.Layers {
			for p, pr := range ps {
				if pr == nil {
					continue
				}
				out, in := base.ProjShape(model.Proj(p))
				if pr.In != in || pr.Out != out || pr.Rank <= 0 || len(pr.A) != pr.Rank*in || len(pr.B) != out*pr.Rank {
					t.Fatalf("layer %d %s: %d×%d rank %d (A %d, B %d), want %d×%d", li, model.Proj(p), pr.In, pr.Out, pr.Rank, len(pr.A), len(pr.B), in, out)
				}
				for _, rows := range []int{1, fewRows + 1} {
					l.AddDelta(li, model.Proj(p), make([]float32, rows*in), make([]float32, rows*out), rows)
				}
			}
		}
	})
}
