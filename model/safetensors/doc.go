// Package safetensors reads and writes the Hugging Face safetensors format.
//
// A safetensors file is an 8-byte little-endian header length N, N bytes of
// JSON header, then one data buffer; every tensor's data_offsets are relative
// to the start of that buffer (byte 8+N):
//
//	{"__metadata__": {"format": "pt"},
//	 "model.norm.weight": {"dtype": "F32", "shape": [64], "data_offsets": [0, 256]}}
//
// Reading is defensive: the whole header is validated before any tensor can
// be used (header length within the file and below MaxHeaderSize, a JSON
// object with no duplicate keys, known dtypes, non-negative shapes, offsets
// inside the data buffer, byte counts that match the shape, no overlapping
// tensors, string→string metadata). Every error names the file and the
// problem and wraps one of the sentinel errors of errors.go, so callers can
// test it with errors.Is. No input makes the reader panic; ParseHeader is a
// pure function and is fuzzed (FuzzParseHeader).
//
// Data access: on Linux, macOS and the BSDs Open maps the file read-only with
// mmap, so opening a multi-gigabyte checkpoint costs no memory until tensors
// are read; elsewhere it falls back to reading the file into memory. Float32
// and Int32 always return fresh, properly aligned slices (the mapping is never
// reinterpreted as []float32, since tensors need not be 4-byte aligned), and
// Raw returns a copy; only View hands out the mapped bytes themselves. One
// caveat of mmap: if another process truncates the file while it is open,
// touching the lost pages kills the process with SIGBUS; checkpoints are
// expected to be immutable while served.
//
// Deliberate differences from the reference implementation: gaps between
// tensors and bytes after the last tensor are tolerated (the Rust crate
// requires the buffer to be exactly covered), and the sub-byte dtypes F4,
// F6_E2M3 and F6_E3M2 are not supported (rejected with ErrDType).
//
// Sharded checkpoints (model.safetensors.index.json with a weight_map) are
// opened as one Set by OpenDir; shard names must stay inside the folder and
// every tensor must be exactly where the index says.
//
// Writing (Encode, Write) follows the Hugging Face library: keys sorted,
// data ordered by dtype size (largest first) then name so that every tensor
// stays aligned to its element size, header padded with spaces to a multiple
// of 8 bytes. Write goes through a temporary file, fsync and rename, so a
// crash never leaves a half-written file under the final name.
package safetensors
