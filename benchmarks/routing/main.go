// Command routing measures auto routing (`model: "auto"`) on prompts written
// the way people write to a chat or completions API, not rendered from the
// library's templates: benchmarks/routing/prompts/{dev,test}.jsonl, in-domain
// prompts of the starter library's ten task families and out-of-domain ones
// ("none") that no expert fits. It routes each prompt alone (Q = 1) and in
// groups of four of the same family (Q = 4) through experts.Catalog.Select, as
// the server does, and adds, for reference, the template-rendered routing of
// benchmarks/quality's section 2. It writes routing.json and routing.md to -out.
//
//	go run ./benchmarks/routing -shared ../shared -out benchmarks/results
package main

import (
	"bufio"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"roe/benchmarks/internal/results"
	"roe/benchmarks/internal/templated"
	"roe/experts"
	"roe/library"
	"roe/model"
	"roe/model/tokenizer"
	"roe/models"
	"roe/retriever"
)

var (
	sharedDir  = flag.String("shared", "../shared", "the shared folder (data/tasks, data/templates) for the template-rendered numbers")
	embedder   = flag.String("embedder", "router", "the routing embedder: router (the embedded routing encoder, roe serve's default), base (the base model's layer-0 mean pool) or a routing encoder folder")
	splitFlag  = flag.String("split", "all", "prompt split(s) to report: dev, test, fresh, both (dev and test) or all")
	outDir     = flag.String("out", "benchmarks/results", "where routing.{md,json} go")
	promptsDir = flag.String("prompts", "benchmarks/routing/prompts", "the prompt sets (dev.jsonl, test.jsonl)")
	minScore   = flag.Float64("min-score", 0, "auto routing falls back below this score (roe serve --min-score; 0: no absolute threshold)")
	normFlag   = flag.String("normalization", "", "embedding normalisation: center-l2, l2 or raw (default: the embedder's, as roe serve)")
	lexical    = flag.Bool("lexical", false, "fuse BM25 over instance texts (roe serve --lexical)")
	sigWeight  = flag.Float64("signature-weight", retriever.DefaultSignatureWeight, "weight of the task signatures in routing (roe serve --signature-weight; negative: dense only)")
	typWeight  = flag.Float64("typical-weight", retriever.DefaultTypicalWeight, "weight of the experts' typical scores in routing (roe serve --typical-weight; negative: none)")
	bgFlag     = flag.String("background", "", "general requests no expert is for (roe serve --background): \"\" the embedded set, none, or a JSON Lines file")
	fallback   = flag.Float64("fallback", experts.DefaultFallbackQuantile, "the fallback quantile (roe serve --fallback; negative: never)")
	groupSize  = flag.Int("q", 4, "prompts per request in the grouped setting")
	templates  = flag.Bool("templates", true, "also measure template-rendered routing (section 2 of quality.md)")
)

// familiesJSON maps every starter expert to its task family.
//
//go:embed families.json
var familiesJSON []byte

// none is the family of out-of-domain prompts.
const none = "none"

// families are the starter library's task families, in report order.
var families = []string{"sentiment", "topic", "grammar", "paraphrase", "entailment", "causal",
	"wordsense", "coreference", "dialogue", "similarity"}

// prompt is one line of a prompt set.
type prompt struct {
	Prompt string `json:"prompt"`
	Family string `json:"family"`
}

// env is what routing needs: the model, the embedder and a catalog over a
// temporary copy of the starter library.
type env struct {
	m          *model.Model
	emb        retriever.Embedder
	lib        *library.Library
	cat        *experts.Catalog
	background []string          // the catalog's background requests
	familyOf   map[string]string // expert name → family
}

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "routing:", err)
		os.Exit(1)
	}
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, a...)...)
}

