// Package adapters holds one expert's parameters: a LoRA adapter in the Hugging
// Face PEFT format (adapter_config.json + adapter_model.safetensors).
//
// An adapter is applied in one of two ways:
//   - unmerged, per sequence: *LoRA implements model.Adapter, so each sequence
//     of a batch can carry its own adapter (or none) through one forward;
//   - merged: Merge adds s·B·A into a copy of the base weights (and Unmerge
//     takes it out again).
//
// Several experts are composed by the merge methods in merge.go, each of which
// produces a new adapter.
package adapters
