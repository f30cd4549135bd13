package library

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"roe/internal/atomicfile"
	"strings"

	"roe/model/safetensors"
)

// Files of an exported expert folder.
const (
	FileAdapterConfig = "adapter_config.json"
	FileAdapterModel  = "adapter_model.safetensors"
	FileInstances     = "instances.jsonl"
	FileExpert        = "expert.json"
)

// Export writes an expert as a folder: a PEFT adapter (adapter_config.json,
// adapter_model.safetensors), instances.jsonl (one JSON object per line:
// input, answer_choices, target, embedding) and expert.json (the manifest).
// Each file is written atomically; dir is created if needed.
func (l *Library) Export(name, dir string) error {
	e, err := l.Get(name)
	if err != nil {
		return err
	}
	return WriteDir(e, dir)
}

// WriteDir writes e as Export does.
func WriteDir(e *Expert, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("export %s: %w", e.Name, err)
	}
	if err := safetensors.Write(filepath.Join(dir, FileAdapterModel), e.Tensors, map[string]string{"format": "pt"}); err != nil {
		return fmt.Errorf("export %s: %w", e.Name, err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, FileAdapterConfig), e.AdapterConfig); err != nil {
		return fmt.Errorf("export %s: %w", e.Name, err)
	}
	return WriteInstances(e, dir)
}

// WriteZip writes e as a zip archive of the files Export writes, in a
// folder named after the expert (slashes become "-"): a download.
func WriteZip(e *Expert, w io.Writer) error {
	zw := zip.NewWriter(w)
	dir := strings.ReplaceAll(e.Name, "/", "-") + "/"
	add := func(name string, write func(io.Writer) error) error {
		f, err := zw.CreateHeader(&zip.FileHeader{Name: dir + name, Method: zip.Deflate, Modified: e.Created})
		if err != nil {
			return err
		}
		return write(f)
	}
	ins, man, err := instanceFiles(e)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name  string
		write func(io.Writer) error
	}{
		{FileAdapterConfig, func(w io.Writer) error { _, err := w.Write(e.AdapterConfig); return err }},
		{FileAdapterModel, func(w io.Writer) error { return safetensors.Encode(w, e.Tensors, map[string]string{"format": "pt"}) }},
		{FileInstances, func(w io.Writer) error { _, err := w.Write(ins); return err }},
		{FileExpert, func(w io.Writer) error { _, err := w.Write(man); return err }},
	} {
		if err := add(f.name, f.write); err != nil {
			return fmt.Errorf("export %s: %w", e.Name, err)
		}
	}
	return zw.Close()
}

// instanceFiles are e's instances.jsonl and expert.json.
func instanceFiles(e *Expert) (ins, man []byte, err error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	for _, in := range e.Instances {
		if err := enc.Encode(in); err != nil {
			return nil, nil, fmt.Errorf("export %s: %w", e.Name, err)
		}
	}
	m, err := json.MarshalIndent(e.Manifest, "", "  ")
	if err != nil {
		return nil, nil, fmt.Errorf("export %s: %w", e.Name, err)
	}
	return b.Bytes(), append(m, '\n'), nil
}

// WriteInstances writes e's instances.jsonl and expert.json into the expert
// folder dir (as WriteDir does), leaving its adapter files as they are: how a
// folder's instances are re-embedded for another embedder.
func WriteInstances(e *Expert, dir string) error {
	ins, man, err := instanceFiles(e)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		b    []byte
	}{{FileInstances, ins}, {FileExpert, man}} {
		if err := atomicfile.WriteFile(filepath.Join(dir, f.name), f.b); err != nil {
			return fmt.Errorf("export %s: %w", e.Name, err)
		}
	}
	return nil
}

// ImportDir reads an expert folder as Export writes it, or a plain PEFT folder
// (adapter_config.json + adapter_model.safetensors) with an optional
// instances.jsonl and no expert.json: then the expert is named after the
// folder, of kind imported. F16 and BF16 tensors are widened to F32. A line of
// instances.jsonl may lack its embedding: the caller embeds those before Add.
// ID and Created from expert.json are kept but Add assigns new ones.
func ImportDir(dir string) (*Expert, error) {
	config, tensors, err := readPEFT(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: import %s: %w", ErrInvalid, dir, err)
	}
	e := &Expert{AdapterConfig: config, Tensors: tensors}
	switch b, err := os.ReadFile(filepath.Join(dir, FileExpert)); {
	case err == nil:
		if err := json.Unmarshal(b, &e.Manifest); err != nil {
			return nil, fmt.Errorf("%w: import %s: %w", ErrInvalid, filepath.Join(dir, FileExpert), err)
		}
	case errors.Is(err, fs.ErrNotExist):
		abs, _ := filepath.Abs(dir)
		e.Name, e.Kind = filepath.Base(abs), KindImported
	default:
		return nil, fmt.Errorf("import %s: %w", dir, err)
	}
	path := filepath.Join(dir, FileInstances)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return e, nil
	}
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", dir, err)
	}
	defer f.Close()
	if e.Instances, err = ReadInstances(f, path); err != nil {
		return nil, err
	}
	return e, nil
}

// ImportFS reads the expert folder dir of fsys (an embed.FS, say) as ImportDir
// reads a folder on disk.
func ImportFS(fsys fs.FS, dir string) (*Expert, error) {
	file := func(name string) string { return path.Join(dir, name) }
	config, err := fs.ReadFile(fsys, file(FileAdapterConfig))
	if err != nil {
		return nil, fmt.Errorf("%w: import %s: %w", ErrInvalid, dir, err)
	}
	b, err := fs.ReadFile(fsys, file(FileAdapterModel))
	if err != nil {
		return nil, fmt.Errorf("%w: import %s: %w", ErrInvalid, dir, err)
	}
	st, err := safetensors.FromBytes(file(FileAdapterModel), b)
	if err != nil {
		return nil, fmt.Errorf("%w: import %s: %w", ErrInvalid, dir, err)
	}
	defer st.Close()
	e := &Expert{AdapterConfig: config}
	for _, info := range st.Tensors() {
		v, err := st.Float32(info.Name)
		if err != nil {
			return nil, fmt.Errorf("%w: import %s: %w", ErrInvalid, file(FileAdapterModel), err)
		}
		e.Tensors = append(e.Tensors, safetensors.F32Tensor(info.Name, info.Shape, v))
	}
	switch b, err := fs.ReadFile(fsys, file(FileExpert)); {
	case err == nil:
		if err := json.Unmarshal(b, &e.Manifest); err != nil {
			return nil, fmt.Errorf("%w: import %s: %w", ErrInvalid, file(FileExpert), err)
		}
	case errors.Is(err, fs.ErrNotExist):
		e.Name, e.Kind = path.Base(dir), KindImported
	default:
		return nil, fmt.Errorf("import %s: %w", dir, err)
	}
	f, err := fsys.Open(file(FileInstances))
	if errors.Is(err, fs.ErrNotExist) {
		return e, nil
	}
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", dir, err)
	}
	defer f.Close()
	if e.Instances, err = ReadInstances(f, file(FileInstances)); err != nil {
		return nil, err
	}
	return e, nil
}
