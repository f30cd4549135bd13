package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"roe/kernels"
	"roe/model"
	"roe/model/gguf"
	"roe/models"
)

// runModelQuantize is `roe model quantize` and `roe model export-gguf`: it
// writes a model as a llama.cpp GGUF file of one file type (export-gguf
// takes the float types only).
func runModelQuantize(args []string, stdout io.Writer, export bool) error {
	name, types, def := "model quantize", model.GGUFFileTypes(), ""
	if export {
		name, types, def = "model export-gguf", []string{"f32", "f16", "bf16"}, "f32"
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	src := modelVar(fs, "Hugging Face model folder, a GGUF file, ollama:NAME[:TAG], or an embedded model: "+strings.Join(models.Names(), ", ")+
		" (default: the embedded "+models.DefaultName+")")
	typ := fs.String("type", def, "file type: "+strings.Join(types, ", ")+" (llama.cpp's mixes: *_s, *_m)")
	out := fs.String("out", "", "output `file` (.gguf)")
	gname := fs.String("name", "", "general.name (default: the model's name)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if *typ == "" || *out == "" {
		return usagef("usage: roe %s [--model DIR|FILE.gguf|NAME] --type %s --out FILE.gguf", name, strings.Join(types, "|"))
	}
	ft, err := model.ParseGGUFFileType(*typ)
	if err != nil || !slices.Contains(types, ft.Name) {
		return usagef("--type %q (one of %s)", *typ, strings.Join(types, ", "))
	}
	if !strings.EqualFold(filepath.Ext(*out), ".gguf") {
		return usagef("--out %q must name a .gguf file", *out)
	}
	m, vocab, label, release, err := loadForGGUF(*src)
	if err != nil {
		return err
	}
	defer release()
	if *gname != "" {
		label = *gname
	}
	plan, err := model.GGUFPlan(m.Config, ft)
	if err != nil {
		return err
	}
	if err := model.SaveGGUF(*out, m, model.GGUFWriteOptions{FileType: ft, Name: label, Vocab: vocab}); err != nil {
		return err
	}
	st, err := os.Stat(*out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: %s, %d tensors (%s), %.2f MiB\n", *out, strings.ToUpper(ft.Name), len(plan), planSummary(plan), float64(st.Size())/(1<<20))
	return nil
}

// loadForGGUF loads the model to write, float32 (a GGUF keeps its blocks),
// with its tokenizer keys: built from tokenizer.json, or copied from a GGUF
// source. release closes a GGUF source after writing.
func loadForGGUF(src string) (m *model.Model, vocab []gguf.KV, label string, release func(), err error) {
	release = func() {}
	if model.IsGGUF(src) {
		m, f, err := model.LoadGGUF(src, model.LoadOptions{})
		if err != nil {
			return nil, nil, "", release, err
		}
		for _, kv := range f.KVs() {
			if strings.HasPrefix(kv.Key, "tokenizer.") {
				vocab = append(vocab, kv)
			}
		}
		label, _ = f.OptString("general.name", "")
		if label == "" {
			label = strings.TrimSuffix(filepath.Base(src), filepath.Ext(src))
		}
		return m, vocab, label, func() { f.Close() }, nil
	}
	tok, err := loadTokenizer(src)
	if err != nil {
		return nil, nil, "", release, err
	}
	if fsys, ok := embeddedModel(src); ok {
		m, err = model.LoadFS(fsys)
	} else {
		m, err = model.Load(src)
	}
	if err != nil {
		return nil, nil, "", release, err
	}
	vocab, err = model.GGUFVocab(tok, m.Config)
	if err != nil {
		return nil, nil, "", release, err
	}
	return m, vocab, modelID(src), release, nil
}

// planSummary counts tensor types, largest count first, and the fallbacks
// for rows that are not whole K-quant blocks.
func planSummary(plan []model.GGUFTensor) string {
	count := map[kernels.QType]int{}
	falls := 0
	for _, t := range plan {
		count[t.Type]++
		if t.Fallback != 0 {
			falls++
		}
	}
	types := make([]kernels.QType, 0, len(count))
	for t := range count {
		types = append(types, t)
	}
	slices.SortFunc(types, func(a, b kernels.QType) int {
		if count[a] != count[b] {
			return count[b] - count[a]
		}
		return strings.Compare(a.String(), b.String())
	})
	parts := make([]string, len(types))
	for i, t := range types {
		parts[i] = fmt.Sprintf("%s %d", t, count[t])
	}
	s := strings.Join(parts, ", ")
	if falls > 0 {
		s += fmt.Sprintf("; %d with rows not whole blocks of their type fell back", falls)
	}
	return s
}
