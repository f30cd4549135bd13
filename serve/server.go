package serve

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/gofiber/fiber/v2/middleware/requestid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"roe/experts"
	"roe/model"
	"roe/model/tokenizer"
)

// Config configures a Server; zero values take the defaults in brackets.
type Config struct {
	ModelID   string               // the base model's id in the API
	Model     *model.Model         // the base model
	Tokenizer *tokenizer.Tokenizer // its tokenizer
	Experts   *experts.Catalog     // the expert library and router; nil serves the base model only
	Train     experts.TrainData    // lets POST /v1/jobs/train train experts in the server
	// AdapterRoot is the folder that POST /v1/load_lora_adapter may load
	// adapters from (lora_path is resolved under it and cannot leave it);
	// "" turns loading by path off.
	AdapterRoot string

	APIKey           string // required on every /v1 route when set
	ProtectInference *bool  // also require the key for inference routes [true when APIKey is set]

	MaxBatch    int // sequences per forward step [8]
	QueueSize   int // sequences waiting before 429 [64]
	MaxContext  int // prompt + completion tokens [the model's context length]
	MaxTokens   int // largest max_tokens a request may ask [MaxContext]
	BodyLimit   int // bytes of a JSON body [1 MiB]
	UploadLimit int // bytes of an expert upload [256 MiB]

	// HeaderTimeout bounds reading a request's headers, and its whole read
	// when it has no body [10 s]. BodyTimeout bounds reading a request with
	// a body, headers included: a 256 MiB upload at 4 Mbit/s [10 min].
	HeaderTimeout time.Duration
	BodyTimeout   time.Duration
	IdleTimeout   time.Duration // a keep-alive connection waiting for its next request [90 s]
	MaxConns      int           // open connections; more are answered 503 and closed [1024]
	Logger        *slog.Logger

	// IgnoreUnknownFields lets completions and chat requests carry fields
	// roe does not know (logged, then ignored); by default they are a 400
	// that names them. Known fields roe does not implement are refused either way.
	IgnoreUnknownFields bool

	// Readiness, when set, joins /readyz: not ready answers 503; detail is
	// shown either way (a shared library's sync state).
	Readiness func() (ready bool, detail any)
	// Collectors join the server's /metrics.
	Collectors []prometheus.Collector
}

// Server is a running roe HTTP server.
type Server struct {
	cfg     Config
	app     *fiber.App
	sched   *Scheduler
	metrics *Metrics
	log     *slog.Logger
	ready   atomic.Bool
	started time.Time
	tmpl    *chatTemplate
	outs    outputs // structured output: the vocabulary's trie, compiled grammars

	adapterRootReal string // AdapterRoot with its symbolic links resolved

	fingerprint string // system_fingerprint of every generation

	adapterInfo sync.Map // expert id → adapterInfo, for listings

	embedSem chan struct{} // bounds concurrent embedding requests (429 when full)
	jobs     *jobs
	jobsCtx  context.Context
	stopJobs context.CancelFunc
}

