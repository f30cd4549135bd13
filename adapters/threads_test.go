package adapters

import (
	"math"
	"slices"
	"testing"
	"unsafe"

	"roe/internal/testmodel"
	"roe/kernels"
	"roe/model"
)

// An adapted sequence's logits are the same bits on one thread, two and
// three (a lone decoding sequence's delta parts spread over the threads, or
// summed part by part in one pass on one thread), with float32, bfloat16
// and float16 decode factors, over a float32 base and over a Llama GGUF
// base, whose q and k products are put back in Hugging Face order before
// the deltas are added.
func TestDeltaThreadInvariant(t *testing.T) {
	// Widths that split unevenly between two threads.
	m := testmodel.Random(t, `{"architectures":["LlamaForCausalLM"],"hidden_size":320,"intermediate_size":600,
	"num_hidden_layers":2,"num_attention_heads":5,"num_key_value_heads":1,"vocab_size":300,"rms_norm_eps":1e-5,
	"rope_theta":10000,"max_position_embeddings":256}`, 3)
	t.Run("float32", func(t *testing.T) { checkThreads(t, m) })
	q := testmodel.GGUF(t, "../../shared/golden/gguf/tiny-llama-k256/tiny-llama-k256-Q4_K_M.gguf", model.LoadOptions{})
	t.Run("Q4_K_M", func(t *testing.T) { checkThreads(t, q) })
}

func checkThreads(t *testing.T, m *model.Model) {
	for _, f := range []struct {
		name  string
		round func(float32) float32
	}{
		{"float32", nil},
		{"bfloat16", func(v float32) float32 { return kernels.FromBF16(kernels.ToBF16(v)) }},
		{"float16", func(v float32) float32 { return kernels.FromF16(kernels.ToF16(v)) }},
	} {
		for _, rank := range []int{8, 7, 1} { // 7: parts of unequal rank; 1: one part
			lora := Random(m.Config, rank, 5)
			if f.round != nil {
				mapFactors(lora, f.round).pack() // under packMin: Random left it unpacked
			}
			if got := lora.DecodeFactors(); got != f.name {
				t.Fatalf("decode factors %s, want %s", got, f.name)
			}
			checkThreadsRank(t, m, lora, rank)
		}
	}
}

func checkThreadsRank(t *testing.T, m *model.Model, lora *LoRA, rank int) {
	lora.Layers[1][model.ProjK] = nil // a module left unadapted
	defer kernels.SetThreads(kernels.Threads())
	run := func(threads, rows int) []float32 {
		kernels.SetThreads(threads)
		c := m.NewCache()
		prompt := []int{1, 17, 42, 99, 123, 7, 25}
		if _, err := m.Forward([]model.Step{{Cache: c, Tokens: prompt, Adapter: lora}}); err != nil {
			t.Fatal(err)
		}
		out, err := m.Forward([]model.Step{{Cache: c, Tokens: prompt[:rows], Adapter: lora, AllLogits: true}})
		if err != nil {
			t.Fatal(err)
		}
		return out[0].Logits
	}
	for _, rows := range []int{1, fewRows, 7} {
		one := run(1, rows)
		for _, threads := range []int{2, 3} {
			more := run(threads, rows)
			for i := range one {
				if math.Float32bits(one[i]) != math.Float32bits(more[i]) {
					t.Fatalf("%s rank %d, %d rows: logit %d: %v on one thread, %v on %d", lora.DecodeFactors(), rank, rows, i, one[i], more[i], threads)
				}
			}
		}
	}
}

// A decode step of a lone adapted sequence, its delta in parts, allocates
// nothing once warm.
func TestPartedDecodeAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts under the race detector")
	}
	m := testmodel.Random(t, `{"architectures":["LlamaForCausalLM"],"hidden_size":64,"intermediate_size":96,
	"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":100,"rms_norm_eps":1e-5,
	"rope_theta":10000,"max_position_embeddings":256}`, 3)
	lora := Random(m.Config, 8, 5)
	defer kernels.SetThreads(kernels.Threads())
	kernels.SetThreads(2)
	c := m.NewCache()
	out := make([]model.Output, 1)
	steps := []model.Step{{Cache: c, Tokens: []int{1}, Adapter: lora}}
	step := func() {
		if c.Len() > 200 {
			c.Truncate(1)
		}
		if err := m.ForwardInto(steps, out); err != nil {
			t.Fatal(err)
		}
	}
	for range 5 {
		step()
	}
	if a := testing.AllocsPerRun(20, step); a != 0 {
		t.Errorf("%v allocations per adapted decode step", a)
	}
}

