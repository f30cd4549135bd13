// Package model is roe's base language model: a Llama-family decoder loaded
// from a Hugging Face folder (config.json and model.safetensors) and run on
// the CPU with roe's own kernels.
//
// One forward serves the three config.json classes roe accepts,
// LlamaForCausalLM, MistralForCausalLM and Qwen2ForCausalLM: their
// differences (Qwen2's q/k/v biases, Mistral's sliding window, tied or untied
// LM head, RoPE scaling, grouped-query attention) are fields of Config, which
// LoadConfig and ParseConfig read and validate. Load and LoadFS build a
// Model from a folder or a file system (the embedded default model);
// LoadWith and LoadFSWith can keep the projections as bf16, and Random builds
// a randomly initialised model of a given shape. Save writes a model back as
// a folder. LoadGGUF reads a llama.cpp GGUF file; WriteGGUF and SaveGGUF
// write one in any llama.cpp file type, as llama.cpp's converter and
// llama-quantize would (GGUFPlan lists the tensor types of a file type,
// GGUFVocab makes the tokenizer keys).
//
// Forward runs one batched pass: each Step appends tokens to its sequence's
// KV Cache (from NewCache) and may carry its own Adapter; every projection
// is one GEMM over all rows. On top of it, Generate streams a completion
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
