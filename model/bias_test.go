package model

import (
	"errors"
	"path/filepath"
	"testing"
)

// Llama's attention_bias (q, k, v and o) and mlp_bias (gate, up and down)
// are read, used in prefill and decode, saved back, and written to and read
// from GGUF, where llama.cpp takes each bias the file has.
func TestLlamaBiases(t *testing.T) {
	c, err := ParseConfig([]byte(`{"architectures":["LlamaForCausalLM"],"hidden_size":64,"intermediate_size":96,
	"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":100,"rms_norm_eps":1e-5,
	"rope_theta":10000,"max_position_embeddings":256,"attention_bias":true,"mlp_bias":true}`))
	if err != nil {
		t.Fatal(err)
	}
	for p := Proj(0); p < NumProj; p++ {
		if !c.HasBias(p) {
			t.Fatalf("%s has no bias", p)
		}
	}
	m, err := Random(c, 1)
	if err != nil {
		t.Fatal(err)
	}
	ids := []int{1, 5, 9, 30, 2, 7}
	want := forwardWhole(t, m, ids, nil).Logits

	// Used: without the o and MLP biases the logits move.
	z := m.Clone()
	for i := range z.layers {
		for _, p := range []Proj{ProjO, ProjGate, ProjUp, ProjDown} {
			clear(z.layers[i].bias[p])
		}
	}
	if d := maxAbsDiff(forwardWhole(t, z, ids, nil).Logits, want); d < 1e-2 {
		t.Fatalf("the o and MLP biases move the logits by only %.3g", d)
	}
	// Decode (one token at a time) agrees with prefill.
	cache := m.NewCache()
	var last Output
	for _, id := range ids {
		out, err := m.Forward([]Step{{Cache: cache, Tokens: []int{id}}})
		if err != nil {
			t.Fatal(err)
		}
		last = out[0]
	}
	if d := maxAbsDiff(last.Logits, want[len(want)-c.VocabSize:]); d > 1e-5 {
		t.Errorf("decode differs from prefill by %.3g", d)
	}

	// Saved and loaded: the same model.
	dir := t.TempDir()
	if err := m.Save(dir, WeightsF32); err != nil {
		t.Fatal(err)
	}
	back, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !back.Config.OutputBias || !back.Config.MLPBias || back.Fingerprint() != m.Fingerprint() {
		t.Errorf("read back: o bias %v, MLP bias %v, fingerprint %.12s (want %.12s)", back.Config.OutputBias, back.Config.MLPBias, back.Fingerprint(), m.Fingerprint())
	}
	if d := maxAbsDiff(forwardWhole(t, back, ids, nil).Logits, want); d != 0 {
		t.Errorf("saved and loaded: logits differ by %.3g", d)
	}

	// GGUF: the biases as attn_output.bias, ffn_*.bias; read back by name.
	path := filepath.Join(t.TempDir(), "m.gguf")
	if err := SaveGGUF(path, m, GGUFWriteOptions{}); err != nil {
		t.Fatal(err)
	}
	g, f, err := LoadGGUF(path, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, name := range []string{"blk.1.attn_output.bias", "blk.1.ffn_gate.bias", "blk.1.ffn_up.bias", "blk.1.ffn_down.bias", "blk.1.attn_q.bias"} {
		if _, err := f.Data(name); err != nil {
			t.Errorf("GGUF: %v", err)
		}
	}
	if g.Fingerprint() != m.Fingerprint() {
		t.Errorf("GGUF fingerprint %.12s, want %.12s", g.Fingerprint(), m.Fingerprint())
	}
	if d := maxAbsDiff(forwardWhole(t, g, ids, nil).Logits, want); d > 1e-5 {
		t.Errorf("GGUF: logits differ by %.3g", d)
	}

	// A Llama GGUF may carry q/k/v biases without an o_proj one (llama.cpp
	// reads each it finds); config.json cannot say so, so Save refuses it.
	partial := m.Clone()
	partial.Config.OutputBias, partial.Config.MLPBias = false, false
	for i := range partial.layers {
		for _, p := range []Proj{ProjO, ProjGate, ProjUp, ProjDown} {
			partial.layers[i].bias[p] = nil
		}
	}
	ppath := filepath.Join(t.TempDir(), "qkv.gguf")
	if err := SaveGGUF(ppath, partial, GGUFWriteOptions{}); err != nil {
		t.Fatal(err)
	}
	pg, pf, err := LoadGGUF(ppath, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	if !pg.Config.AttentionBias || pg.Config.OutputBias || pg.Config.MLPBias {
		t.Errorf("q/k/v-only GGUF read as attention %v, o %v, MLP %v", pg.Config.AttentionBias, pg.Config.OutputBias, pg.Config.MLPBias)
	}
	if d := maxAbsDiff(forwardWhole(t, pg, ids, nil).Logits, forwardWhole(t, partial, ids, nil).Logits); d > 1e-5 {
		t.Errorf("q/k/v-only GGUF: logits differ by %.3g", d)
	}
	if err := pg.Save(t.TempDir(), WeightsF32); !errors.Is(err, ErrUnsupported) {
		t.Errorf("saving q/k/v biases without o's as config.json: %v", err)
	}

	// Families without MLP biases refuse mlp_bias by name.
	if _, err := ParseConfig([]byte(`{"architectures":["Qwen2ForCausalLM"],"hidden_size":64,"intermediate_size":96,
	"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":100,"mlp_bias":true}`)); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Qwen2 with mlp_bias: %v", err)
	}
}
