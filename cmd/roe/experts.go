package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"roe/adapters"
	"roe/experts"
	"roe/internal/atomicfile"
	"strings"
	"text/tabwriter"

	"roe/kernels"
	"roe/library"
	"roe/model"
	"roe/retriever"
)

// libFlags are the flags of every command that opens the library.
type libFlags struct {
	model   *string
	library *string
	emb     *embedderFlags
	format  *string
}

// signatureWeightFlag is --signature-weight of the commands that route.
func signatureWeightFlag(fs *flag.FlagSet) *float64 {
	return fs.Float64("signature-weight", retriever.DefaultSignatureWeight, "weight of the experts' task signatures (the words that set an expert's instances apart from the library's) added to the dense score in routing; negative: dense only")
}

// typicalWeightFlag is --typical-weight of the commands that route.
func typicalWeightFlag(fs *flag.FlagSet) *float64 {
	return fs.Float64("typical-weight", retriever.DefaultTypicalWeight, "weight of each expert's typical score (the median score of its own instances, written otherwise, against its other instances) subtracted from its score in routing; negative: none")
}

func addLibFlags(fs *flag.FlagSet) *libFlags {
	return &libFlags{
		model:   modelFlag(fs),
		library: fs.String("library", defaultLibraryDir(), "expert library folder"),
		emb:     addEmbedderFlags(fs),
		format:  fs.String("instance-format", retriever.DefaultInstanceFormat, "how an instance is written before it is embedded"),
	}
}

// open loads the base model and opens the library. Badger locks its folder, so
// a library served by a running `roe serve` is refused with a hint.
func (f *libFlags) open() (*model.Model, retriever.Embedder, *library.Library, error) {
	m, tok, err := loadModel(*f.model)
	if err != nil {
		return nil, nil, nil, err
	}
	emb, err := f.emb.build(m, tok)
	if err != nil {
		return nil, nil, nil, err
	}
	lib, err := openLibrary(*f.library, m.Fingerprint(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		if strings.Contains(err.Error(), "lock") {
			err = fmt.Errorf("%w (is `roe serve` using this library? add experts through POST /v1/experts instead)", err)
		}
		return nil, nil, nil, err
	}
	return m, emb, lib, nil
}

func runExperts(args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return usagef("usage: roe experts add|import|list|show|rm|export|reembed [flags]")
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("experts "+sub, flag.ContinueOnError)
	lf := addLibFlags(fs)
	switch sub {
	case "add", "import":
		return expertsAdd(sub, fs, lf, args, stdout)
	case "list":
		asJSON := fs.Bool("json", false, "print JSON lines")
		if _, err := parse(fs, args); err != nil {
			return err
		}
		lib, err := openLibraryOnly(*lf.library)
		if err != nil {
			return err
		}
		defer lib.Close()
		ms, err := lib.List()
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			for _, m := range ms {
				if err := enc.Encode(m); err != nil {
					return err
				}
			}
			return nil
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tKIND\tDATASET\tINSTANCES\tADAPTER\tCREATED")
		for _, m := range ms {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.1f MiB\t%s\n", m.Name, m.Kind, m.Dataset, m.NumInstances,
				float64(m.AdapterBytes)/(1<<20), m.Created.Format("2006-01-02 15:04"))
		}
		return tw.Flush()
	case "reembed":
		return expertsReembed(fs, lf, args, stdout)
	case "show", "rm", "export":
		out := fs.String("out", "", "export: the folder (or, with --format gguf, the file) to write")
		format := fs.String("format", "peft", "export: peft (a folder: the PEFT adapter, expert.json, instances.jsonl) or gguf (a llama.cpp LoRA file for the --model base)")
		outtype := fs.String("outtype", "f32", "export --format gguf: the tensors' type, f32 (exact), or f16 or bf16 (rounded; llama.cpp's converter writes f16 by default)")
		pos, err := parse(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usagef("experts %s takes one expert NAME", sub)
		}
		lib, err := openLibraryOnly(*lf.library)
		if err != nil {
			return err
		}
		defer lib.Close()
		switch sub {
		case "show":
			m, err := lib.Manifest(pos[0])
			if err != nil {
				return err
			}
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(m)
		case "rm":
			if err := lib.Remove(pos[0]); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "removed %s\n", pos[0])
			return nil
		default:
			if *out == "" {
				return usagef("experts export needs --out DIR")
			}
			switch *format {
			case "peft":
				err = lib.Export(pos[0], *out)
			case "gguf":
				t, ok := map[string]kernels.QType{"f32": kernels.F32, "f16": kernels.F16, "bf16": kernels.BF16}[*outtype]
				if !ok {
					return usagef("--outtype %q (f32, f16 or bf16)", *outtype)
				}
				err = exportGGUF(lib, pos[0], *lf.model, *out, t)
			default:
				return usagef("--format %q (peft or gguf)", *format)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "exported %s to %s\n", pos[0], *out)
			return nil
		}
	}
	return usagef("unknown experts command %q (add, import, list, show, rm, export)", sub)
}

