package experts

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"

	"roe/adapters"
	"roe/library"
	"roe/model"
	"roe/retriever"
)

// AddOptions say how an expert's instances are kept.
type AddOptions struct {
	Sample int    // instances kept (S); more are sampled down [library.DefaultSampleSize]
	Seed   uint64 // sampling seed [1]
	// NameOnly lets Catalog.Add store an expert without instances: it is
	// served by name (and in compositions) but auto routing never picks
	// it until SetInstances gives it some.
	NameOnly bool
	// Progress, when set, is told how many of the instances are embedded,
	// in batches of embedBatch.
	Progress func(done, total int)
}

// embedBatch is how many instances are embedded at once when progress is shown.
const embedBatch = 32

// CheckName refuses names that an expert cannot have because a model id
// already means something else: Auto and the base model's id.
func CheckName(name, baseID string) error {
	if name == "" {
		return invalid("name", "an expert needs a name")
	}
	if strings.EqualFold(name, Auto) || (baseID != "" && name == baseID) {
		return &FieldError{Field: "name", Err: ErrReserved,
			Msg: fmt.Sprintf("the name %q is reserved: it is a model id (%q routes, %q is the base model)", name, Auto, baseID)}
	}
	return nil
}

// Prepare readies x for the library on base: it checks the adapter against
// the base model, keeps the instances' embeddings only when x.Embedder says
// emb made them (embeddings from elsewhere are dropped and remade), samples
// the instances down to o.Sample and embeds those without an embedding.
func Prepare(x *library.Expert, base *model.Model, emb retriever.Embedder, format string, o AddOptions) error {
	if x.BaseFingerprint != "" && x.BaseFingerprint != base.Fingerprint() {
		return fmt.Errorf("%w (%s was trained on base %.12s, serving %.12s)", ErrOtherBase, x.Name, x.BaseFingerprint, base.Fingerprint())
	}
	if _, err := x.LoRA(base.Config); err != nil {
		return err
	}
	if x.Embedder != emb.ID() {
		for i := range x.Instances {
			x.Instances[i].Embedding = nil
		}
	}
	sample := o.Sample
	if sample == 0 {
		sample = library.DefaultSampleSize
	}
	seed := o.Seed
	if seed == 0 {
		seed = 1
	}
	ins, err := prepareInstances(emb, format, x.Instances, sample, seed, o.Progress)
	if err != nil {
		return err
	}
	for i, in := range ins {
		if err := checkEmbedding(in.Embedding, emb.Dim()); err != nil {
			return fmt.Errorf("%w: instance %d: %v", library.ErrInvalid, i+1, err)
		}
	}
	x.Instances = ins
	x.BaseFingerprint, x.Embedder = base.Fingerprint(), emb.ID()
	return nil
}

// checkEmbedding refuses a vector of another dimension than the embedder's
// (the library refuses non-finite, zero and absurd values on Add).
func checkEmbedding(v []float32, dim int) error {
	if len(v) != dim {
		return fmt.Errorf("embedding of dimension %d, the embedder's is %d", len(v), dim)
	}
	return nil
}

// formatInstances writes instances as they are embedded and as their
// expert's task signature reads them (retriever.FormatInstance).
func formatInstances(format string, ins []library.Instance) []string {
	out := make([]string, len(ins))
	for i, in := range ins {
		out[i] = retriever.FormatInstance(format, in.Text, in.AnswerChoices)
	}
	return out
}

// PrepareInstances samples instances down to s (seeded) and embeds each one's
// formatted text (format: retriever.FormatInstance) where it has no embedding.
func PrepareInstances(emb retriever.Embedder, format string, ins []library.Instance, s int, seed uint64) ([]library.Instance, error) {
	return prepareInstances(emb, format, ins, s, seed, nil)
}

func prepareInstances(emb retriever.Embedder, format string, ins []library.Instance, s int, seed uint64, progress func(done, total int)) ([]library.Instance, error) {
	if s > 0 && len(ins) > s {
		r := rand.New(rand.NewPCG(seed, 0x1457))
		idx := r.Perm(len(ins))[:s]
		sort.Ints(idx)
		picked := make([]library.Instance, s)
		for i, j := range idx {
			picked[i] = ins[j]
		}
		ins = picked
	}
	var texts []string
	var at []int
	for i, in := range ins {
		if len(in.Embedding) == 0 {
			texts = append(texts, retriever.FormatInstance(format, in.Text, in.AnswerChoices))
			at = append(at, i)
		}
	}
	step := len(texts)
	if progress != nil {
		step = embedBatch
	}
	for lo := 0; lo < len(texts); lo += step {
		hi := min(lo+step, len(texts))
		embs, err := emb.Embed(texts[lo:hi])
		if err != nil {
			return nil, err
		}
		for j, i := range at[lo:hi] {
			ins[i].Embedding = embs[j]
		}
		if progress != nil {
			progress(hi, len(texts))
		}
	}
	return ins, nil
}

// Add stores an expert (uploaded, imported, trained or merged) and indexes
// it: it is routable when Add returns. See Prepare for what is checked and
// remade; nothing is stored when any check fails.
func (c *Catalog) Add(x *library.Expert, o AddOptions) (library.Manifest, error) {
	if err := CheckName(x.Name, c.cfg.BaseID); err != nil {
		return library.Manifest{}, err
	}
	if c.Has(x.Name) {
		return library.Manifest{}, fmt.Errorf("%w: %s", library.ErrExists, x.Name)
	}
	if len(x.Instances) == 0 && !o.NameOnly {
		return library.Manifest{}, invalid("instances.jsonl", "an expert needs at least one instance to be routable")
	}
	if err := Prepare(x, c.cfg.Base, c.cfg.Embedder, c.cfg.InstanceFormat, o); err != nil {
		return library.Manifest{}, err
	}
	m, err := c.cfg.Library.Add(x)
	if err != nil {
		return library.Manifest{}, err
	}
	return m, c.load(m)
}

