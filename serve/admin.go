package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/url"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"roe/adapters"
	"roe/experts"
	"roe/library"
	"roe/model/safetensors"
)

func (s *Server) needExperts() (*experts.Catalog, error) {
	if s.cfg.Experts == nil {
		return nil, &apiError{Status: fiber.StatusNotFound, Type: "invalid_request_error", Message: "this server has no expert library"}
	}
	return s.cfg.Experts, nil
}

// expertName is the name after /v1/experts/, which may contain slashes (task/template).
func expertName(c *fiber.Ctx) (string, error) {
	n, err := url.PathUnescape(c.Params("*"))
	if err != nil || n == "" {
		return "", badRequest("name", "missing or malformed expert name in the path")
	}
	return n, nil
}

func (s *Server) listExperts(c *fiber.Ctx) error {
	e, err := s.needExperts()
	if err != nil {
		return err
	}
	ms, err := e.Library().List()
	if err != nil {
		return err
	}
	ls := listings(ms)
	for i := range ls {
		s.describe(e, &ls[i], nil)
	}
	return c.JSON(fiber.Map{"object": "list", "data": ls})
}

// maxShownInstances bounds GET /v1/experts/{name}?instances=N.
const maxShownInstances = 100

// expertDetail is GET /v1/experts/{name}: the listing, the adapter's
// configuration and, when asked (?instances=N), its first N instances.
type expertDetail struct {
	expertListing
	AdapterConfig json.RawMessage    `json:"adapter_config,omitempty"`
	Instances     []library.Instance `json:"instances,omitempty"`
}

func (s *Server) getExpert(c *fiber.Ctx) error {
	e, err := s.needExperts()
	if err != nil {
		return err
	}
	name, err := expertName(c)
	if err != nil {
		return err
	}
	n := 0
	if v := c.Query("instances"); v != "" {
		if n, err = strconv.Atoi(v); err != nil || n < 0 || n > maxShownInstances {
			return badRequest("instances", "instances must be an integer in [0, %d], got %q", maxShownInstances, v)
		}
	}
	switch dl := c.Query("download"); dl {
	case "":
	case "zip":
		x, err := e.Library().Get(name)
		if err != nil {
			return domainError(err)
		}
		var b bytes.Buffer
		if err := library.WriteZip(x, &b); err != nil {
			return err
		}
		c.Set(fiber.HeaderContentType, "application/zip")
		c.Set(fiber.HeaderContentDisposition, fmt.Sprintf("attachment; filename=%q", strings.ReplaceAll(name, "/", "-")+".zip"))
		return c.Send(b.Bytes())
	default:
		return badRequest("download", "download must be zip, got %q", dl)
	}
	cfg, m, err := e.Library().AdapterConfig(name)
	if err != nil {
		return domainError(err)
	}
	d := expertDetail{expertListing: expertListing{Manifest: m, Routable: m.NumInstances > 0}}
	s.describe(e, &d.expertListing, cfg)
	if json.Valid(cfg) {
		d.AdapterConfig = cfg
	}
	if n > 0 {
		ins, err := e.Library().Instances(name)
		if err != nil {
			return domainError(err)
		}
		for _, in := range ins[:min(n, len(ins))] {
			in.Embedding = nil
			d.Instances = append(d.Instances, in)
		}
	}
	return c.JSON(d)
}

// adapterInfo is what a listing shows of an adapter's configuration.
type adapterInfo struct {
	rank  int
	alpha float64
}

// describe adds the adapter's rank and alpha (parsed from its configuration
// once per stored expert id: cfg when the caller has read it, else read
// here) and the catalog's selections to a listing.
func (s *Server) describe(e *experts.Catalog, l *expertListing, cfg []byte) {
	if st, ok := e.Stats(l.Name); ok {
		l.Stats = &st
	}
	v, ok := s.adapterInfo.Load(l.ID)
	if !ok {
		b := cfg
		if b == nil {
			var m library.Manifest
			var err error
			if b, m, err = e.Library().AdapterConfig(l.Name); err != nil || m.ID != l.ID {
				return // gone or replaced meanwhile: the next listing reads the new one
			}
		}
		var rc struct {
			R     int     `json:"r"`
			Alpha float64 `json:"lora_alpha"`
		}
		json.Unmarshal(b, &rc) // a foreign config without them shows none
		v, _ = s.adapterInfo.LoadOrStore(l.ID, adapterInfo{rc.R, rc.Alpha})
	}
	a := v.(adapterInfo)
	l.Rank, l.Alpha = a.rank, a.alpha
}

