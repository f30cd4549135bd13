package model

import "testing"

// A request's first KV allocation covers its prompt and its max_tokens, but
// never more than reserveAhead positions it may not use; without a bound
// the cache grows as it goes.
func TestSequenceReservesBoundedKV(t *testing.T) {
	c, err := ParseConfig([]byte(`{"architectures":["LlamaForCausalLM"],"hidden_size":64,"intermediate_size":96,
	"num_hidden_layers":1,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":50,"rms_norm_eps":1e-5,
	"rope_theta":10000,"max_position_embeddings":8192}`))
	if err != nil {
		t.Fatal(err)
	}
	m := randomModel(t, c)
	prompt := []int{1, 2, 3, 4, 5}
	for _, tc := range []struct{ maxTokens, want int }{{10, 15}, {4000, 5 + reserveAhead}, {0, 0}} {
		s, err := m.NewSequence(prompt, nil, GenerateOptions{MaxTokens: tc.maxTokens})
		if err != nil {
			t.Fatal(err)
		}
		if s.cache.want != tc.want {
			t.Errorf("max_tokens %d: reserves %d positions, want %d", tc.maxTokens, s.cache.want, tc.want)
		}
	}
}
