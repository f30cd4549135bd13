package gguf

import (
	"fmt"
	"strings"
)

// A model split by llama.cpp's gguf-split is a set of files named
// PREFIX-00001-of-0000N.gguf … PREFIX-0000N-of-0000N.gguf: the first holds
// the metadata, each part some of the tensors, and every part says
// split.no (0-based) and split.count; the first says split.tensors.count.

// OpenSplit opens a GGUF file and, when it is the first part of a split
// model, every further part beside it, as llama.cpp does given the first
// part. The File then holds every part's tensors (Tensors, Tensor, Data,
// Float32) and Close closes all the parts. A single file opens as Open.
func OpenSplit(path string) (*File, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	if err := f.openParts(path); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func (f *File) openParts(path string) error {
	n, err := f.OptUint(splitCount, 1)
	if err != nil || n <= 1 {
		return err
	}
	no, err := f.OptUint(splitNo, 0)
	if err != nil {
		return err
	}
	first := fmt.Sprintf("-%05d-of-%05d.gguf", 1, n)
	if no != 0 {
		return f.errf(ErrFormat, "part %d of a model split into %d files: open the first, PREFIX%s", no+1, n, first)
	}
	prefix, ok := strings.CutSuffix(path, first)
	if !ok {
		return f.errf(ErrFormat, "the first part of a model split into %d files is named PREFIX%s", n, first)
	}
	if n > 9999 {
		return f.errf(ErrFormat, "%s %d", splitCount, n)
	}
	f.partOf = map[string]*File{}
	for i := uint64(2); i <= n; i++ {
		p, err := Open(fmt.Sprintf("%s-%05d-of-%05d.gguf", prefix, i, n))
		if err != nil {
			return fmt.Errorf("part %d of %d: %w", i, n, err)
		}
		f.parts = append(f.parts, p) // closed with f from here on
		pn, err := p.OptUint(splitCount, 0)
		if err != nil {
			return err
		}
		pno, err := p.OptUint(splitNo, 0)
		if err != nil {
			return err
		}
		if pn != n || pno != i-1 {
			return p.errf(ErrFormat, "says it is part %d of %d, not %d of %d", pno+1, pn, i, n)
		}
		for j, t := range p.tensors {
			if _, dup := f.names[t.Name]; dup || f.partOf[t.Name] != nil {
				return p.errf(ErrFormat, "tensor %q is in two parts", t.Name)
			}
			f.partOf[t.Name] = p
			f.Tensors = append(f.Tensors, p.tensors[j].clone())
		}
	}
	if want, err := f.OptUint(splitTensors, uint64(len(f.Tensors))); err != nil {
		return err
	} else if want != uint64(len(f.Tensors)) {
		return f.errf(ErrFormat, "%s is %d; the %d parts hold %d tensors", splitTensors, want, n, len(f.Tensors))
	}
	return nil
}

// Whole reports whether f holds all of its model's tensors: false for a
// part of a split model opened without the others (Open, not OpenSplit).
func (f *File) Whole() bool {
	n, err := f.OptUint(splitCount, 1)
	return err == nil && (n <= 1 || f.partOf != nil)
}

const (
	splitNo      = "split.no"
	splitCount   = "split.count"
	splitTensors = "split.tensors.count"
)
