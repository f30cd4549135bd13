package serve

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"

	"roe/library"
	"roe/model"
	"roe/retriever"
)

// ErrOtherBase says experts to import were trained on another base model than the one served.
var ErrOtherBase = errors.New("the experts were trained on another base model")

// ImportExperts adds every expert of fsys (a folder per expert, as `roe experts
// export` writes it, at the path of its name) to lib, embedding their instances
// with emb unless emb made the stored embeddings, and returns how many. All are
// checked before any is added: experts trained on another base model than m are
// refused with ErrOtherBase.
func ImportExperts(lib *library.Library, m *model.Model, emb retriever.Embedder, format string, fsys fs.FS) (int, error) {
	var dirs []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == library.FileExpert {
			dirs = append(dirs, path.Dir(p))
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	sort.Strings(dirs)
	xs := make([]*library.Expert, 0, len(dirs))
	for _, dir := range dirs {
		x, err := library.ImportFS(fsys, dir)
		if err != nil {
			return 0, err
		}
		if x.Name != dir {
			return 0, fmt.Errorf("%w: the expert in folder %s is named %q", library.ErrInvalid, dir, x.Name)
		}
		if x.BaseFingerprint != m.Fingerprint() {
			return 0, fmt.Errorf("%w (%s was trained on base %.12s, serving %.12s)", ErrOtherBase, x.Name, x.BaseFingerprint, m.Fingerprint())
		}
		if _, err := x.LoRA(m.Config); err != nil {
			return 0, fmt.Errorf("starter expert %s: %w", x.Name, err)
		}
		xs = append(xs, x)
	}
	for _, x := range xs {
		if x.Embedder != emb.ID() {
			for i := range x.Instances {
				x.Instances[i].Embedding = nil
			}
		}
		if x.Instances, err = PrepareInstances(emb, format, x.Instances, library.DefaultSampleSize, 1); err != nil {
			return 0, fmt.Errorf("starter expert %s: %w", x.Name, err)
		}
		x.Embedder = emb.ID()
		if _, err := lib.Add(x); err != nil {
			return 0, fmt.Errorf("starter expert %s: %w", x.Name, err)
		}
	}
	return len(xs), nil
}

// BuildIndex loads every expert's instances into a fresh index (re-embedding
// those made by another embedder) and, when asked, a BM25 index.
func BuildIndex(lib *library.Library, emb retriever.Embedder, format string, norm retriever.Normalization, lexical bool) (*retriever.Index, *retriever.Lexical, error) {
	ms, err := lib.List()
	if err != nil {
		return nil, nil, err
	}
	ix := retriever.NewIndex(emb.Dim(), norm)
	var lx *retriever.Lexical
	if lexical {
		if lx, err = retriever.NewLexical(); err != nil {
			return nil, nil, err
		}
	}
	for _, m := range ms {
		ins, err := lib.Instances(m.Name)
		if err != nil {
			return nil, nil, err
		}
		if len(ins) == 0 {
			continue
		}
		if m.Embedder != emb.ID() {
			for i := range ins {
				ins[i].Embedding = nil
			}
			if ins, err = PrepareInstances(emb, format, ins, 0, 0); err != nil {
				return nil, nil, err
			}
		}
		texts := make([]string, len(ins))
		embs := make([][]float32, len(ins))
		for i, in := range ins {
			texts[i], embs[i] = in.Text, in.Embedding
		}
		if err := ix.Add(m.Name, embs, texts); err != nil {
			return nil, nil, err
		}
		if lx != nil {
			if err := lx.Add(m.Name, texts, m.Description); err != nil {
				return nil, nil, err
			}
		}
	}
	return ix, lx, nil
}