// uploadedLoRA parses an uploaded adapter against the base model: the GGUF
// file when given, else the PEFT pair.
func (s *Server) uploadedLoRA(cfgJSON, weights, ggufLoRA []byte) (*adapters.LoRA, error) {
	if ggufLoRA != nil {
		l, err := adapters.ParseGGUF("adapter.gguf", ggufLoRA, s.cfg.Model.Config)
		if err != nil {
			return nil, unprocessable("adapter.gguf", "invalid_adapter", "adapter.gguf: %v", err)
		}
		return l, nil
	}
	acfg, err := adapters.ParseConfig(cfgJSON)
	if err != nil {
		return nil, unprocessable("adapter_config.json", "invalid_adapter", "adapter_config.json: %v", err)
	}
	st, err := safetensors.FromBytes("adapter_model.safetensors", weights)
	if err != nil {
		return nil, unprocessable("adapter_model.safetensors", "invalid_adapter", "%v", err)
	}
	l, err := adapters.FromTensors(acfg, s.cfg.Model.Config, st)
	if err != nil {
		return nil, unprocessable("adapter_model.safetensors", "invalid_adapter", "adapter_model.safetensors: %v", err)
	}
	return l, nil
}

// mapExperts is POST /v1/experts/map: the library's instances on the
// principal plane of the routing index, with the body's queries placed
// among them ({"queries": [...], "max_points": N}).
func (s *Server) mapExperts(c *fiber.Ctx) error {
	e, err := s.needExperts()
	if err != nil {
		return err
	}
	var r struct {
		Queries   []string `json:"queries"`
		MaxPoints *int     `json:"max_points"`
	}
	if len(c.Body()) > 0 {
		if err := decodeStrict(c, &r); err != nil {
			return err
		}
	}
	n := defaultMapPoints
	if r.MaxPoints != nil {
		if *r.MaxPoints < 1 || *r.MaxPoints > maxMapPoints {
			return badRequest("max_points", "max_points must be in [1, %d], got %d", maxMapPoints, *r.MaxPoints)
		}
		n = *r.MaxPoints
	}
	m, err := e.Map(c.UserContext(), r.Queries, n)
	if err != nil {
		return domainError(err)
	}
	return c.JSON(m)
}

// Points of POST /v1/experts/map: the default and the most.
const (
	defaultMapPoints = 5000
	maxMapPoints     = 20000
)

func (s *Server) deleteExpert(c *fiber.Ctx) error {
	e, err := s.needExperts()
	if err != nil {
		return err
	}
	name, err := expertName(c)
	if err != nil {
		return err
	}
	if err := e.Remove(name); err != nil {
		return domainError(err)
	}
	return c.JSON(fiber.Map{"id": name, "object": "expert", "deleted": true})
}

// memoryForm parses the multipart body that limitBody has read, in memory:
// fiber's MultipartForm would spill files past 8 KiB to os.TempDir.
func memoryForm(c *fiber.Ctx) (*multipart.Form, error) {
	boundary := string(c.Request().Header.MultipartFormBoundary())
	if boundary == "" {
		return nil, errors.New("missing or malformed multipart boundary in Content-Type")
	}
	body := c.Body()
	// Files never hold more than the body, so none of them goes to disk.
	return multipart.NewReader(bytes.NewReader(body), boundary).ReadForm(int64(len(body)) + 1)
}

// formFile reads one uploaded file, bounded by the route's body limit.
func formFile(form *multipart.Form, name string, required bool) ([]byte, error) {
	fhs := form.File[name]
	if len(fhs) == 0 {
		if required {
			return nil, badRequest(name, "missing file %q in the multipart form", name)
		}
		return nil, nil
	}
	f, err := fhs[0].Open()
	if err != nil {
		return nil, badRequest(name, "cannot read %q: %v", name, err)
	}
	defer f.Close()
	return io.ReadAll(f)
}

func formValue(form *multipart.Form, name string) string {
	if v := form.Value[name]; len(v) > 0 {
		return strings.TrimSpace(v[0])
	}
	return ""
}