// openLibraryOnly opens the library without loading a model (list, show, rm, export).
func openLibraryOnly(dir string) (*library.Library, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("library %s: %w", dir, err)
	}
	return openLibrary(dir, "", slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func expertsAdd(sub string, fs *flag.FlagSet, lf *libFlags, args []string, stdout io.Writer) error {
	adapterDir := fs.String("adapter", "", "PEFT LoRA folder, or a llama.cpp GGUF LoRA file (*.gguf)")
	instances := fs.String("instances", "", "instances.jsonl: {\"input\", \"answer_choices\", \"target\"} per line (without it the expert is served by name only: auto routing cannot pick it)")
	name := fs.String("name", "", "unique expert name (task, or task/template-name)")
	kind := fs.String("kind", "imported", "prompt, dataset, merged or imported")
	dataset := fs.String("dataset", "", "training dataset")
	template := fs.String("template", "", "prompt template file")
	prompt := fs.String("prompt", "", "prompt (template) name")
	desc := fs.String("description", "", "what the expert is for")
	s := fs.Int("sample", library.DefaultSampleSize, "instances kept (S); more are sampled down with --seed")
	seed := fs.Uint64("seed", 1, "sampling seed")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	var x *library.Expert
	if sub == "import" {
		if len(pos) != 1 {
			return usagef("experts import takes one folder (as `experts export` writes it)")
		}
		if x, err = library.ImportDir(pos[0]); err != nil {
			return err
		}
	} else {
		if *adapterDir == "" || *name == "" {
			return usagef("experts add needs --adapter and --name (and --instances to make the expert routable)")
		}
		if model.IsGGUF(*adapterDir) {
			if x, err = importGGUFAdapter(*adapterDir, *lf.model); err != nil {
				return err
			}
		} else if x, err = library.ImportDir(*adapterDir); err != nil {
			return err
		}
		x.Name, x.Kind = *name, library.Kind(*kind)
		if *instances != "" {
			b, err := os.ReadFile(*instances)
			if err != nil {
				return err
			}
			if x.Instances, err = library.ReadInstances(bytes.NewReader(b), *instances); err != nil {
				return err
			}
			if len(x.Instances) == 0 {
				return usagef("%s has no instances", *instances)
			}
		}
	}
	for _, kv := range []struct {
		dst *string
		v   string
	}{{&x.Dataset, *dataset}, {&x.Template, *template}, {&x.Prompt, *prompt}, {&x.Description, *desc}} {
		if kv.v != "" {
			*kv.dst = kv.v
		}
	}
	m, emb, lib, err := lf.open()
	if err != nil {
		return err
	}
	defer lib.Close()
	if err := experts.CheckName(x.Name, modelID(*lf.model)); err != nil {
		return err
	}
	// The adapter is checked against the base model before anything is
	// embedded; embeddings from another embedder are made afresh.
	pr := newProgress(progressOut, "embed")
	o := experts.AddOptions{Sample: *s, Seed: *seed, Progress: func(done, total int) { pr.report(done, total, "instances", nil) }}
	if err := experts.Prepare(x, m, emb, *lf.format, o); err != nil {
		return err
	}
	man, err := lib.Add(x)
	if err != nil {
		if errors.Is(err, library.ErrExists) {
			return fmt.Errorf("%w (remove it first with `roe experts rm %s`)", err, x.Name)
		}
		return err
	}
	fmt.Fprintf(stdout, "added %s (%s, %d instances, %d tensors)\n", man.Name, man.Kind, man.NumInstances, man.NumTensors)
	if man.NumInstances == 0 {
		fmt.Fprintf(stdout, "%s has no instances: it is served by name only (model %q); auto routing cannot pick it until it has some\n", man.Name, man.Name)
	}
	return nil
}

func runRoute(args []string, _ io.Reader, stdout io.Writer) error {
	// Raw retrieval over a library folder, for inspection: the server (POST
	// /v1/route) adds the calibrated confidence and fallback of experts.Catalog.
	fs := flag.NewFlagSet("route", flag.ContinueOnError)
	lf := addLibFlags(fs)
	k := fs.Int("k", 3, "experts to rank")
	neighbors := fs.Int("neighbors", 3, "nearest stored instances shown per query")
	agg := fs.String("aggregation", string(retriever.Vote), "vote, sum-top-m or softmax")
	norm := fs.String("normalization", "", "center-l2, l2 or raw (default: the embedder's; l2 for a routing encoder, else center-l2)")
	minScore := fs.Float64("min-score", 0, "fall back to the base model below this score")
	lexical := fs.Bool("lexical", false, "fuse BM25 over instance texts (reciprocal rank fusion)")
	sigWeight := signatureWeightFlag(fs)
	typWeight := typicalWeightFlag(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("route takes one or more TEXT arguments, each a query instance")
	}
	_, emb, lib, err := lf.open()
	if err != nil {
		return err
	}
	defer lib.Close()
	ix, err := experts.BuildIndex(lib, emb, experts.IndexOptions{Format: *lf.format, Normalization: retriever.Normalization(*norm), Lexical: *lexical, SignatureWeight: *sigWeight, TypicalWeight: *typWeight})
	if err != nil {
		return err
	}
	defer ix.Close()
	texts := make([]string, len(pos))
	for i, p := range pos {
		texts[i] = retriever.FormatInstance(*lf.format, p, nil)
	}
	q, err := emb.Embed(texts)
	if err != nil {
		return err
	}
	o := ix.Options(retriever.RouteOptions{TopK: *k, Neighbors: *neighbors, Aggregation: retriever.Aggregation(*agg), MinScore: *minScore}, texts)
	rt, err := ix.Route(q, o)
	if err != nil {
		return err
	}
	type ex struct {
		Name      string  `json:"name"`
		Votes     int     `json:"votes"`
		Score     float64 `json:"score"`
		VoteShare float64 `json:"vote_share"`
	}
	out := struct {
		Experts   []ex                 `json:"experts"`
		Neighbors [][]experts.Neighbor `json:"neighbors"`
		Fallback  bool                 `json:"fallback"`
		Margin    float64              `json:"margin"`
		RoutingMS float64              `json:"routing_ms"`
	}{Experts: []ex{}, Fallback: rt.Fallback, Margin: rt.Confidence.Margin, RoutingMS: float64(rt.Elapsed.Microseconds()) / 1000}
	for _, x := range rt.Experts {
		out.Experts = append(out.Experts, ex{x.Name, x.Votes, x.Score, x.VoteShare})
	}
	for _, hs := range rt.Neighbors {
		ns := []experts.Neighbor{}
		for _, h := range hs {
			ns = append(ns, experts.Neighbor{Expert: h.Expert, Text: h.Text, Score: h.Score})
		}
		out.Neighbors = append(out.Neighbors, ns)
	}
	return json.NewEncoder(stdout).Encode(out)
}

// importGGUFAdapter reads a GGUF LoRA as the PEFT adapter it stands for.
func importGGUFAdapter(path, base string) (*library.Expert, error) {
	cfg, err := loadConfig(base)
	if err != nil {
		return nil, err
	}
	l, err := adapters.LoadGGUF(path, cfg)
	if err != nil {
		return nil, err
	}
	config, tensors, err := library.ExpertFromLoRA(l)
	if err != nil {
		return nil, err
	}
	return &library.Expert{AdapterConfig: config, Tensors: tensors}, nil
}

// exportGGUF writes expert name as a llama.cpp GGUF LoRA for the base model,
// its tensors of type t.
func exportGGUF(lib *library.Library, name, base, out string, t kernels.QType) error {
	cfg, err := loadConfig(base)
	if err != nil {
		return err
	}
	x, err := lib.Get(name)
	if err != nil {
		return err
	}
	l, err := x.LoRA(cfg)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := l.WriteGGUFAs(&b, cfg, t); err != nil {
		return err
	}
	return atomicfile.WriteFile(out, b.Bytes())
}

// expertsReembed re-embeds the instances of exported expert folders (as
// `roe experts export` writes them) with the embedder of --embedder and
// rewrites their instances.jsonl and expert.json; the adapters are left
// untouched. After a new routing encoder (make router), it re-stamps the
// starter library so that importing it embeds nothing.
func expertsReembed(fs *flag.FlagSet, lf *libFlags, args []string, stdout io.Writer) error {
	dirs, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(dirs) == 0 {
		return usagef("usage: roe experts reembed [--embedder E] DIR... (exported expert folders)")
	}
	m, tok, err := loadModel(*lf.model)
	if err != nil {
		return err
	}
	emb, err := lf.emb.build(m, tok)
	if err != nil {
		return err
	}
	for _, dir := range dirs {
		e, err := library.ImportDir(dir)
		if err != nil {
			return err
		}
		for i := range e.Instances {
			e.Instances[i].Embedding = nil
		}
		if e.Instances, err = experts.PrepareInstances(emb, *lf.format, e.Instances, 0, 0); err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
		e.Embedder, e.Dim = emb.ID(), emb.Dim()
		if err := library.WriteInstances(e, dir); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: %d instances embedded by %s\n", dir, len(e.Instances), emb.ID())
	}
	return nil
}

// backgroundFlag is --background of the commands that route with a fallback.
func backgroundFlag(fs *flag.FlagSet) *string {
	return fs.String("background", "", "general requests no expert is for (JSON Lines of {\"prompt\"}), which auto routing measures each request against before serving an expert: \"\" the embedded set, none for none")
}
