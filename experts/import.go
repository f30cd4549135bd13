package experts

import (
	"fmt"
	"io/fs"
	"path"
	"sort"

	"roe/library"
	"roe/model"
	"roe/retriever"
)

// ReadFS reads every expert of fsys (a folder per expert, as `roe experts
// export` writes it, at the path of its name), checking each against base:
// experts trained on another base model are refused with ErrOtherBase.
func ReadFS(fsys fs.FS, base *model.Model) ([]*library.Expert, error) {
	var dirs []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == library.FileExpert {
			dirs = append(dirs, path.Dir(p))
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(dirs)
	xs := make([]*library.Expert, 0, len(dirs))
	for _, dir := range dirs {
		x, err := library.ImportFS(fsys, dir)
		if err != nil {
			return nil, err
		}
		if x.Name != dir {
			return nil, fmt.Errorf("%w: the expert in folder %s is named %q", library.ErrInvalid, dir, x.Name)
		}
		if x.BaseFingerprint != base.Fingerprint() {
			return nil, fmt.Errorf("%w (%s was trained on base %.12s, serving %.12s)", ErrOtherBase, x.Name, x.BaseFingerprint, base.Fingerprint())
		}
		if _, err := x.LoRA(base.Config); err != nil {
			return nil, fmt.Errorf("expert %s: %w", x.Name, err)
		}
		xs = append(xs, x)
	}
	return xs, nil
}

// ImportFS adds the experts of fsys (see ReadFS) that lib does not hold yet,
// embedding their instances with emb unless emb made the stored embeddings,
// and returns how many it added. All are checked before any is added. An
// import cut short (a kill) is finished by calling it again: each expert is
// added whole or not at all, and those already there are skipped.
func ImportFS(lib *library.Library, base *model.Model, emb retriever.Embedder, format string, fsys fs.FS) (int, error) {
	xs, err := ReadFS(fsys, base)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, x := range xs {
		if _, err := lib.Manifest(x.Name); err == nil {
			continue
		}
		if err := Prepare(x, base, emb, format, AddOptions{}); err != nil {
			return n, fmt.Errorf("expert %s: %w", x.Name, err)
		}
		if _, err := lib.Add(x); err != nil {
			return n, fmt.Errorf("expert %s: %w", x.Name, err)
		}
		n++
	}
	return n, nil
}

// settingStarter records that the starter import of a library finished.
const settingStarter = "starter-imported"

// ImportStarter imports the starter experts of fsys into lib unless an
// earlier import finished (then experts the user removed stay removed). A
// library that holds experts of its own and no record of an import (made
// before imports were recorded, or by hand) is left as it is. It returns how
// many experts it added.
func ImportStarter(lib *library.Library, base *model.Model, emb retriever.Embedder, format string, fsys fs.FS) (int, error) {
	if _, done, err := lib.Setting(settingStarter); err != nil || done {
		return 0, err
	}
	xs, err := ReadFS(fsys, base)
	if err != nil {
		return 0, err
	}
	starter := make(map[string]bool, len(xs))
	for _, x := range xs {
		starter[x.Name] = true
	}
	ms, err := lib.List()
	if err != nil {
		return 0, err
	}
	for _, m := range ms {
		if !starter[m.Name] {
			return 0, lib.SetSetting(settingStarter, "skipped: the library had experts of its own")
		}
	}
	n, err := ImportFS(lib, base, emb, format, fsys)
	if err != nil {
		return n, err
	}
	return n, lib.SetSetting(settingStarter, fmt.Sprintf("%d experts", len(xs)))
}

// Searchable is the routing of a library that no server holds (the CLI,
// evaluations): the dense index, the experts' task signatures and typical
// scores and, when asked, a BM25 index. It routes as a Catalog ranks, without
// the fallback.
type Searchable struct {
	*retriever.Index
	Lexical    *retriever.Lexical    // nil unless asked
	Signatures *retriever.Signatures // nil when SignatureWeight < 0
	// SignatureWeight is RouteOptions.SignatureWeight [retriever.DefaultSignatureWeight].
	SignatureWeight float64
	Typical         map[string]float64 // nil when TypicalWeight < 0
	// TypicalWeight is RouteOptions.TypicalWeight [retriever.DefaultTypicalWeight].
	TypicalWeight   float64
	SignatureBoosts map[string]float64 // retriever.SignatureBoosts of Typical
}

// Options returns o routed as a Catalog routes: the signatures, typical
// scores (and BM25) added, with texts (the queries' formatted instance
// texts, one per query; nil when the caller sets them later, as
// retriever.EvalRouting does).
func (s *Searchable) Options(o retriever.RouteOptions, texts []string) retriever.RouteOptions {
	if s.Signatures != nil {
		o.Signatures, o.SignatureWeight = s.Signatures, s.SignatureWeight
	}
	if s.Typical != nil {
		o.Typical, o.TypicalWeight, o.SignatureBoosts = s.Typical, s.TypicalWeight, s.SignatureBoosts
	}
	if s.Lexical != nil {
		o.Lexical = s.Lexical
	}
	if texts != nil {
		o.QueryTexts = texts
	}
	return o
}

// Close releases the BM25 index.
func (s *Searchable) Close() {
	if s.Lexical != nil {
		s.Lexical.Close()
	}
}

// IndexOptions configure BuildIndex; zero values take the defaults in brackets.
type IndexOptions struct {
	Format        string                  // instance format [retriever.DefaultInstanceFormat]
	Normalization retriever.Normalization // [the embedder's: retriever.NormalizationOf]
	Lexical       bool                    // build a BM25 index too
	// SignatureWeight and TypicalWeight are Config's [their defaults; negative: none].
	SignatureWeight float64
	TypicalWeight   float64
}

// BuildIndex loads every expert's instances into a fresh index (re-embedding
// those made by another embedder), their task signatures and typical scores
// and, when asked, a BM25 index.
func BuildIndex(lib *library.Library, emb retriever.Embedder, o IndexOptions) (*Searchable, error) {
	if o.Format == "" {
		o.Format = retriever.DefaultInstanceFormat
	}
	if o.SignatureWeight == 0 {
		o.SignatureWeight = retriever.DefaultSignatureWeight
	}
	if o.TypicalWeight == 0 {
		o.TypicalWeight = retriever.DefaultTypicalWeight
	}
	ix, lx, sigs, cals, err := buildIndex(lib, emb, o.Format, o.Normalization, o.Lexical, o.SignatureWeight > 0, o.TypicalWeight > 0)
	if err != nil {
		return nil, err
	}
	s := &Searchable{Index: ix, Lexical: lx, Signatures: sigs, SignatureWeight: o.SignatureWeight, TypicalWeight: o.TypicalWeight}
	if cals != nil {
		s.Typical = typicalScores(ix, sigs, o.SignatureWeight, cals)
		s.SignatureBoosts = retriever.SignatureBoosts(s.Typical, ix.Copied())
	}
	return s, nil
}

// buildIndex loads the library; cals (the experts' calibration queries) only
// when calibrate.
func buildIndex(lib *library.Library, emb retriever.Embedder, format string, norm retriever.Normalization, lexical, signatures, calibrate bool) (
	ix *retriever.Index, lx *retriever.Lexical, sigs *retriever.Signatures, cals map[string]calibration, err error) {
	ms, err := lib.List()
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if calibrate {
		cals = map[string]calibration{}
	}
	if signatures {
		sigs = retriever.NewSignatures()
	}
	if norm == "" {
		norm = retriever.NormalizationOf(emb)
	}
	ix = retriever.NewIndex(emb.Dim(), norm)
	if lexical {
		if lx, err = retriever.NewLexical(); err != nil {
			return nil, nil, nil, nil, err
		}
	}
	for _, m := range ms {
		ins, err := lib.Instances(m.Name)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		if len(ins) == 0 {
			continue
		}
		if m.Embedder != emb.ID() || m.Dim != emb.Dim() {
			for i := range ins {
				ins[i].Embedding = nil
			}
			if ins, err = PrepareInstances(emb, format, ins, 0, 0); err != nil {
				return nil, nil, nil, nil, err
			}
		}
		texts := make([]string, len(ins))
		embs := make([][]float32, len(ins))
		for i, in := range ins {
			texts[i], embs[i] = in.Text, in.Embedding
		}
		if sigs != nil {
			sigs.Put(m.Name, formatInstances(format, ins))
		}
		if err := ix.Add(m.Name, embs, texts); err != nil {
			return nil, nil, nil, nil, err
		}
		if lx != nil {
			if err := lx.Add(m.Name, texts, m.Description); err != nil {
				return nil, nil, nil, nil, err
			}
		}
		if cals != nil {
			if cals[m.Name], err = calibrationQueries(emb, format, m.Name, ins); err != nil {
				return nil, nil, nil, nil, err
			}
		}
	}
	return ix, lx, sigs, cals, nil
}
