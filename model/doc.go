// Package model is roe's base language model: a decoder loaded from a
// Hugging Face folder (config.json and model.safetensors) and run on the CPU
// with roe's own kernels.
//
// One forward serves every config.json class roe accepts: the Llama family
// (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM), Qwen3ForCausalLM,
// Gemma2ForCausalLM, Gemma3ForCausalLM (text) and Phi3ForCausalLM. A family
// is a description, not a code path: its file (llama.go, qwen3.go, gemma.go,
// phi3.go) parses its config.json keys into the feature fields of Config —
// (1 + w) norms, sandwich norms, q/k norms, embedding scale, attention scale
// and soft-capping, GeGLU, partial RoPE, per-layer RoPE bases, longrope,
// sliding-window layers, fused Phi-3 projections — and the forward, the KV
// cache, the adapters and package train all read those fields. Norms used
// as (1 + w) are stored with the one added, and Phi-3's fused qkv_proj and
// gate_up_proj are split into q/k/v and gate/up views of the same memory at
// load, so every block has the same seven projections. LoadConfig and
// ParseConfig read and validate a config, refusing by name what roe does
// not implement. Load and LoadFS build a Model from a folder or a file
// system (the embedded default model); LoadWith and LoadFSWith can keep the
// projections as bf16, and Random builds a randomly initialised model of a
// given shape (SmolLM2Shape, Gemma3_270MShape, Qwen3_06BShape). Save writes a
// model back as a folder. LoadGGUF reads a llama.cpp GGUF file; WriteGGUF
// and SaveGGUF write one in any llama.cpp file type, as llama.cpp's
// converter and llama-quantize would (GGUFPlan lists the tensor types of a
// file type, GGUFVocab makes the tokenizer keys).
//
// Forward runs one batched pass: each Step appends tokens to its sequence's
// KV Cache (from NewCache) and may carry its own Adapter; every projection
// is one GEMM over all rows. Sliding-window layers attend to their window
// only and their part of the cache keeps only it, so a long context costs
// window-sized memory there. On top of it, Generate streams a completion
// (GenerateOptions, with greedy or sampled decoding by a Sampler), and
// NewSequence with Sequence.Step and Sequence.Accept lets a scheduler drive
// many generations through one Forward. LogLikelihood scores a continuation
// given a prompt; Embed and EmbedLayer return a mean-pooled hidden state, the
// embedding roe's retrieval uses.
//
// Adapter is the hook through which fine-tuned deltas reach the model: after
// each base projection (Proj: q_proj … down_proj, in PEFT's names) the model
// calls AddDelta with that projection's input and output rows. Package
// adapters implements it for LoRA; the model itself never changes, so
// sequences with different adapters share one batch. Params and Clone expose
// the weights to full fine-tuning in package train.
//
// Tensors are plain slices, []float32 (bf16 weights: []uint16 bits), in
// Hugging Face nn.Linear layout ([out, in]), with shapes given in comments. Errors wrap the sentinels of errors.go
// (ErrConfig, ErrArchitecture, ErrWeights, ErrContext, …) for errors.Is.
package model
