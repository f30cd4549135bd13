// Package gguf reads and writes GGUF files, llama.cpp's model format
// (versions 2 and 3, little-endian).
//
// A GGUF file is, in order:
//
//   - a header: the magic "GGUF", a uint32 version, a uint64 tensor count
//     and a uint64 metadata count;
//   - the metadata: key/value pairs, each a string key (uint64 length +
//     bytes), a uint32 value type (uint8=0 … float64=12) and the value;
//     strings are length-prefixed, arrays are an element type, a uint64
//     length and the elements (an array may hold arrays);
//   - the tensor infos: name, n_dims, the dimensions ne (ne[0] is the row
//     length, the fastest-varying dimension), the ggml type (kernels.QType)
//     and the offset of the tensor's bytes relative to the data region;
//   - padding to the alignment (metadata key general.alignment, default 32),
//     then the data region; every tensor's offset is a multiple of the
//     alignment.
//
// Parse and Open validate everything before anything is used: the magic and
// version (version 1, big-endian files and pre-GGUF ggml files are refused
// as ErrUnsupported, by name), every count and length against the bytes
// left (nothing is allocated from an untrusted count before it is known to
// fit), value types, bools (0 or 1), nesting (one level of arrays in arrays;
// deeper is ErrUnsupported), duplicate keys and tensor names,
// general.alignment (a uint32 power of two), tensor shapes (1 to 4
// dimensions, each ≥ 1, no overflow, rows made of whole blocks), tensor
// types (kernels.QType.Known, else ErrUnsupported naming the type), aligned
// offsets, every tensor inside the file, and no two tensors overlapping.
// Malformed files fail with ErrFormat; messages name the key or tensor.
//
// Open maps the file read-only where the platform allows (Data then
// returns slices of the mapping, without copying); metadata is copied out
// and stays usable after Close. Float32 widens F32, F16 and BF16 tensors;
// quantized tensors are the kernels' job to dequantize.
//
// Write produces GGUF v3 with the same rules, so Parse(Write(x)) gives x back.
package gguf