// Replace stores x in place of the served expert of the same name (see
// library.Replace), checked and prepared as Add does. Requests that already
// chose the old version finish with it.
func (c *Catalog) Replace(x *library.Expert, o AddOptions) (library.Manifest, error) {
	if err := CheckName(x.Name, c.cfg.BaseID); err != nil {
		return library.Manifest{}, err
	}
	if !c.Has(x.Name) {
		return library.Manifest{}, notFound("name", "the expert %q does not exist", x.Name)
	}
	if len(x.Instances) == 0 && !o.NameOnly {
		return library.Manifest{}, invalid("instances.jsonl", "an expert needs at least one instance to be routable")
	}
	if err := Prepare(x, c.cfg.Base, c.cfg.Embedder, c.cfg.InstanceFormat, o); err != nil {
		return library.Manifest{}, err
	}
	m, err := c.cfg.Library.Replace(x)
	if err != nil {
		return library.Manifest{}, err
	}
	return m, c.load(m)
}

// SetInstances replaces an expert's instances (embedded here; embeddings
// that ins carry are remade), keeping its adapter and description: an
// expert added by name only becomes routable by content. Sample and Seed of
// o apply as for Add.
func (c *Catalog) SetInstances(name string, ins []library.Instance, o AddOptions) (library.Manifest, error) {
	if len(ins) == 0 {
		return library.Manifest{}, invalid("instances", "give at least one instance")
	}
	if !c.Has(name) {
		return library.Manifest{}, notFound("name", "the expert %q does not exist", name)
	}
	x, err := c.cfg.Library.Get(name)
	if err != nil {
		return library.Manifest{}, err
	}
	x.Instances, x.Embedder = ins, ""
	return c.Replace(x, o)
}

// Routable reports whether auto routing can pick the served expert name:
// whether it has instances.
func (c *Catalog) Routable(name string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	m, ok := c.manifests[name]
	return ok && m.NumInstances > 0
}

// Unroutable lists the served experts that auto routing cannot pick (no
// instances), by name.
func (c *Catalog) Unroutable() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []string
	for n, m := range c.manifests {
		if m.NumInstances == 0 {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// Remove deletes an expert from the library and stops serving it.
func (c *Catalog) Remove(name string) error {
	if err := c.cfg.Library.Remove(name); err != nil {
		return err
	}
	c.unload(name)
	return nil
}

// MergeSpec is a merged expert to store.
type MergeSpec struct {
	Name        string
	Description string
	Experts     []Ref
	Options     adapters.MergeOptions // Method (validated by MergeOptions), Density, Rank, T, Seed
}

// Merge stores a merged expert: its adapter is the merge of its sources, its
// instances the union of theirs (sampled to S). The merge's report (exact or
// compressed, with its error) is kept in the manifest's training metrics.
func (c *Catalog) Merge(s MergeSpec) (library.Manifest, error) {
	if err := CheckName(s.Name, c.cfg.BaseID); err != nil {
		return library.Manifest{}, err
	}
	if len(s.Experts) == 0 {
		return library.Manifest{}, invalid("experts", "experts must name at least one expert")
	}
	if err := checkRefs(s.Experts); err != nil {
		return library.Manifest{}, err
	}
	if c.Has(s.Name) {
		return library.Manifest{}, fmt.Errorf("%w: %s", library.ErrExists, s.Name)
	}
	var ls []*adapters.LoRA
	var ins []library.Instance
	var names []string
	var ws []float64
	for i, ref := range s.Experts {
		if !c.Has(ref.Name) {
			return library.Manifest{}, notFound(fmt.Sprintf("experts[%d].name", i), "the expert %q does not exist", ref.Name)
		}
		l, err := c.Adapter(ref.Name)
		if err != nil {
			return library.Manifest{}, err
		}
		src, err := c.cfg.Library.Instances(ref.Name)
		if err != nil {
			return library.Manifest{}, err
		}
		if m, _ := c.cfg.Library.Manifest(ref.Name); m.Embedder != c.cfg.Embedder.ID() || m.Dim != c.cfg.Embedder.Dim() {
			for j := range src {
				src[j].Embedding = nil // made by another embedder: Prepare remakes them
			}
		}
		ls, ins = append(ls, l), append(ins, src...)
		names, ws = append(names, ref.Name), append(ws, ref.Weight)
	}
	o := s.Options
	o.Weights = ws
	merged, rep, err := adapters.Merge(ls, o)
	if err != nil {
		return library.Manifest{}, invalid("experts", "merge: %v", err)
	}
	x := &library.Expert{}
	x.Name, x.Kind, x.Description = s.Name, library.KindMerged, s.Description
	if x.Description == "" {
		x.Description = fmt.Sprintf("%s merge of %s", o.Method, strings.Join(names, ", "))
	}
	if x.AdapterConfig, x.Tensors, err = library.ExpertFromLoRA(merged); err != nil {
		return library.Manifest{}, err
	}
	x.Instances = ins
	x.Embedder = c.cfg.Embedder.ID() // what is left of the sources' embeddings is this embedder's
	x.Training.Metrics = map[string]float64{"merge_rank": float64(rep.Rank), "merge_exact_rank": float64(rep.ExactRank),
		"merge_rel_frobenius_error": rep.RelFrobError}
	return c.Add(x, AddOptions{})
}
