package adapters

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"

	"roe/model"
	"roe/model/safetensors"
)

// Phi-3 fuses q/k/v into qkv_proj and gate/up into gate_up_proj, and PEFT
// adapters for it target those fused modules: lora_B spans the fused rows
// (ΔW = s·B·A with B = [B_q; B_k; B_v] and one A). The model splits the fused
// weights into views of the seven projections, and so does an adapter: on
// load each part gets A and its rows of B, which is the same ΔW exactly; on
// save the parts are fused back (one A when they share it, otherwise a
// block-diagonal B over the stacked A's, which is again the same ΔW).

// fusedModules maps the fused PEFT module names of a base to the
// projections they hold, in row order; empty for unfused bases.
func fusedModules(base model.Config) map[string][]model.Proj {
	m := map[string][]model.Proj{}
	if base.FusedQKV {
		m["qkv_proj"] = []model.Proj{model.ProjQ, model.ProjK, model.ProjV}
	}
	if base.FusedGateUp {
		m["gate_up_proj"] = []model.Proj{model.ProjGate, model.ProjUp}
	}
	return m
}

// fusedName is the module that holds p on base ("" when p is a module of its own).
func fusedName(base model.Config, p model.Proj) string {
	for name, ps := range fusedModules(base) {
		if slices.Contains(ps, p) {
			return name
		}
	}
	return ""
}

// ModuleProjs returns the projections a PEFT target module name covers on
// base: one for q_proj … down_proj, the parts of a fused module of a base
// that has it (qkv_proj and gate_up_proj on Phi-3).
func ModuleProjs(base model.Config, name string) ([]model.Proj, bool) {
	if p, ok := model.ParseProj(name); ok {
		return []model.Proj{p}, true
	}
	ps, ok := fusedModules(base)[name]
	return ps, ok
}

// splitConfig rewrites the fused module names of a config into its parts'
// names, the modules the adapter holds.
func splitConfig(c Config, base model.Config) Config {
	fm := fusedModules(base)
	if len(fm) == 0 {
		return c
	}
	names := make([]string, 0, len(fm))
	for n := range fm {
		names = append(names, n)
	}
	sort.Strings(names)
	expand := func(s string) []string {
		for _, n := range names {
			if s == n || strings.HasSuffix(s, "."+n) {
				var out []string
				for _, p := range fm[n] {
					out = append(out, strings.TrimSuffix(s, n)+p.String())
				}
				return out
			}
		}
		return []string{s}
	}
	var tm []string
	for _, t := range c.TargetModules {
		tm = append(tm, expand(t)...)
	}
	if tm != nil {
		sort.Strings(tm)
		c.TargetModules = slices.Compact(tm)
	}
	for _, n := range names {
		var alt []string
		for _, p := range fm[n] {
			alt = append(alt, p.String())
		}
		c.TargetRegex = strings.ReplaceAll(c.TargetRegex, n, "(?:"+strings.Join(alt, "|")+")")
	}
	c.RankPattern = expandPatterns(c.RankPattern, fm, names)
	c.AlphaPattern = expandPatterns(c.AlphaPattern, fm, names)
	return c
}

func expandPatterns[V any](pat map[string]V, fm map[string][]model.Proj, names []string) map[string]V {
	if pat == nil {
		return nil
	}
	out := map[string]V{}
	for k, v := range pat {
		out[k] = v
		for _, n := range names {
			if strings.Contains(k, n) {
				for _, p := range fm[n] {
					out[strings.ReplaceAll(k, n, p.String())] = v
				}
			}
		}
	}
	return out
}

// fusedKeyRE matches the PEFT tensors of a fused module.
var fusedKeyRE = regexp.MustCompile(`^(base_model\.model\.model\.layers\.\d+\.(?:self_attn|mlp)\.)(qkv_proj|gate_up_proj)\.lora_(A|B)((?:\.[A-Za-z0-9_-]+)?\.weight)$`)

// splitReader presents the tensors of fused modules as their parts':
// lora_A shared, lora_B split by rows.
type splitReader struct {
	src   TensorReader
	infos []safetensors.TensorInfo
	parts map[string]splitPart // part name → where it comes from
}

type splitPart struct {
	from             string
	rows, skip, cols int // B only: the part's rows start after skip rows
	a                bool
}

func newSplitReader(src TensorReader, base model.Config) (TensorReader, error) {
	fm := fusedModules(base)
	r := &splitReader{src: src, parts: map[string]splitPart{}}
	fused := false
	for _, info := range src.Tensors() {
		m := fusedKeyRE.FindStringSubmatch(info.Name)
		ps, ok := fm[m2(m, 2)]
		if m == nil || !ok {
			r.infos = append(r.infos, info)
			continue
		}
		fused = true
		if len(info.Shape) != 2 {
			return nil, fmt.Errorf("%w: tensor %q has shape %v", ErrShape, info.Name, info.Shape)
		}
		total, skip := 0, 0
		for _, p := range ps {
			out, _ := base.ProjShape(p)
			total += out
		}
		if m[3] == "B" && info.Shape[0] != total {
			return nil, fmt.Errorf("%w: tensor %q has %d rows, the fused module has %d", ErrShape, info.Name, info.Shape[0], total)
		}
		for _, p := range ps {
			out, _ := base.ProjShape(p)
			name := m[1] + p.String() + ".lora_" + m[3] + m[4]
			part := splitPart{from: info.Name, a: m[3] == "A"}
			shape := info.Shape
			if !part.a {
				part.rows, part.skip, part.cols = out, skip, info.Shape[1]
				shape = []int{out, info.Shape[1]}
			}
			skip += out
			r.parts[name] = part
			r.infos = append(r.infos, safetensors.TensorInfo{Name: name, DType: info.DType, Shape: shape})
		}
	}
	if !fused {
		return src, nil
	}
	return r, nil
}

