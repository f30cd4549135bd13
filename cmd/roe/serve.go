package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"roe/adapters"
	"roe/experts"
	"strings"
	"syscall"
	"time"

	"roe/library"
	"roe/library/s3sync"
	"roe/model"
	"roe/model/tokenizer"
	"roe/models"
	"roe/retriever"
	"roe/serve"
)

// defaultLibraryDir is where roe keeps its expert library unless told otherwise.
func defaultLibraryDir() string {
	if d := os.Getenv("ROE_HOME"); d != "" {
		return filepath.Join(d, "library")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".roe", "library")
	}
	return filepath.Join(".roe", "library")
}

// embedderFlags choose the retrieval embedder.
type embedderFlags struct {
	embedder *string
	layer    *int
	maxTok   *int
}

func addEmbedderFlags(fs *flag.FlagSet) *embedderFlags {
	return &embedderFlags{
		embedder: fs.String("embedder", "router", "retrieval embedder: router (the embedded routing encoder), base (the served model's pooled states), a routing encoder folder (roe embedder train) or a Hugging Face model folder"),
		layer:    fs.Int("embed-layer", 0, "hidden states pooled for embeddings: 0 = final norm, k = after k blocks"),
		maxTok:   fs.Int("embed-max-tokens", retriever.DefaultMaxTokens, "tokens embedded per instance"),
	}
}

func (f *embedderFlags) build(base *model.Model, tok *tokenizer.Tokenizer) (retriever.Embedder, error) {
	m, t := base, tok
	switch name := *f.embedder; {
	case name == "router" || name == "":
		return retriever.LoadEncoder(models.Router())
	case name == "base":
	case retriever.IsEncoderDir(os.DirFS(name)):
		enc, err := retriever.LoadEncoder(os.DirFS(name))
		if err != nil {
			return nil, fmt.Errorf("--embedder: %w", err)
		}
		return enc, nil
	default:
		var err error
		if m, t, err = loadModel(name); err != nil {
			return nil, fmt.Errorf("--embedder: %w", err)
		}
	}
	if *f.layer < 0 || *f.layer > m.Config.NumLayers {
		return nil, usagef("--embed-layer %d outside [0, %d]", *f.layer, m.Config.NumLayers)
	}
	return retriever.NewModelEmbedder(m, t, *f.layer, *f.maxTok), nil
}

func openLibrary(dir string, fingerprint string, log *slog.Logger) (*library.Library, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return library.Open(library.DefaultOptions(dir).WithFingerprint(fingerprint).WithLogger(log))
}