// New builds the server and starts its scheduler.
func New(cfg Config) (*Server, error) {
	if cfg.Model == nil || cfg.Tokenizer == nil {
		return nil, errors.New("serve: a model and its tokenizer are required")
	}
	if cfg.ModelID == "" {
		cfg.ModelID = "base"
	}
	ctxLen := cfg.Model.Config.ContextLength()
	if cfg.MaxContext <= 0 || cfg.MaxContext > ctxLen {
		cfg.MaxContext = ctxLen
	}
	if cfg.MaxTokens <= 0 || cfg.MaxTokens > cfg.MaxContext {
		cfg.MaxTokens = cfg.MaxContext
	}
	cfg.MaxBatch = defaultInt(cfg.MaxBatch, 8)
	cfg.QueueSize = defaultInt(cfg.QueueSize, 64)
	cfg.BodyLimit = defaultInt(cfg.BodyLimit, 1<<20)
	cfg.UploadLimit = defaultInt(cfg.UploadLimit, 256<<20)
	cfg.MaxConns = defaultInt(cfg.MaxConns, 1024)
	cfg.HeaderTimeout = defaultDuration(cfg.HeaderTimeout, 10*time.Second)
	cfg.BodyTimeout = defaultDuration(cfg.BodyTimeout, 10*time.Minute)
	cfg.IdleTimeout = defaultDuration(cfg.IdleTimeout, 90*time.Second)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ProtectInference == nil {
		t := true
		cfg.ProtectInference = &t
	}
	if cfg.AdapterRoot != "" {
		root, err := adapterRoot(cfg.AdapterRoot)
		if err != nil {
			return nil, err
		}
		cfg.AdapterRoot = root
	}
	s := &Server{cfg: cfg, metrics: NewMetrics(), log: cfg.Logger, started: time.Now(), fingerprint: systemFingerprint(cfg.Model)}
	s.adapterRootReal, _ = filepath.EvalSymlinks(cfg.AdapterRoot)
	if cfg.Experts != nil {
		s.metrics.Registry.MustRegister(cfg.Experts.Metrics().Collectors()...)
	}
	if len(cfg.Collectors) > 0 {
		s.metrics.Registry.MustRegister(cfg.Collectors...)
	}
	tmpl, err := newChatTemplate(cfg.Tokenizer)
	if err != nil {
		s.log.Warn("chat template", "err", err)
	}
	s.tmpl = tmpl
	s.metrics.engine.setLimits(cfg.MaxBatch, cfg.MaxContext, adapterNamer(cfg.Experts))
	s.sched = NewScheduler(cfg.Model, cfg.MaxBatch, cfg.QueueSize, s.metrics)
	s.jobs = newJobs()
	s.embedSem = make(chan struct{}, cfg.MaxBatch)
	s.jobsCtx, s.stopJobs = context.WithCancel(context.Background())
	s.startJobs(s.jobsCtx)
	s.app = fiber.New(fiber.Config{
		AppName:   "roe",
		BodyLimit: max(cfg.BodyLimit, cfg.UploadLimit),
		// Bodies are read on demand, by limitBody after authentication and
		// only on routes that take one. fasthttp would otherwise parse any
		// multipart body before routing, spilling files past 16 MiB to
		// os.TempDir with no size limit.
		StreamRequestBody:            true,
		DisablePreParseMultipartForm: true,
		DisableStartupMessage:        true,
		// fasthttp's ReadTimeout covers headers and body (read in the handler
		// too); HeaderReceived extends it for requests that have a body.
		// WriteTimeout stays off: a streamed completion may rightly be long.
		ReadTimeout:  cfg.HeaderTimeout,
		IdleTimeout:  cfg.IdleTimeout,
		ErrorHandler: func(c *fiber.Ctx, err error) error { return s.writeError(c, err) },
	})
	hs := s.app.Server()
	hs.HeaderReceived = func(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
		if h.ContentLength() != 0 {
			return fasthttp.RequestConfig{ReadTimeout: cfg.BodyTimeout}
		}
		return fasthttp.RequestConfig{}
	}
	// fiber answers a method it does not know (BREW, PROPFIND) in plain text
	// before any handler runs: answer it here, as JSON.
	fiberHandler := hs.Handler
	hs.Handler = func(ctx *fasthttp.RequestCtx) {
		if !knownMethod(ctx.Method()) {
			s.metrics.requests.WithLabelValues("other", strconv.Itoa(fiber.StatusNotImplemented)).Inc()
			ctx.SetConnectionClose() // its body, if any, is not read
			writeRaw(ctx, fiber.StatusNotImplemented, "invalid_request_error", fmt.Sprintf("method %q is not supported", ctx.Method()))
			return
		}
		fiberHandler(ctx)
	}
	s.routes()
	s.ready.Store(true)
	return s, nil
}

func defaultDuration(v, d time.Duration) time.Duration {
	if v <= 0 {
		return d
	}
	return v
}

func knownMethod(m []byte) bool {
	for _, k := range fiber.DefaultMethods {
		if string(m) == k {
			return true
		}
	}
	return false
}

// writeRaw answers an OpenAI error object outside fiber.
func writeRaw(ctx *fasthttp.RequestCtx, status int, typ, msg string) {
	var b errorBody
	b.Error.Message, b.Error.Type = msg, typ
	out, _ := json.Marshal(b)
	ctx.SetStatusCode(status)
	ctx.SetContentType(fiber.MIMEApplicationJSON)
	ctx.SetBody(out)
}

func defaultInt(v, d int) int {
	if v <= 0 {
		return d
	}
	return v
}

// App is the fiber application, for app.Test in tests.
func (s *Server) App() *fiber.App { return s.app }