// addExpert stores an uploaded expert (multipart: name, kind, description,
// dataset, template, prompt; files adapter_config.json and
// adapter_model.safetensors, or adapter.gguf; instances.jsonl). It is
// routable when the call returns, or, without instances.jsonl, served by
// name only.
func (s *Server) addExpert(c *fiber.Ctx) error {
	e, err := s.needExperts()
	if err != nil {
		return err
	}
	form, err := memoryForm(c)
	if err != nil {
		return badRequest("", "POST /v1/experts takes multipart/form-data: %v", err)
	}
	x := &library.Expert{}
	x.Name, x.Kind = formValue(form, "name"), library.Kind(formValue(form, "kind"))
	x.Description, x.Dataset = formValue(form, "description"), formValue(form, "dataset")
	x.Template, x.Prompt = formValue(form, "template"), formValue(form, "prompt")
	if x.Name == "" {
		return badRequest("name", "the field \"name\" is required")
	}
	if x.Kind == "" {
		x.Kind = library.KindImported
	}
	if !x.Kind.Valid() {
		return badRequest("kind", "kind must be prompt, dataset, merged or imported, got %q", x.Kind)
	}
	if err := experts.CheckName(x.Name, s.cfg.ModelID); err != nil {
		return domainError(err)
	}
	if e.Has(x.Name) {
		return domainError(fmt.Errorf("%w: %s", library.ErrExists, x.Name))
	}
	// Client embeddings are kept only when the form says which embedder made
	// them and it is this server's (experts.Prepare); others are remade.
	x.Embedder = formValue(form, "embedder")
	// The adapter: a PEFT pair, or a llama.cpp GGUF LoRA as adapter.gguf.
	ggufLoRA, err := formFile(form, "adapter.gguf", false)
	if err != nil {
		return err
	}
	var cfgJSON, weights []byte
	if ggufLoRA != nil {
		if len(form.File["adapter_config.json"]) > 0 || len(form.File["adapter_model.safetensors"]) > 0 {
			return badRequest("adapter.gguf", "send either adapter.gguf or adapter_config.json with adapter_model.safetensors, not both")
		}
	} else {
		if cfgJSON, err = formFile(form, "adapter_config.json", true); err != nil {
			return err
		}
		if weights, err = formFile(form, "adapter_model.safetensors", true); err != nil {
			return err
		}
	}
	// Without instances.jsonl the expert is served by name only until PUT
	// /v1/experts/{name}/instances gives it some.
	insJSONL, err := formFile(form, "instances.jsonl", false)
	if err != nil {
		return err
	}
	// Validate the adapter against the base model before anything is stored.
	lora, err := s.uploadedLoRA(cfgJSON, weights, ggufLoRA)
	if err != nil {
		return err
	}
	x.AdapterConfig, x.Tensors, err = library.ExpertFromLoRA(lora)
	if err != nil {
		return err
	}
	if insJSONL != nil {
		if x.Embedder != e.EmbedderID() {
			insJSONL = withoutEmbeddings(insJSONL)
		}
		ins, err := library.ReadInstances(bytes.NewReader(insJSONL), "instances.jsonl")
		if err != nil {
			return unprocessable("instances.jsonl", "invalid_instances", "%v", err)
		}
		if len(ins) == 0 {
			return unprocessable("instances.jsonl", "invalid_instances", "instances.jsonl has no instances")
		}
		x.Instances = ins
	}
	m, err := e.Add(x, experts.AddOptions{NameOnly: insJSONL == nil})
	if err != nil {
		return domainError(err)
	}
	return c.Status(fiber.StatusCreated).JSON(expertListing{Manifest: m, Routable: m.NumInstances > 0})
}

// withoutEmbeddings drops the "embedding" of each instances.jsonl line: the
// server remakes those, so values it will never use cannot fail an upload.
// Lines that are not JSON objects are kept for ReadInstances to report.
func withoutEmbeddings(jsonl []byte) []byte {
	lines := bytes.Split(jsonl, []byte("\n"))
	for i, l := range lines {
		var m map[string]json.RawMessage
		if json.Unmarshal(l, &m) != nil || m["embedding"] == nil {
			continue
		}
		delete(m, "embedding")
		lines[i], _ = json.Marshal(m)
	}
	return bytes.Join(lines, []byte("\n"))
}

type mergeRequest struct {
	Name        string          `json:"name"`
	Experts     json.RawMessage `json:"experts"`
	Method      string          `json:"method"`
	Density     float64         `json:"density"`
	Rank        int             `json:"rank"`
	T           float64         `json:"t"`
	Seed        uint64          `json:"seed"`
	Description string          `json:"description"`
}

// mergeExperts stores a merged expert: its adapter is the merge, its instances
// the union of its sources' (sampled to S).
func (s *Server) mergeExperts(c *fiber.Ctx) error {
	e, err := s.needExperts()
	if err != nil {
		return err
	}
	var r mergeRequest
	if err := decode(c, &r); err != nil {
		return err
	}
	if r.Name == "" {
		return badRequest("name", "the field \"name\" is required")
	}
	refs, err := parseExpertRefs(r.Experts)
	if err != nil {
		return err
	}
	o, err := e.MergeOptions(r.Method)
	if err != nil {
		return domainError(err)
	}
	o.Density, o.Rank, o.T, o.Seed = r.Density, r.Rank, r.T, r.Seed
	m, err := e.Merge(experts.MergeSpec{Name: r.Name, Description: r.Description, Experts: refs, Options: o})
	if err != nil {
		return domainError(err)
	}
	return c.Status(fiber.StatusCreated).JSON(m)
}