func runServe(args []string, _ io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	dir := modelFlag(fs)
	libDir := fs.String("library", defaultLibraryDir(), "expert library folder (created on first start), or s3://BUCKET/PREFIX to share one library between replicas (endpoint, region and credentials from the AWS environment variables)")
	shared := addSharedFlags(fs)
	addr := fs.String("addr", envOr("ROE_ADDR", "127.0.0.1:8080"), "listen address, HOST:PORT (also $ROE_ADDR; 0.0.0.0:8080 in the container image)")
	apiKey := fs.String("api-key", "", "require this bearer token (also $ROE_API_KEY)")
	apiKeyFile := fs.String("api-key-file", "", "read the API key from this file")
	openInference := fs.Bool("open-inference", false, "with an API key, leave inference routes open (admin stays protected)")
	maxBatch := fs.Int("max-batch", 8, "sequences per forward step")
	queue := fs.Int("queue", 64, "sequences waiting before 429")
	maxConns := fs.Int("max-conns", 1024, "open connections; more are answered 503")
	maxContext := fs.Int("max-context", 0, "prompt + completion tokens (default: the model's context length)")
	topK := fs.Int("top-k", 1, "experts considered by auto routing")
	minScore := fs.Float64("min-score", 0, "auto routing falls back to the base model below this score")
	composeMargin := fs.Float64("compose-margin", 0, "merge the top-k experts when the vote margin is below this")
	fallback := fs.Float64("fallback", experts.DefaultFallbackQuantile, "auto routing falls back to the base model when the request is less like the library than this share of the library's own instances (written otherwise) are; negative: never")
	maxMergeRank := fs.Int("max-merge-rank", 0, "compress compositions above this rank by truncated SVD, reported in roe.compression (0: always exact)")
	norm := fs.String("normalization", "", "embedding normalisation: center-l2, l2 or raw (default: the embedder's; l2 for a routing encoder, else center-l2)")
	lexical := fs.Bool("lexical", false, "fuse BM25 over instance texts into routing")
	sigWeight := signatureWeightFlag(fs)
	typWeight := typicalWeightFlag(fs)
	bgFlag := backgroundFlag(fs)
	dataDir := fs.String("data", "", "task folders that POST /v1/jobs/train may train on (by name)")
	templatesDir := fs.String("templates", "", "promptsource templates folder for training jobs")
	ignoreUnknown := fs.Bool("ignore-unknown-fields", false, "ignore (and log) request fields roe does not know, instead of answering 400; fields it knows and does not implement are refused either way")
	adapterRoot := fs.String("adapter-root", os.Getenv("ROE_ADAPTER_ROOT"), "folder that POST /v1/load_lora_adapter may load adapters from (lora_path stays under it); unset: loading by path is off (also $ROE_ADAPTER_ROOT)")
	starter := fs.Bool("starter", true, "import the embedded starter experts into a new library (finishing an import cut short)")
	ef := addEmbedderFlags(fs)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *adapterRoot != "" {
		if st, err := os.Stat(*adapterRoot); err != nil || !st.IsDir() {
			return usagef("--adapter-root %s is not a folder", *adapterRoot)
		}
	}
	// Bind first: a taken or malformed address fails at once, before the
	// model loads and before the starter experts are imported. Connections
	// that arrive while the server starts wait in the backlog.
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("--addr: %w", err)
	}
	defer ln.Close()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	key := *apiKey
	if key == "" {
		key = os.Getenv("ROE_API_KEY")
	}
	if *apiKeyFile != "" {
		b, err := os.ReadFile(*apiKeyFile)
		if err != nil {
			return fmt.Errorf("--api-key-file: %w", err)
		}
		key = strings.TrimSpace(string(b))
	}
	m, tok, err := loadModel(*dir)
	if err != nil {
		return err
	}
	emb, err := ef.build(m, tok)
	if err != nil {
		return err
	}
	var lib *library.Library
	var store *s3sync.Store
	if s3sync.IsURL(*libDir) {
		lib, store, _, err = openShared(*libDir, shared, m.Fingerprint(), log)
	} else {
		lib, err = openLibrary(*libDir, m.Fingerprint(), log)
	}
	if err != nil {
		return err
	}
	defer lib.Close()
	if store != nil {
		if *starter {
			importSharedStarter(lib, store, m, emb, log)
		}
	} else if *starter {
		n, err := importStarter(lib, m, emb)
		switch {
		case errors.Is(err, experts.ErrOtherBase):
			log.Warn("starter experts not imported", "reason", err.Error())
		case err != nil:
			return fmt.Errorf("starter experts: %w", err)
		case n > 0:
			log.Info("imported the starter experts", "experts", n, "library", *libDir)
		}
	}
	id := modelID(*dir)
	bg, err := experts.LoadBackground(*bgFlag, models.Background())
	if err != nil {
		return fmt.Errorf("--background: %w", err)
	}
	log.Info("auto routing measures requests against general ones before serving an expert", "background_requests", len(bg))
	catalog, err := experts.Open(experts.Config{Background: bg, Library: lib, Base: m, BaseID: id, Embedder: emb,
		Normalization: retriever.Normalization(*norm), Lexical: *lexical, SignatureWeight: *sigWeight, TypicalWeight: *typWeight, Logger: log, TopK: *topK, MinScore: *minScore,
		ComposeMargin: *composeMargin, MaxMergeRank: *maxMergeRank, FallbackQuantile: *fallback})
	if err != nil {
		return err
	}
	defer catalog.Close()
	protect := !*openInference
	scfg := serve.Config{}
	if store != nil {
		scfg.Readiness = func() (bool, any) { return store.Status().Ready, store.Detail() }
		scfg.Collectors = store.Collectors()
		sctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go store.Run(sctx, lib)
	}
	srv, err := serve.New(serve.Config{Readiness: scfg.Readiness, Collectors: scfg.Collectors, ModelID: id, Model: m, Tokenizer: tok, Experts: catalog, APIKey: key,
		ProtectInference: &protect, AdapterRoot: *adapterRoot, Train: experts.TrainData{DataDir: *dataDir, TemplatesDir: *templatesDir}, MaxBatch: *maxBatch, QueueSize: *queue, MaxContext: *maxContext, MaxConns: *maxConns, Logger: log,
		IgnoreUnknownFields: *ignoreUnknown})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	shown := *addr // as given (0.0.0.0 would print as [::]), unless the system chose the port
	if _, port, _ := net.SplitHostPort(*addr); port == "0" || port == "" {
		shown = ln.Addr().String()
	}
	fmt.Fprintf(stdout, "roe serving %s with %d experts on http://%s (library %s)\n", id, len(mustList(lib)), shown, *libDir)
	if m.Activations() == model.ActivationsQ8 {
		fmt.Fprintf(stdout, "activations: int8 (q8) for %s weights in decode: lossy\n", m.Q8Types())
		log.Info("activations quantized", "activations", string(model.ActivationsQ8), "types", m.Q8Types())
	}
	if d := adapters.DecodeDType(); d == adapters.DecodeBFloat16 {
		fmt.Fprintf(stdout, "experts' decode factors: %s (--lora-dtype): lossy\n", d)
		log.Info("expert decode factors rounded", "lora_dtype", d)
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	stop() // a second Ctrl-C ends the process at once
	log.Info("shutting down: finishing in-flight requests")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// envOr is the environment variable k, or def when it is unset or empty.
func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func mustList(l *library.Library) []library.Manifest {
	ms, _ := l.List()
	return ms
}

// importStarter imports the embedded starter experts into a new library,
// or finishes an import that was cut short (experts.ImportStarter).
func importStarter(lib *library.Library, m *model.Model, emb retriever.Embedder) (int, error) {
	return experts.ImportStarter(lib, m, emb, retriever.DefaultInstanceFormat, models.StarterExperts())
}
