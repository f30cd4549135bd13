package main

import (
	"bytes"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"roe/adapters"
	"roe/model"
)

// saveRandomAdapter writes a rank-r PEFT adapter on targets of the stories260K
// model, N(0, sd²) factors, and returns its folder.
func saveRandomAdapter(t *testing.T, r int, targets []model.Proj, seed uint64, sd float64) string {
	t.Helper()
	cfg, err := loadConfig("stories260K")
	if err != nil {
		t.Fatal(err)
	}
	c := adapters.Config{R: r, Alpha: float64(2 * r)}
	for _, p := range targets {
		c.TargetModules = append(c.TargetModules, p.String())
	}
	l := adapters.New(cfg, c)
	rng := rand.New(rand.NewPCG(seed, 1))
	draw := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * sd)
		}
		return v
	}
	for layer := 0; layer < cfg.NumLayers; layer++ {
		for _, p := range targets {
			out, in := cfg.ProjShape(p)
			l.SetPair(layer, p, &adapters.Pair{A: draw(r * in), B: draw(out * r), Rank: r, In: in, Out: out, Alpha: float64(2 * r)})
		}
	}
	dir := filepath.Join(t.TempDir(), "lora")
	if err := l.Save(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// generate --adapter a,b --merge linear is exact by default (as cat with
// weights ½, ½) and says nothing; --rank compresses and reports the error.
func TestGenerateMergeExactUnlessRank(t *testing.T) {
	var log bytes.Buffer
	saved := mergeLog
	mergeLog = &log
	t.Cleanup(func() { mergeLog = saved })
	a := saveRandomAdapter(t, 4, []model.Proj{model.ProjQ, model.ProjV, model.ProjUp}, 1, 0.1)
	b := saveRandomAdapter(t, 6, []model.Proj{model.ProjK, model.ProjO, model.ProjV, model.ProjUp}, 2, 0.1)
	gen := func(extra ...string) string {
		t.Helper()
		args := append([]string{"generate", "--model", "stories260K", "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "24", "--json"}, extra...)
		out, errs, code := roe(t, "", args...)
		if code != 0 {
			t.Fatalf("%v: exit %d, %s", extra, code, errs)
		}
		return out
	}
	base := gen()
	linear := gen("--adapter", a+","+b, "--merge", "linear")
	if log.Len() != 0 {
		t.Errorf("exact merge logged %q", log.String())
	}
	if linear == base {
		t.Error("the merged experts change nothing: test is vacuous")
	}
	if cat := gen("--adapter", a+","+b, "--merge", "cat", "--weights", "0.5,0.5"); cat != linear {
		t.Errorf("linear %s, cat at ½, ½ %s", linear, cat)
	}
	compressed := gen("--adapter", a+","+b, "--merge", "linear", "--rank", "6")
	t.Log(strings.TrimSpace(log.String()))
	if compressed == linear {
		t.Error("compressing to rank 6 leaves the greedy output as it was: the rank check is vacuous")
	}
	if s := log.String(); !strings.Contains(s, "compressed to rank 6 (exact rank 10)") || !strings.Contains(s, "relative Frobenius error 0.") {
		t.Errorf("--rank 6 logged %q", s)
	}
	log.Reset()
	gen("--adapter", a+","+b, "--merge", "linear", "--rank", "10")
	if log.Len() != 0 {
		t.Errorf("--rank 10 (exact) logged %q", log.String())
	}
	// One adapter with a weight is scaled by it: 1 is the adapter itself, 0.5 is not.
	one := gen("--adapter", a)
	if w1 := gen("--adapter", a, "--weights", "1"); w1 != one {
		t.Errorf("weight 1: %s, unweighted %s", w1, one)
	}
	if half := gen("--adapter", a, "--weights", "0.5"); half == one {
		t.Error("weight 0.5 gives the unweighted output")
	}
	// roe merge says the same.
	out, errs, code := roe(t, "", "merge", "--model", "stories260K", "--adapters", a+","+b, "--method", "linear", "--rank", "6", "--out", filepath.Join(t.TempDir(), "m"))
	if code != 0 || !strings.Contains(out, "compressed to rank 6 (exact rank 10)") {
		t.Errorf("roe merge --rank 6: exit %d, %q %s", code, out, errs)
	}
	out, _, _ = roe(t, "", "merge", "--model", "stories260K", "--adapters", a+","+b, "--method", "linear", "--out", filepath.Join(t.TempDir(), "m"))
	if !strings.Contains(out, "rank 10, exact") {
		t.Errorf("roe merge: %q", out)
	}
}
