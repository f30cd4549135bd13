package adapters

import (
	"testing"

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