func m2(m []string, i int) string {
	if m == nil {
		return ""
	}
	return m[i]
}

func (r *splitReader) Tensors() []safetensors.TensorInfo { return r.infos }

func (r *splitReader) Float32(name string) ([]float32, error) {
	part, ok := r.parts[name]
	if !ok {
		return r.src.Float32(name)
	}
	v, err := r.src.Float32(part.from)
	if err != nil {
		return nil, err
	}
	if part.a {
		return slices.Clone(v), nil // each part owns its A: training may change them apart
	}
	lo, hi := part.skip*part.cols, (part.skip+part.rows)*part.cols
	if hi > len(v) {
		return nil, fmt.Errorf("%w: tensor %q has %d values", ErrShape, part.from, len(v))
	}
	return slices.Clone(v[lo:hi]), nil
}

// fusedFile returns what a PEFT folder for a fused base holds: the config
// with fused module names and the fused tensors. ok is false for unfused
// bases (the adapter is written as it is).
func (l *LoRA) fusedFile() (c Config, ts []safetensors.Tensor, ok bool) {
	fm := fusedModules(l.base)
	if len(fm) == 0 {
		return l.Config, nil, false
	}
	c = l.Config
	c.RankPattern, c.AlphaPattern = clonePattern(c.RankPattern), clonePattern(c.AlphaPattern)
	targets := map[string]bool{}
	names := make([]string, 0, len(fm))
	for n := range fm {
		names = append(names, n)
	}
	sort.Strings(names)
	for layer := range l.Layers {
		done := map[model.Proj]bool{}
		for p := model.Proj(0); p < model.NumProj; p++ {
			pr := l.Layers[layer][p]
			if pr == nil || done[p] {
				continue
			}
			name := fusedName(l.base, p)
			if name == "" {
				targets[p.String()] = true
				key := "base_model.model." + moduleKey(layer, p)
				ts = append(ts,
					safetensors.F32Tensor(key+".lora_A.weight", []int{pr.Rank, pr.In}, pr.A),
					safetensors.F32Tensor(key+".lora_B.weight", []int{pr.Out, pr.Rank}, pr.B))
				continue
			}
			targets[name] = true
			parts := fm[name]
			for _, q := range parts {
				done[q] = true
			}
			key := strings.TrimSuffix(moduleKey(layer, p), p.String()) + name
			a, b, rank, alpha := l.fuse(layer, parts)
			if rank != c.R || alpha != c.Alpha {
				if c.RankPattern == nil {
					c.RankPattern = map[string]int{}
				}
				if c.AlphaPattern == nil {
					c.AlphaPattern = map[string]float64{}
				}
				c.RankPattern[key], c.AlphaPattern[key] = rank, alpha
			}
			out := len(b) / rank
			ts = append(ts,
				safetensors.F32Tensor("base_model.model."+key+".lora_A.weight", []int{rank, pr.In}, a),
				safetensors.F32Tensor("base_model.model."+key+".lora_B.weight", []int{out, rank}, b))
		}
	}
	c.TargetRegex, c.TargetModules = "", nil
	for t := range targets {
		c.TargetModules = append(c.TargetModules, t)
	}
	sort.Strings(c.TargetModules)
	// Patterns that name a part now stand for the fused module's.
	partOnly := func(k string) bool {
		for _, n := range names {
			rest := strings.ReplaceAll(k, n, "")
			for _, p := range fm[n] {
				if strings.Contains(rest, p.String()) {
					return true
				}
			}
		}
		return false
	}
	for k := range c.RankPattern {
		if partOnly(k) {
			delete(c.RankPattern, k)
		}
	}
	for k := range c.AlphaPattern {
		if partOnly(k) {
			delete(c.AlphaPattern, k)
		}
	}
	return c, ts, true
}

func clonePattern[V any](m map[string]V) map[string]V {
	if m == nil {
		return nil
	}
	out := make(map[string]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// fuse stacks one layer's parts of a fused module into one PEFT module with
// the same ΔW: when every part is there with the same A and scale, that A
// and the stacked B's; otherwise the stacked A's and a block-diagonal B
// carrying each part's scale (alpha then makes the module's own scale 1).
//
//	a: [rank, in], b: [Σ out, rank]
func (l *LoRA) fuse(layer int, parts []model.Proj) (a, b []float32, rank int, alpha float64) {
	first := l.Layers[layer][parts[0]]
	same := true
	for _, p := range parts {
		pr := l.Layers[layer][p]
		same = same && pr != nil && pr.Rank == first.Rank && pr.Scale == first.Scale && pr.Alpha == first.Alpha && slices.Equal(pr.A, first.A)
	}
	if same {
		for _, p := range parts {
			b = append(b, l.Layers[layer][p].B...)
		}
		return slices.Clone(first.A), b, first.Rank, first.Alpha
	}
	for _, p := range parts {
		if pr := l.Layers[layer][p]; pr != nil {
			rank += pr.Rank
			a = append(a, pr.A...)
		}
	}
	at := 0 // column of the part's block
	for _, p := range parts {
		out, _ := l.base.ProjShape(p)
		pr := l.Layers[layer][p]
		rows := make([]float32, out*rank)
		if pr != nil {
			for o := 0; o < out; o++ {
				for k := 0; k < pr.Rank; k++ {
					rows[o*rank+at+k] = pr.Scale * pr.B[o*pr.Rank+k]
				}
			}
			at += pr.Rank
		}
		b = append(b, rows...)
	}
	alpha = float64(rank)
	if l.Config.UseRSLoRA {
		alpha = math.Sqrt(float64(rank))
	}
	return a, b, rank, alpha
}
