package model

import (
	"fmt"
	"strings"

	"roe/kernels"
)

// Activations is how the inputs of quantized-weight products are held.
type Activations string

const (
	// ActivationsF32 multiplies quantized weights by float32 activations:
	// exact (the default), logits equal a forward over the dequantized
	// weights up to float32 summation order.
	ActivationsF32 Activations = "f32"
	// ActivationsQ8 quantizes the input rows of decode-sized products
	// (at most 8 rows) with Q8_0, Q4_0, Q5_0, Q4_K or Q6_K weights to int8
	// blocks of 32 with a float32 scale each, and runs integer dot products:
	// faster, and lossy as llama.cpp is (it does the same for every
	// quantized type). Prefill-sized products, other weight types, float
	// weights and LoRA deltas stay float32. Opt-in only.
	ActivationsQ8 Activations = "q8"
)

// ParseActivations accepts "f32" (or "", "fp32", "float32") and "q8" (or "int8").
func ParseActivations(s string) (Activations, error) {
	switch strings.ToLower(s) {
	case "", "f32", "fp32", "float32":
		return ActivationsF32, nil
	case "q8", "int8":
		return ActivationsQ8, nil
	}
	return "", fmt.Errorf("%w: activations %q (want f32 or q8)", ErrInput, s)
}

// Activations reports how the model multiplies its quantized weights:
// ActivationsQ8 when it was loaded with them and holds at least one matrix
// of a type with int8 kernels, else ActivationsF32.
func (m *Model) Activations() Activations {
	if m.q8 {
		return ActivationsQ8
	}
	return ActivationsF32
}

// Q8Types lists the weight types of m whose products quantize activations
// (empty unless Activations is ActivationsQ8), e.g. "Q4_K Q6_K".
func (m *Model) Q8Types() string {
	if !m.q8 {
		return ""
	}
	seen := map[kernels.QType]bool{}
	var names []string
	for _, w := range m.matrices() {
		if w.q8 && !seen[w.q.Type] {
			seen[w.q.Type] = true
			names = append(names, w.q.Type.String())
		}
	}
	return strings.Join(names, " ")
}

// matrices lists the projections of every block and the LM head.
func (m *Model) matrices() []*matrix {
	var ws []*matrix
	for i := range m.layers {
		ws = append(ws, m.layers[i].projections()...)
	}
	return append(ws, &m.lmHead)
}

// setActivations marks the quantized matrices that have int8 kernels.
func (m *Model) setActivations(a Activations) {
	m.q8 = false
	for _, w := range m.matrices() {
		w.q8 = a == ActivationsQ8 && w.q != nil && kernels.HasQ8(w.q.Type)
		m.q8 = m.q8 || w.q8
	}
}