func run() error {
	t0 := time.Now()
	splits, err := splitNames(*splitFlag)
	if err != nil {
		return err
	}
	e, cleanup, err := setup()
	if err != nil {
		return err
	}
	defer cleanup()
	rep := &Report{Commit: results.Commit(), Date: t0.UTC().Format(time.RFC3339), Model: models.DefaultName,
		Embedder: e.emb.ID(), EmbedderFlag: *embedder, Experts: len(e.cat.List()), MinScore: *minScore, Fallback: *fallback, Lexical: *lexical, Signature: *sigWeight, Typical: *typWeight, Background: len(e.background),
		GroupSize: *groupSize, GoMaxProcs: runtime.GOMAXPROCS(0),
		Command: "go run ./benchmarks/routing " + strings.Join(os.Args[1:], " ")}
	for _, sp := range splits {
		ps, err := loadPrompts(filepath.Join(*promptsDir, sp+".jsonl"))
		if err != nil {
			return err
		}
		sr, err := evalSplit(e, sp, ps)
		if err != nil {
			return fmt.Errorf("split %s: %w", sp, err)
		}
		rep.Splits = append(rep.Splits, sr)
	}
	if *templates {
		if rep.Templated, err = templateRouting(e); err != nil {
			return fmt.Errorf("template-rendered routing: %w", err)
		}
	}
	rep.Bars = bars(rep, "test", true)
	rep.FreshBars = bars(rep, "fresh", false)
	rep.Seconds = time.Since(t0).Seconds()
	return write(rep)
}

func splitNames(s string) ([]string, error) {
	switch s {
	case "dev", "test", "fresh":
		return []string{s}, nil
	case "both":
		return []string{"dev", "test"}, nil
	case "all":
		return []string{"dev", "test", "fresh"}, nil
	}
	return nil, fmt.Errorf("-split: want dev, test, fresh, both or all, got %q", s)
}