// pack moves the factors and nothing else: a packed adapter's logits are
// bit-identical to the same adapter unpacked, on decode and prefill, and
// its factors lie in one buffer.
func TestPack(t *testing.T) {
	m := testmodel.Random(t, `{"architectures":["LlamaForCausalLM"],"hidden_size":64,"intermediate_size":96,
	"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":100,"rms_norm_eps":1e-5,
	"rope_theta":10000,"max_position_embeddings":256}`, 3)
	plain := Random(m.Config, 8, 5) // under packMin: left as built
	packed := Random(m.Config, 8, 5)
	defer func(v int) { packMin = v }(packMin)
	packMin = 0
	packed.pack()
	first := packed.Layers[0][model.ProjQ].A
	base := unsafe.Pointer(unsafe.SliceData(first))
	var at uintptr
	for l, ps := range packed.Layers {
		for p, pr := range ps {
			want := plain.Layers[l][p]
			if !slices.Equal(pr.A, want.A) || !slices.Equal(pr.bst, want.bst) {
				t.Fatalf("layer %d proj %d: pack changed the factors", l, p)
			}
			for _, v := range [][]float32{pr.A, pr.bst} {
				if got := uintptr(unsafe.Pointer(unsafe.SliceData(v))) - uintptr(base); got != at || cap(v) != len(v) {
					t.Fatalf("layer %d proj %d: a factor at byte %d (cap %d of %d), want %d", l, p, got, cap(v), len(v), at)
				}
				at += uintptr(len(v)) * 4
			}
		}
	}
	prompt := []int{1, 17, 42, 99, 23, 7, 25}
	for _, rows := range []int{1, fewRows, 7} {
		var got [2][]float32
		for i, l := range []*LoRA{plain, packed} {
			c := m.NewCache()
			if _, err := m.Forward([]model.Step{{Cache: c, Tokens: prompt, Adapter: l}}); err != nil {
				t.Fatal(err)
			}
			out, err := m.Forward([]model.Step{{Cache: c, Tokens: prompt[:rows], Adapter: l, AllLogits: true}})
			if err != nil {
				t.Fatal(err)
			}
			got[i] = out[0].Logits
		}
		for i := range got[0] {
			if math.Float32bits(got[0][i]) != math.Float32bits(got[1][i]) {
				t.Fatalf("%d rows: logit %d: %v unpacked, %v packed", rows, i, got[0][i], got[1][i])
			}
		}
	}
}

