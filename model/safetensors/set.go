package safetensors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Standard file names of a Hugging Face model folder.
const (
	SingleFileName = "model.safetensors"
	IndexFileName  = "model.safetensors.index.json"
)

// Set is the tensors of a model folder, from one file or from several
// shards, presented as one collection.
type Set struct {
	dir   string
	files []*File          // shards in weight_map order of first use
	owner map[string]*File // tensor name -> file holding it
	infos []TensorInfo     // sorted by name
	meta  map[string]any   // index "metadata" (nil for a single file)
}

// OpenDir opens a model folder: model.safetensors if present (as Hugging
// Face transformers prefers it), else the shards named by
// model.safetensors.index.json.
func OpenDir(dir string) (*Set, error) {
	single := filepath.Join(dir, SingleFileName)
	if _, err := os.Stat(single); err == nil {
		f, err := Open(single)
		if err != nil {
			return nil, err
		}
		s := &Set{dir: dir, files: []*File{f}, owner: map[string]*File{}}
		for _, t := range f.infos {
			s.owner[t.Name] = f
		}
		s.infos = f.Tensors()
		return s, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	indexPath := filepath.Join(dir, IndexFileName)
	b, err := os.ReadFile(indexPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: neither %s nor %s: %w", dir, SingleFileName, IndexFileName, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return openIndex(dir, IndexFileName, b)
}

// index is the parsed model.safetensors.index.json.
type index struct {
	metadata  map[string]any
	weightMap []indexEntry // in file order
}

type indexEntry struct{ tensor, file string }

// parseIndex parses an index file, rejecting duplicate weight_map keys
// (json.Unmarshal would silently keep the last one).
func parseIndex(name string, b []byte) (*index, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %s: %w", name, fmt.Sprintf(format, args...), ErrIndex)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, bad("invalid JSON: %v", err)
	}
	if top == nil {
		return nil, bad("not a JSON object")
	}
	idx := &index{}
	if m, ok := top["metadata"]; ok && string(m) != "null" {
		if err := json.Unmarshal(m, &idx.metadata); err != nil {
			return nil, bad("metadata is not an object: %v", err)
		}
	}
	wm, ok := top["weight_map"]
	if !ok {
		return nil, bad("no weight_map")
	}
	dec := json.NewDecoder(bytes.NewReader(wm))
	tok, err := dec.Token()
	if d, isDelim := tok.(json.Delim); err != nil || !isDelim || d != '{' {
		return nil, bad("weight_map is not an object")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, bad("weight_map: %v", err)
		}
		k, _ := tok.(string)
		tok, err = dec.Token()
		if err != nil {
			return nil, bad("weight_map: %v", err)
		}
		v, isStr := tok.(string)
		if !isStr {
			return nil, bad("weight_map[%q] is not a file name string", k)
		}
		if seen[k] {
			return nil, fmt.Errorf("%s: weight_map: duplicate tensor %q: %w: %w", name, k, ErrIndex, ErrDuplicate)
		}
		seen[k] = true
		idx.weightMap = append(idx.weightMap, indexEntry{k, v})
	}
	if _, err := dec.Token(); err != nil && err != io.EOF {
		return nil, bad("weight_map: %v", err)
	}
	if len(idx.weightMap) == 0 {
		return nil, bad("weight_map is empty")
	}
	return idx, nil
}

// openIndex opens the shards of a parsed index and checks that they agree
// with it exactly: a tensor present in a shard but missing from weight_map
// is an error too, since silently dropping it (say lm_head) could make a
// loader fall back to different behaviour (tied embeddings).
func openIndex(dir, name string, b []byte) (_ *Set, err error) {
	idx, err := parseIndex(name, b)
	if err != nil {
		return nil, err
	}
	s := &Set{dir: dir, owner: map[string]*File{}, meta: idx.metadata}
	defer func() {
		if err != nil {
			s.Close() // release the shards opened so far
		}
	}()
	shards := map[string]*File{}
	for _, e := range idx.weightMap {
		f, ok := shards[e.file]
		if !ok {
			// Lexical check only: symlinks are allowed because the
			// Hugging Face cache links snapshot files to blobs elsewhere.
			if !filepath.IsLocal(e.file) {
				return nil, fmt.Errorf("%s: weight_map[%q]: shard %q is outside the model folder: %w", name, e.tensor, e.file, ErrIndex)
			}
			f, err = Open(filepath.Join(dir, e.file))
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil, fmt.Errorf("%s: weight_map[%q]: shard %q: %w: %w", name, e.tensor, e.file, ErrIndex, ErrNotFound)
				}
				return nil, fmt.Errorf("%s: shard %q: %w", name, e.file, err)
			}
			shards[e.file] = f
			s.files = append(s.files, f)
		}
		t, ok := f.Info(e.tensor)
		if !ok {
			return nil, fmt.Errorf("%s: weight_map[%q]: tensor not in shard %q: %w: %w", name, e.tensor, e.file, ErrIndex, ErrNotFound)
		}
		s.owner[e.tensor] = f
		s.infos = append(s.infos, t)
	}
	for _, f := range s.files {
		for _, t := range f.infos {
			if s.owner[t.Name] != f {
				return nil, fmt.Errorf("%s: shard %q holds tensor %q, which weight_map does not assign to it: %w", name, f.name, t.Name, ErrIndex)
			}
		}
	}
	sortInfos(s.infos)
	return s, nil
}

// Close closes every shard and returns the first error.
func (s *Set) Close() error {
	var first error
	for _, f := range s.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Dir returns the folder the set was opened from.
func (s *Set) Dir() string { return s.dir }

// Files returns the open files (one, or the shards).
func (s *Set) Files() []*File { return append([]*File(nil), s.files...) }

// IndexMetadata returns the index's "metadata" object (nil for a single file).
func (s *Set) IndexMetadata() map[string]any { return s.meta }

// Tensors returns all tensors sorted by name; offsets are relative to the
// data buffer of the file that holds each one (see File).
func (s *Set) Tensors() []TensorInfo {
	out := make([]TensorInfo, len(s.infos))
	for i, t := range s.infos {
		out[i] = t.clone()
	}
	return out
}

// Info returns the description of one tensor.
func (s *Set) Info(name string) (TensorInfo, bool) {
	f, ok := s.owner[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.Info(name)
}

// File returns the path of the file holding the tensor, for error messages
// ("" if there is no such tensor).
func (s *Set) File(name string) string {
	if f, ok := s.owner[name]; ok {
		return f.path
	}
	return ""
}

// fileFor returns the file holding a tensor or an ErrNotFound error.
func (s *Set) fileFor(name string) (*File, error) {
	f, ok := s.owner[name]
	if !ok {
		return nil, fmt.Errorf("%s: tensor %q: %w", s.dir, name, ErrNotFound)
	}
	return f, nil
}

// Float32 returns the tensor converted to float32 (see File.Float32).
func (s *Set) Float32(name string) ([]float32, error) {
	f, err := s.fileFor(name)
	if err != nil {
		return nil, err
	}
	return f.Float32(name)
}

// Int32 returns the tensor as int32 (see File.Int32).
func (s *Set) Int32(name string) ([]int32, error) {
	f, err := s.fileFor(name)
	if err != nil {
		return nil, err
	}
	return f.Int32(name)
}

// Raw returns a copy of the tensor's stored bytes.
func (s *Set) Raw(name string) ([]byte, error) {
	f, err := s.fileFor(name)
	if err != nil {
		return nil, err
	}
	return f.Raw(name)
}
