// Package serve is roe's HTTP server: an OpenAI-compatible API (completions,
// chat, embeddings, models, and vLLM's /tokenize, /detokenize and
// /tokenizer_info) in which `model` names the base model, one expert, or
// `auto` for Retrieval-of-Experts routing; an admin API to add, merge and
// remove experts while it runs, with vLLM's load_lora_adapter and
// unload_lora_adapter confined to an adapter root (lora.go); and the
// scheduler that batches sequences with different adapters into one forward
// step.
//
// Data flows one way: a handler validates the body into a plan (openai.go:
// every request field is honoured, or refused by name by the tables of
// fields.go; response_format and tools become an output spec in
// structured.go and tools.go), selects experts (select.go, with LoRAX's
// adapter_id and llama.cpp's lora read in lora.go), builds each prompt's
// model.Sequence and submits them to the Scheduler as Groups (a prompt's n
// completions fork from one prefill, each with its own constraint), then
// answers as JSON or server-sent events (complete.go, which reads tool calls
// back), with log-probabilities shaped by logprobs.go.
package serve