// setup loads the embedded model, builds the embedder, imports the starter
// experts into a temporary library (as `roe serve` does on first start) and
// opens a catalog on it with roe serve's routing defaults.
func setup() (*env, func(), error) {
	fsys := models.Default()
	tj, err := readFS(fsys, "tokenizer.json")
	if err != nil {
		return nil, nil, err
	}
	cj, _ := readFS(fsys, "tokenizer_config.json")
	tok, err := tokenizer.FromJSON(tj, cj)
	if err != nil {
		return nil, nil, err
	}
	e := &env{}
	if e.m, err = model.LoadFS(fsys); err != nil {
		return nil, nil, err
	}
	if e.emb, err = buildEmbedder(*embedder, e.m, tok); err != nil {
		return nil, nil, err
	}
	if err := json.Unmarshal(familiesJSON, &e.familyOf); err != nil {
		return nil, nil, fmt.Errorf("families.json: %w", err)
	}
	work, err := os.MkdirTemp("", "roe-routing-")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() {
		if e.cat != nil {
			e.cat.Close()
		}
		if e.lib != nil {
			e.lib.Close()
		}
		os.RemoveAll(work)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if e.lib, err = library.Open(library.DefaultOptions(work).WithFingerprint(e.m.Fingerprint()).WithLogger(quiet)); err != nil {
		cleanup()
		return nil, nil, err
	}
	// The experts of the held-out families (never seen by the routing
	// encoder's training) join the way a user adds experts: after the
	// server started, through the live Add path.
	xs, err := experts.ReadFS(models.StarterExperts(), e.m)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	var later []*library.Expert
	n := 0
	for _, x := range xs {
		if slices.Contains(heldOut, e.familyOf[x.Name]) {
			later = append(later, x)
			continue
		}
		if err := experts.Prepare(x, e.m, e.emb, retriever.DefaultInstanceFormat, experts.AddOptions{}); err != nil {
			cleanup()
			return nil, nil, err
		}
		if _, err := e.lib.Add(x); err != nil {
			cleanup()
			return nil, nil, err
		}
		n++
	}
	bg, err := experts.LoadBackground(*bgFlag, models.Background())
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	e.background = bg
	if e.cat, err = experts.Open(experts.Config{Background: bg, Library: e.lib, Base: e.m, BaseID: models.DefaultName,
		Embedder: e.emb, MinScore: *minScore, FallbackQuantile: *fallback, Lexical: *lexical, SignatureWeight: *sigWeight, TypicalWeight: *typWeight, Normalization: retriever.Normalization(*normFlag), Logger: quiet}); err != nil {
		cleanup()
		return nil, nil, err
	}
	for _, x := range later {
		if _, err := e.cat.Add(x, experts.AddOptions{}); err != nil {
			cleanup()
			return nil, nil, err
		}
	}
	logf("imported %d experts, then added %d of the held-out families %v live; embedder %s", n, len(later), heldOut, e.emb.ID())
	for _, m := range e.cat.List() {
		if _, ok := e.familyOf[m.Name]; !ok {
			cleanup()
			return nil, nil, fmt.Errorf("expert %q has no family in families.json", m.Name)
		}
	}
	return e, cleanup, nil
}

// buildEmbedder is the routing embedder named by -embedder: "base" is the
// base model's own (what the starter library was embedded with).
func buildEmbedder(name string, m *model.Model, tok *tokenizer.Tokenizer) (retriever.Embedder, error) {
	switch {
	case name == "base":
		return retriever.NewModelEmbedder(m, tok, 0, retriever.DefaultMaxTokens), nil
	case name == "router":
		return retriever.LoadEncoder(models.Router())
	case retriever.IsEncoderDir(os.DirFS(name)):
		return retriever.LoadEncoder(os.DirFS(name))
	}
	return nil, fmt.Errorf("-embedder %q: not base, router or a routing encoder folder", name)
}

// heldOut are the families whose tasks the shipped routing encoder never
// trained on (scripts/router.sh --hold-out wic,wsc,copa).
var heldOut = []string{"wordsense", "coreference", "causal"}

// loadPrompts reads a prompt set and checks every family is known.
func loadPrompts(path string) ([]prompt, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	known := map[string]bool{none: true}
	for _, fam := range families {
		known[fam] = true
	}
	var ps []prompt
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var p prompt
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		if !known[p.Family] || strings.TrimSpace(p.Prompt) == "" {
			return nil, fmt.Errorf("%s:%d: empty prompt or unknown family %q", path, line, p.Family)
		}
		ps = append(ps, p)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(ps) == 0 {
		return nil, errors.New(path + ": no prompts")
	}
	return ps, nil
}

// confidence is the routing decision's confidence that the request is in
// domain: the one place to switch to a calibrated signal. Today it is the top
// candidate's score (the mean top-1 similarity of the queries that voted for it).
func confidence(info *experts.Info) float64 { return info.Confidence }

// decision is one routed request: a prompt (Q = 1) or a group of prompts.
type decision struct {
	Family     string  `json:"family"` // the prompts' family
	Routed     string  `json:"routed"` // the top expert's family, or "fallback"
	Expert     string  `json:"expert,omitempty"`
	Confidence float64 `json:"confidence"`
	Prompt     string  `json:"prompt"` // the (first) prompt
}

// route routes one request whose query instances are qs (the first is the
// request's own prompt, the rest vote as routing.queries).
func route(e *env, fam string, qs []string) (decision, error) {
	req := experts.Request{Model: experts.Auto, Queries: qs[:1]}
	if len(qs) > 1 {
		req.Routing = &experts.Routing{Queries: qs[1:]}
	}
	sel, err := e.cat.Select(context.Background(), req)
	if err != nil {
		return decision{}, err
	}
	d := decision{Family: fam, Routed: "fallback", Confidence: confidence(sel.Info), Prompt: qs[0]}
	if !sel.Info.Fallback && len(sel.Info.Experts) > 0 {
		d.Expert = sel.Info.Experts[0].Name
		d.Routed = e.familyOf[d.Expert]
	}
	return d, nil
}

// groups cuts each family's prompts, in file order, into groups of q; a
// family's last group shorter than q is left out.
func groups(ps []prompt, q int) [][]prompt {
	byFam := map[string][]prompt{}
	for _, p := range ps {
		byFam[p.Family] = append(byFam[p.Family], p)
	}
	var out [][]prompt
	for _, fam := range append(families, none) {
		fp := byFam[fam]
		for i := 0; i+q <= len(fp); i += q {
			out = append(out, fp[i:i+q])
		}
	}
	return out
}

// evalSplit routes a split's prompts alone and in groups.
func evalSplit(e *env, name string, ps []prompt) (SplitReport, error) {
	sr := SplitReport{Split: name, TunedOn: name == "dev", Prompts: map[string]int{}}
	for _, p := range ps {
		sr.Prompts[p.Family]++
	}
	t0 := time.Now()
	for _, q := range []int{1, *groupSize} {
		var ds []decision
		for _, g := range groups(ps, q) {
			qs := make([]string, len(g))
			for i, p := range g {
				qs[i] = p.Prompt
			}
			d, err := route(e, g[0].Family, qs)
			if err != nil {
				return sr, err
			}
			ds = append(ds, d)
		}
		qr := score(q, ds)
		logf("%s Q=%d: in-domain top-1 %.3f, fallback in %.3f out %.3f, AUROC %.3f (%d decisions, %s)", name, q,
			qr.Top1, qr.FallbackIn, qr.FallbackOut, qr.AUROC, len(ds), time.Since(t0).Round(time.Millisecond))
		sr.Q = append(sr.Q, qr)
	}
	return sr, nil
}

// templateRouting is section 2 of benchmarks/quality (the same queries, index
// and options): how often routing picks the task's own expert over every
// expert, at Q = 1, 8, 32, on template-rendered validation examples.
func templateRouting(e *env) (*TemplatedReport, error) {
	tasksDir := filepath.Join(*sharedDir, "data", "tasks")
	tmplDir := filepath.Join(*sharedDir, "data", "templates")
	for _, d := range []string{tasksDir, tmplDir} {
		if _, err := os.Stat(d); err != nil {
			return nil, fmt.Errorf("%w (give -shared, or -templates=false)", err)
		}
	}
	ms, err := e.lib.List()
	if err != nil {
		return nil, err
	}
	owner := map[string]string{}
	var taskNames []string
	for _, m := range ms {
		owner[m.Name] = m.Task()
		if m.Kind == library.KindDataset && m.Dataset != "" {
			taskNames = append(taskNames, m.Dataset)
		}
	}
	ix, err := experts.BuildIndex(e.lib, e.emb, experts.IndexOptions{Normalization: retriever.Normalization(*normFlag), SignatureWeight: *sigWeight, TypicalWeight: *typWeight})
	if err != nil {
		return nil, err
	}
	// quality's defaults: -queries 64 -trials 16 -route-seed 7.
	tr := &TemplatedReport{Qs: []int{1, 8, 32}, Singles: 64, Trials: 16, Seed: 7, Mean: map[string]num{}}
	for _, t := range sortedCopy(taskNames) {
		texts, sp, err := templated.QueryTexts(tasksDir, tmplDir, t, retriever.DefaultInstanceFormat, tr.Seed)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t, err)
		}
		r, err := retriever.EvalRouting(ix.Index, e.emb, t, texts, func(x string) string { return owner[x] },
			retriever.EvalOptions{Qs: tr.Qs, Singles: tr.Singles, Trials: tr.Trials, Seed: tr.Seed, Route: ix.Options(retriever.RouteOptions{}, nil)})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t, err)
		}
		r.Split = sp
		tr.Tasks = append(tr.Tasks, r)
	}
	for _, q := range tr.Qs {
		s, n := 0.0, 0
		for _, t := range tr.Tasks {
			if a := t.At(q); !math.IsNaN(a) {
				s, n = s+a, n+1
			}
		}
		tr.Mean[fmt.Sprintf("q%d", q)] = num(s / float64(n)) // NaN (null) when no task had q queries
	}
	logf("template-rendered: mean Q=1 %.3f Q=8 %.3f Q=32 %.3f", tr.Mean["q1"], tr.Mean["q8"], tr.Mean["q32"])
	return tr, nil
}