// Listen serves on addr until Shutdown.
func (s *Server) Listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return s.Serve(ln)
}

// Serve serves on an open listener until Shutdown, at most MaxConns
// connections at once.
func (s *Server) Serve(ln net.Listener) error {
	return s.app.Listener(&capListener{Listener: ln, max: int64(s.cfg.MaxConns)})
}

// Shutdown stops accepting requests, lets in-flight ones finish until ctx ends,
// then stops the scheduler. The caller closes the library afterwards.
func (s *Server) Shutdown(ctx context.Context) error {
	s.ready.Store(false)
	s.stopJobs()  // a training job in progress is cancelled; nothing half-written is stored
	<-s.jobs.done // and has left the library before the caller closes it
	errc := make(chan error, 1)
	go func() { errc <- s.sched.Close(ctx) }()
	httpErr := s.app.ShutdownWithContext(ctx)
	if err := <-errc; err != nil {
		return err
	}
	return httpErr
}

func (s *Server) routes() {
	app := s.app
	app.Use(recover.New(recover.Config{EnableStackTrace: true, StackTraceHandler: func(c *fiber.Ctx, e any) {
		s.log.Error("panic in handler", "path", c.Path(), "panic", e)
	}}))
	app.Use(requestid.New(requestid.Config{Header: "X-Request-Id", ContextKey: "requestid"}))
	app.Use(s.observe)
	health := func(c *fiber.Ctx) error { return c.JSON(fiber.Map{"status": "ok"}) }
	app.Get("/healthz", health)
	app.Get("/health", health) // vLLM's and TGI's name
	app.Get("/readyz", func(c *fiber.Ctx) error {
		if !s.ready.Load() {
			return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"status": "shutting down"})
		}
		body := fiber.Map{"status": "ready", "queue": s.sched.QueueLen()}
		if r := s.cfg.Readiness; r != nil {
			ok, detail := r()
			body["library"] = detail
			if !ok {
				body["status"] = "syncing"
				return c.Status(fiber.StatusServiceUnavailable).JSON(body)
			}
		}
		return c.JSON(body)
	})
	metrics := fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(s.metrics.Registry, promhttp.HandlerOpts{}))
	app.Get("/metrics", func(c *fiber.Ctx) error { metrics(c.Context()); return nil })

	v1 := app.Group("/v1")
	infer := v1.Group("", s.auth(*s.cfg.ProtectInference))
	infer.Post("/completions", s.limitBody(s.cfg.BodyLimit), s.completions)
	infer.Post("/chat/completions", s.limitBody(s.cfg.BodyLimit), s.chatCompletions)
	infer.Post("/embeddings", s.limitBody(s.cfg.BodyLimit), s.embeddings)
	infer.Post("/route", s.limitBody(s.cfg.BodyLimit), s.route)
	infer.Get("/models", s.listModels)
	infer.Get("/models/*", s.getModel)
	// vLLM's tokenizer routes, outside /v1 as there.
	inferAuth := s.auth(*s.cfg.ProtectInference)
	app.Post("/tokenize", inferAuth, s.limitBody(s.cfg.BodyLimit), s.tokenize)
	app.Post("/detokenize", inferAuth, s.limitBody(s.cfg.BodyLimit), s.detokenize)
	app.Get("/tokenizer_info", inferAuth, s.tokenizerInfo)

	app.Get("/lora-adapters", s.auth(*s.cfg.ProtectInference), s.listLoRAAdapters)

	admin := v1.Group("/experts", s.auth(true))
	admin.Get("", s.listExperts)
	admin.Post("/merge", s.limitBody(s.cfg.BodyLimit), s.mergeExperts)
	admin.Post("/map", s.limitBody(s.cfg.BodyLimit), s.mapExperts)
	admin.Post("", s.limitBody(s.cfg.UploadLimit), s.addExpert)
	admin.Get("/*", s.getExpert)
	admin.Put("/*", s.limitBody(s.cfg.UploadLimit), s.putInstances)
	admin.Delete("/*", s.deleteExpert)
	v1.Post("/load_lora_adapter", s.auth(true), s.limitBody(s.cfg.BodyLimit), s.loadLoRA)
	v1.Post("/unload_lora_adapter", s.auth(true), s.limitBody(s.cfg.BodyLimit), s.unloadLoRA)
	jobsAPI := v1.Group("/jobs", s.auth(true))
	jobsAPI.Get("", s.listJobs)
	jobsAPI.Post("/train", s.limitBody(s.cfg.BodyLimit), s.createTrainJob)
	jobsAPI.Get("/:id", s.getJob)
	jobsAPI.Delete("/:id", s.cancelJob)
	s.consoleRoutes()
	app.Use(func(c *fiber.Ctx) error {
		return &apiError{Status: fiber.StatusNotFound, Type: "invalid_request_error", Message: fmt.Sprintf("no route %s %s", c.Method(), c.Path())}
	})
}

