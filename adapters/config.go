package adapters

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"

	"roe/model"
)

// Config is the part of PEFT's LoraConfig that changes what an adapter computes.
type Config struct {
	BaseModel      string             // base_model_name_or_path
	R              int                // default rank
	Alpha          float64            // default lora_alpha
	TargetModules  []string           // module names, e.g. q_proj; empty when TargetRegex is set
	TargetRegex    string             // target_modules given as one regular expression
	RankPattern    map[string]int     // rank per module-name pattern
	AlphaPattern   map[string]float64 // alpha per module-name pattern
	UseRSLoRA      bool               // scale alpha/√r instead of alpha/r
	FanInFanOut    bool               // kept for the file; Llama layers are nn.Linear, so PEFT ignores it
	LayersToChange []int              // layers_to_transform; nil means all
}

// rawConfig mirrors adapter_config.json as PEFT writes it.
type rawConfig struct {
	PeftType          string             `json:"peft_type"`
	BaseModel         string             `json:"base_model_name_or_path"`
	TaskType          string             `json:"task_type"`
	R                 int                `json:"r"`
	Alpha             *float64           `json:"lora_alpha"`
	TargetModules     json.RawMessage    `json:"target_modules"`
	RankPattern       map[string]int     `json:"rank_pattern"`
	AlphaPattern      map[string]float64 `json:"alpha_pattern"`
	UseRSLoRA         bool               `json:"use_rslora"`
	UseDoRA           bool               `json:"use_dora"`
	LoraBias          bool               `json:"lora_bias"`
	Bias              string             `json:"bias"`
	FanInFanOut       bool               `json:"fan_in_fan_out"`
	ModulesToSave     []string           `json:"modules_to_save"`
	LayersToTransform json.RawMessage    `json:"layers_to_transform"`
	LayerReplication  json.RawMessage    `json:"layer_replication"`
}

// ParseConfig parses adapter_config.json, refusing by name what roe does not support.
func ParseConfig(b []byte) (Config, error) {
	var r rawConfig
	if err := json.Unmarshal(b, &r); err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if r.PeftType != "" && r.PeftType != "LORA" {
		return Config{}, fmt.Errorf("%w: peft_type %q (only LORA)", ErrUnsupported, r.PeftType)
	}
	if r.UseDoRA {
		return Config{}, fmt.Errorf("%w: use_dora (DoRA)", ErrUnsupported)
	}
	if r.LoraBias {
		return Config{}, fmt.Errorf("%w: lora_bias", ErrUnsupported)
	}
	if r.Bias != "" && r.Bias != "none" {
		return Config{}, fmt.Errorf("%w: bias %q (only \"none\")", ErrUnsupported, r.Bias)
	}
	if len(r.ModulesToSave) > 0 {
		return Config{}, fmt.Errorf("%w: modules_to_save %v", ErrUnsupported, r.ModulesToSave)
	}
	if len(r.LayerReplication) > 0 && string(r.LayerReplication) != "null" {
		return Config{}, fmt.Errorf("%w: layer_replication", ErrUnsupported)
	}
	if r.R <= 0 {
		return Config{}, fmt.Errorf("%w: r must be positive, got %d", ErrConfig, r.R)
	}
	c := Config{BaseModel: r.BaseModel, R: r.R, Alpha: float64(r.R), RankPattern: r.RankPattern,
		AlphaPattern: r.AlphaPattern, UseRSLoRA: r.UseRSLoRA, FanInFanOut: r.FanInFanOut}
	if r.Alpha != nil {
		c.Alpha = *r.Alpha
	}
	for k, v := range r.RankPattern {
		if v <= 0 {
			return Config{}, fmt.Errorf("%w: rank_pattern %q: rank %d", ErrConfig, k, v)
		}
	}
	var list []string
	var one string
	switch {
	case len(r.TargetModules) == 0 || string(r.TargetModules) == "null":
		return Config{}, fmt.Errorf("%w: target_modules is missing", ErrConfig)
	case json.Unmarshal(r.TargetModules, &list) == nil:
		for _, name := range list {
			if err := checkTarget(name); err != nil {
				return Config{}, err
			}
		}
		sort.Strings(list)
		c.TargetModules = list
	case json.Unmarshal(r.TargetModules, &one) == nil:
		if one == "all-linear" {
			c.TargetModules = append([]string(nil), moduleNames()...)
			break
		}
		if _, err := regexp.Compile(one); err != nil {
			return Config{}, fmt.Errorf("%w: target_modules regex %q: %v", ErrConfig, one, err)
		}
		c.TargetRegex = one
	default:
		return Config{}, fmt.Errorf("%w: target_modules must be a list of names or a regex", ErrConfig)
	}
	if len(r.LayersToTransform) > 0 && string(r.LayersToTransform) != "null" {
		var n int
		if json.Unmarshal(r.LayersToTransform, &n) == nil {
			c.LayersToChange = []int{n}
		} else if err := json.Unmarshal(r.LayersToTransform, &c.LayersToChange); err != nil {
			return Config{}, fmt.Errorf("%w: layers_to_transform must be an integer or a list", ErrConfig)
		}
	}
	return c, nil
}

