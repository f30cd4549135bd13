// Package serve is roe's HTTP server: an OpenAI-compatible API (completions,
// chat, embeddings, models) in which `model` names the base model, one expert,
// or `auto` for Retrieval-of-Experts routing; an admin API to add, merge and
// remove experts while it runs, with vLLM's load_lora_adapter and
// unload_lora_adapter confined to an adapter root (lora.go); and the scheduler that batches sequences with
// different adapters into one forward step.
//
// Data flows one way: a handler validates the body, selects experts (experts.go),
// builds a model.Sequence and submits it to the Scheduler, then streams the
// text back as JSON or server-sent events.
package serve
