package library

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"roe/adapters"
	"roe/model"
	"roe/model/safetensors"
)

// Kind says how an expert was made.
type Kind string

// The kinds of expert.
const (
	KindPrompt   Kind = "prompt"   // trained on one prompt template of one dataset
	KindDataset  Kind = "dataset"  // trained on all templates of one dataset
	KindMerged   Kind = "merged"   // made by merging other experts
	KindImported Kind = "imported" // brought in from a PEFT folder
)

// Valid reports whether k is one of the four kinds.
func (k Kind) Valid() bool {
	switch k {
	case KindPrompt, KindDataset, KindMerged, KindImported:
		return true
	}
	return false
}

// Instance is one sampled training instance of an expert.
type Instance struct {
	Text          string    `json:"input"`                    // the instance as formatted for embedding
	AnswerChoices []string  `json:"answer_choices,omitempty"` // its answer choices, if any
	Target        string    `json:"target,omitempty"`         // its target, optional
	Embedding     []float32 `json:"embedding,omitempty"`      // [Dim], from the library's Embedder
}

// Training is how an expert was trained.
type Training struct {
	DataSize int                `json:"data_size,omitempty"` // training instances seen
	Steps    int                `json:"steps,omitempty"`     // optimiser steps
	Seeds    []int64            `json:"seeds,omitempty"`     // random seeds of the run(s)
	Metrics  map[string]float64 `json:"metrics,omitempty"`   // e.g. accuracy, loss
	Notes    string             `json:"notes,omitempty"`     // free-form
}

// Manifest is the small description of an expert that List returns.
type Manifest struct {
	ID              string    `json:"id"`                 // random, 32 hex digits; assigned by Add
	Name            string    `json:"name"`               // unique, [a-zA-Z0-9._/-], at most 128 bytes
	Kind            Kind      `json:"kind"`               // prompt, dataset, merged or imported
	Dataset         string    `json:"dataset,omitempty"`  // training dataset name
	Template        string    `json:"template,omitempty"` // prompt template name
	Prompt          string    `json:"prompt,omitempty"`   // prompt name
	Description     string    `json:"description,omitempty"`
	BaseFingerprint string    `json:"base_fingerprint"`       // model.(*Model).Fingerprint() of the base
	Embedder        string    `json:"embedder,omitempty"`     // which model/layer made the embeddings
	NumInstances    int       `json:"num_instances"`          // stored instances (at most S)
	SampledFrom     int       `json:"sampled_from,omitempty"` // instances given to Add when more than S
	Dim             int       `json:"dim"`                    // embedding dimension (0 without instances)
	NumTensors      int       `json:"num_tensors"`            // adapter tensors
	AdapterBytes    int64     `json:"adapter_bytes"`          // total bytes of the adapter tensors
	Training        Training  `json:"training"`
	Created         time.Time `json:"created"` // assigned by Add (UTC)
}

// Task is the task the expert stands for: its dataset, else the part of its
// name before "/" (sst2/review → sst2; merged/nli → merged), else its name.
// Routing evaluations score a choice as right when its Task is the query's.
func (m Manifest) Task() string {
	if m.Dataset != "" {
		return m.Dataset
	}
	if i := strings.Index(m.Name, "/"); i > 0 {
		return m.Name[:i]
	}
	return m.Name
}

// Expert is a whole expert: manifest, adapter and sampled instances.
type Expert struct {
	Manifest
	AdapterConfig []byte               // adapter_config.json as PEFT writes it
	Tensors       []safetensors.Tensor // F32, PEFT names (base_model.model.model.layers.N...lora_A.weight)
	Instances     []Instance
}

// LoRA parses the expert's adapter for a base model, checking every tensor
// name and shape against it.
func (e *Expert) LoRA(base model.Config) (*adapters.LoRA, error) {
	c, err := adapters.ParseConfig(e.AdapterConfig)
	if err != nil {
		return nil, fmt.Errorf("expert %s: adapter_config.json: %w", e.Name, err)
	}
	l, err := adapters.FromTensors(c, base, newMemTensors(e.Tensors))
	if err != nil {
		return nil, fmt.Errorf("expert %s: %w", e.Name, err)
	}
	return l, nil
}

// ExpertFromLoRA returns an adapter's adapter_config.json and PEFT tensors,
// exactly as l.Save writes them.
func ExpertFromLoRA(l *adapters.LoRA) (config []byte, tensors []safetensors.Tensor, err error) {
	config, tensors = l.PEFT()
	return config, tensors, nil
}

// readPEFT reads adapter_config.json and adapter_model.safetensors from dir,
// widening F16 and BF16 tensors to F32.
func readPEFT(dir string) (config []byte, tensors []safetensors.Tensor, err error) {
	config, err = os.ReadFile(filepath.Join(dir, "adapter_config.json"))
	if err != nil {
		return nil, nil, err
	}
	path := filepath.Join(dir, "adapter_model.safetensors")
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	for _, info := range f.Tensors() {
		var t safetensors.Tensor
		if info.DType == safetensors.F32 {
			raw, err := f.Raw(info.Name)
			if err != nil {
				return nil, nil, err
			}
			t = safetensors.Tensor{Name: info.Name, DType: safetensors.F32, Shape: append([]int(nil), info.Shape...), Data: append([]byte(nil), raw...)}
		} else {
			v, err := f.Float32(info.Name)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", path, err)
			}
			t = safetensors.F32Tensor(info.Name, info.Shape, v)
		}
		tensors = append(tensors, t)
	}
	return config, tensors, nil
}

// memTensors is an in-memory adapters.TensorReader over F32 tensors.
type memTensors struct {
	infos []safetensors.TensorInfo
	data  map[string][]byte
}

func newMemTensors(ts []safetensors.Tensor) *memTensors {
	m := &memTensors{data: make(map[string][]byte, len(ts))}
	var off int64
	for _, t := range ts {
		n := int64(len(t.Data))
		m.infos = append(m.infos, safetensors.TensorInfo{Name: t.Name, DType: t.DType, Shape: append([]int(nil), t.Shape...), Begin: off, End: off + n})
		off += n
		m.data[t.Name] = t.Data
	}
	return m
}

func (m *memTensors) Tensors() []safetensors.TensorInfo { return m.infos }

func (m *memTensors) Float32(name string) ([]float32, error) {
	b, ok := m.data[name]
	if !ok {
		return nil, fmt.Errorf("%w: tensor %q", safetensors.ErrNotFound, name)
	}
	for _, info := range m.infos {
		if info.Name == name && info.DType != safetensors.F32 {
			return nil, fmt.Errorf("%w: tensor %q is %s, the library stores F32", safetensors.ErrDType, name, info.DType)
		}
	}
	return decodeF32(b), nil
}

func decodeF32(b []byte) []float32 {
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

func encodeF32(dst []byte, v []float32) []byte {
	for _, x := range v {
		dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(x))
	}
	return dst
}