func moduleNames() []string {
	out := make([]string, model.NumProj)
	for p := model.Proj(0); p < model.NumProj; p++ {
		out[p] = p.String()
	}
	return out
}

// checkTarget refuses target module names that are not linear layers of a Llama block.
func checkTarget(name string) error {
	base := name[strings.LastIndex(name, ".")+1:]
	if _, ok := model.ParseProj(base); ok || base == "qkv_proj" || base == "gate_up_proj" {
		return nil // the fused ones exist on Phi-3 only: FromTensors checks against the base
	}
	switch base {
	case "embed_tokens", "lm_head", "wte":
		return fmt.Errorf("%w: target module %q (embedding and lm_head LoRA)", ErrUnsupported, name)
	}
	return fmt.Errorf("%w: target module %q is not in the base model (want q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)", ErrUnsupported, name)
}

// moduleKey is the PEFT module name of one projection, e.g. model.layers.3.self_attn.q_proj.
func moduleKey(layer int, p model.Proj) string {
	block := "self_attn"
	if p >= model.ProjGate {
		block = "mlp"
	}
	return fmt.Sprintf("model.layers.%d.%s.%s", layer, block, p)
}

// targets reports whether the config applies LoRA to this module.
func (c Config) targets(layer int, p model.Proj) bool {
	if c.LayersToChange != nil {
		found := false
		for _, l := range c.LayersToChange {
			found = found || l == layer
		}
		if !found {
			return false
		}
	}
	key := moduleKey(layer, p)
	if c.TargetRegex != "" {
		re := regexp.MustCompile("^(?:" + c.TargetRegex + ")$")
		return re.MatchString(key) || re.MatchString("base_model.model."+key)
	}
	for _, t := range c.TargetModules {
		if key == t || strings.HasSuffix(key, "."+t) {
			return true
		}
	}
	return false
}

// patternValue finds the first pattern (sorted, for determinism) matching key as
// PEFT's get_pattern_key does: the pattern must match a dotted suffix of the key.
func patternValue[V any](patterns map[string]V, key string) (V, bool) {
	names := make([]string, 0, len(patterns))
	for k := range patterns {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		re, err := regexp.Compile(`^(?:.*\.)?(?:` + k + `)$`)
		if err == nil && re.MatchString(key) {
			return patterns[k], true
		}
	}
	var zero V
	return zero, false
}

// rankAlpha returns the rank and alpha of one module, after rank_pattern and alpha_pattern.
func (c Config) rankAlpha(layer int, p model.Proj) (int, float64) {
	key := moduleKey(layer, p)
	r, a := c.R, c.Alpha
	if v, ok := patternValue(c.RankPattern, key); ok {
		r = v
	}
	if v, ok := patternValue(c.AlphaPattern, key); ok {
		a = v
	}
	return r, a
}

// Scale is the multiplier of B·A for a module of rank r with this alpha.
func (c Config) Scale(r int, alpha float64) float32 {
	if c.UseRSLoRA {
		return float32(alpha / math.Sqrt(float64(r)))
	}
	return float32(alpha / float64(r))
}