// observe logs each request and counts it by route and status.
func (s *Server) observe(c *fiber.Ctx) error {
	t0 := time.Now()
	err := c.Next()
	if err != nil {
		if werr := s.writeError(c, err); werr != nil {
			return werr
		}
	}
	// A body left unread (an early 401, 404 or 413) would be parsed as the
	// next request on this connection: close it instead.
	if req := c.Request(); req.IsBodyStream() {
		if cl := req.Header.ContentLength(); cl < 0 || cl > prefetched {
			c.Response().SetConnectionClose()
		}
	}
	code := c.Response().StatusCode()
	s.metrics.requests.WithLabelValues(routeLabel(c), strconv.Itoa(code)).Inc()
	attrs := []any{"method", c.Method(), "path", c.Path(), "status", code,
		"ms", time.Since(t0).Milliseconds(), "request_id", c.Locals("requestid")}
	if u, ok := c.Locals("user").(string); ok {
		attrs = append(attrs, "user", u) // the request's user or safety_identifier
	}
	s.log.Info("request", attrs...)
	return nil
}

// routeLabel is the matched route pattern, so metrics do not grow with expert names.
func routeLabel(c *fiber.Ctx) string {
	if r := c.Route(); r != nil && r.Path != "/" && r.Path != "" {
		return r.Path
	}
	return "other"
}

// auth checks the bearer token when a key is configured and the route is protected.
func (s *Server) auth(protected bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if s.cfg.APIKey == "" || !protected {
			return c.Next()
		}
		h := c.Get(fiber.HeaderAuthorization)
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(s.cfg.APIKey)) != 1 {
			msg := "missing API key: send Authorization: Bearer KEY"
			if h != "" {
				msg = "incorrect API key"
			}
			return &apiError{Status: fiber.StatusUnauthorized, Type: "authentication_error", Code: "invalid_api_key", Message: msg}
		}
		return c.Next()
	}
}

// prefetched is what fasthttp reads of a streamed body before the handler.
const prefetched = 8 << 10

// limitBody reads the body for the handlers, refusing it when larger than n
// bytes (413: from Content-Length before reading anything, else after n+1
// bytes of a chunked body) or compressed (415: fiber's Body would inflate it
// without any bound).
func (s *Server) limitBody(n int) fiber.Handler {
	return func(c *fiber.Ctx) error {
		req := c.Request()
		if ce := strings.TrimSpace(string(req.Header.Peek(fiber.HeaderContentEncoding))); ce != "" && !strings.EqualFold(ce, "identity") {
			return &apiError{Status: fiber.StatusUnsupportedMediaType, Type: "invalid_request_error", Code: "unsupported_content_encoding",
				Message: fmt.Sprintf("Content-Encoding %q is not supported: send the body uncompressed", ce)}
		}
		tooLarge := func(size string) error {
			return &apiError{Status: fiber.StatusRequestEntityTooLarge, Type: "invalid_request_error", Code: "body_too_large",
				Message: fmt.Sprintf("request body of %s bytes exceeds the limit of %d bytes for %s", size, n, c.Path())}
		}
		cl := req.Header.ContentLength()
		if cl > n {
			return tooLarge(strconv.Itoa(cl))
		}
		if req.IsBodyStream() {
			buf := bytes.NewBuffer(make([]byte, 0, max(cl, 0)+1))
			if _, err := buf.ReadFrom(io.LimitReader(req.BodyStream(), int64(n)+1)); err != nil {
				return badRequest("", "cannot read the request body: %v", err)
			}
			if buf.Len() > n {
				return tooLarge("more than " + strconv.Itoa(n))
			}
			req.SetBodyRaw(buf.Bytes()) // and closes the stream
		} else if l := len(req.Body()); l > n {
			return tooLarge(strconv.Itoa(l))
		}
		return c.Next()
	}
}