// With bfloat16 decode factors an adapter decodes as a float32 adapter
// holding the rounded factors would, and prefills exactly as the float32
// one; auto takes them only where rounding loses nothing.
func TestDecodeBF16(t *testing.T) {
	m := testmodel.Random(t, `{"architectures":["LlamaForCausalLM"],"hidden_size":64,"intermediate_size":96,
	"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":100,"rms_norm_eps":1e-5,
	"rope_theta":10000,"max_position_embeddings":256}`, 3)
	// rounded is the test adapter with its decode factors rounded to
	// bfloat16 values in float32 (under packMin: Random left it unpacked).
	rounded := func() *LoRA {
		return mapFactors(Random(m.Config, 8, 5), func(v float32) float32 { return kernels.FromBF16(kernels.ToBF16(v)) })
	}
	plain, ref := Random(m.Config, 8, 5), rounded()
	if err := SetDecodeDType("bfloat16"); err != nil {
		t.Fatal(err)
	}
	bf := Random(m.Config, 8, 5)
	if err := SetDecodeDType("auto"); err != nil || DecodeDType() != DecodeAuto {
		t.Fatalf("auto: %v, %s", err, DecodeDType())
	}
	if err := SetDecodeDType("fp8"); err == nil {
		t.Fatal("SetDecodeDType took fp8")
	}
	logits := func(l *LoRA, rows int) []float32 { // from an empty cache
		prompt := []int{1, 17, 42, 99, 23, 7, 25}
		out, err := m.Forward([]model.Step{{Cache: m.NewCache(), Tokens: prompt[:rows], Adapter: l, AllLogits: true}})
		if err != nil {
			t.Fatal(err)
		}
		return out[0].Logits
	}
	for _, rows := range []int{1, fewRows} {
		got, want, exact := logits(bf, rows), logits(ref, rows), logits(plain, rows)
		differs := false
		for i := range want {
			if d := math.Abs(float64(got[i] - want[i])); d > 1e-5*max(1, math.Abs(float64(want[i]))) {
				t.Fatalf("%d rows: logit %d: %v with bfloat16 factors, %v with the rounded float32 ones", rows, i, got[i], want[i])
			}
			differs = differs || got[i] != exact[i]
		}
		if !differs {
			t.Fatalf("%d rows: bfloat16 factors gave the float32 logits bit for bit: not used", rows)
		}
	}
	got, want := logits(bf, 7), logits(plain, 7)
	if !slices.Equal(got, want) {
		t.Fatal("prefill with bfloat16 decode factors differs from float32")
	}

	// auto (the default) reads an adapter whose values all are bfloat16
	// as bfloat16 (nothing is lost), any other as float32; float32 never.
	defer SetDecodeDType(DecodeAuto)
	for _, c := range []struct {
		mode string
		l    *LoRA
		bf   bool
	}{{DecodeAuto, rounded(), true}, {DecodeAuto, Random(m.Config, 8, 5), false}, {DecodeFloat32, rounded(), false}} {
		if err := SetDecodeDType(c.mode); err != nil {
			t.Fatal(err)
		}
		c.l.pack()
		if got := c.l.Layers[0][model.ProjQ].a16 != nil; got != c.bf {
			t.Errorf("%s: bfloat16 decode factors %v, want %v", c.mode, got, c.bf)
		}
	}
}

// auto reads an adapter whose decode factors all are IEEE halves (stored
// in float16, as llama.cpp's LoRA converter writes) as float16, and it
// decodes as the float32 adapter of the same values; float32 never.
func TestDecodeF16(t *testing.T) {
	m := testmodel.Random(t, `{"architectures":["LlamaForCausalLM"],"hidden_size":64,"intermediate_size":96,
	"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":100,"rms_norm_eps":1e-5,
	"rope_theta":10000,"max_position_embeddings":256}`, 3)
	halves := func() *LoRA { // unpacked (under packMin), values f16 but not bf16
		return mapFactors(Random(m.Config, 8, 7), func(v float32) float32 { return kernels.FromF16(kernels.ToF16(v)) })
	}
	defer SetDecodeDType(DecodeAuto)
	for _, c := range []struct {
		mode string
		f16  bool
	}{{DecodeAuto, true}, {DecodeFloat32, false}} {
		if err := SetDecodeDType(c.mode); err != nil {
			t.Fatal(err)
		}
		l, ref := halves(), halves()
		l.pack()
		pr := l.Layers[0][model.ProjQ]
		if pr.f16 != c.f16 || (pr.a16 != nil) != c.f16 {
			t.Fatalf("%s: float16 decode factors %v (a16 %v), want %v", c.mode, pr.f16, pr.a16 != nil, c.f16)
		}
		for _, rows := range []int{1, fewRows} {
			prompt := []int{1, 17, 42, 99}[:rows]
			run := func(a *LoRA) []float32 {
				out, err := m.Forward([]model.Step{{Cache: m.NewCache(), Tokens: prompt, Adapter: a, AllLogits: true}})
				if err != nil {
					t.Fatal(err)
				}
				return out[0].Logits
			}
			got, want := run(l), run(ref)
			for i := range want {
				if d := math.Abs(float64(got[i] - want[i])); d > 1e-5*max(1, math.Abs(float64(want[i]))) {
					t.Fatalf("%s, %d rows: logit %d: %v with the packed factors, %v unpacked", c.mode, rows, i, got[i], want[i])
				}
			}
		}
	}
}

// mapFactors replaces every decode factor v of l (A and (Scale·B)ᵀ, not
// yet packed) by f(v) and returns l.
func mapFactors(l *LoRA, f func(float32) float32) *LoRA {
	for pr := range l.pairs() {
		for _, v := range [][]float32{pr.A, pr.bst} {
			for i := range v {
				v[i] = f(v[i])
			}
		}
	}
	return l
}
