package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gofiber/fiber/v2"

	"roe/adapters"
	"roe/experts"
	"roe/library"
)

// Adapter management as vLLM and LoRAX users know it:
//
//	POST /v1/load_lora_adapter   {"lora_name", "lora_path", "load_inplace"}
//	POST /v1/unload_lora_adapter {"lora_name"}
//	PUT  /v1/experts/{name}/instances  instances.jsonl, or {"instances": [...]}
//	GET  /lora-adapters          llama.cpp's listing: [{"id", "name", "path", "scale"}]
//
// A loaded adapter is an expert of the library without instances: it is
// served by name (model, adapter_id, lora, experts) and auto routing never
// picks it until instances are added.

// loraRequest is the body of load_lora_adapter and unload_lora_adapter.
type loraRequest struct {
	LoraName    string `json:"lora_name"`
	LoraPath    string `json:"lora_path"`
	LoadInplace bool   `json:"load_inplace"` // replace an expert of that name
}

// adapterRoot checks the adapter root, an existing folder, and makes it absolute.
func adapterRoot(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("adapter root: %w", err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("adapter root: %w", err)
	}
	if !st.IsDir() {
		return "", fmt.Errorf("adapter root %s is not a folder", dir)
	}
	return abs, nil
}

// textOK answers 200 with a line of text, as vLLM answers these routes.
func textOK(c *fiber.Ctx, format string, a ...any) error {
	c.Set(fiber.HeaderContentType, fiber.MIMETextPlainCharsetUTF8)
	return c.Status(fiber.StatusOK).SendString(fmt.Sprintf(format, a...))
}

func (s *Server) loadLoRA(c *fiber.Ctx) error {
	e, err := s.needExperts()
	if err != nil {
		return err
	}
	if s.cfg.AdapterRoot == "" {
		return &apiError{Status: fiber.StatusForbidden, Type: "permission_error", Code: "adapter_root_unset",
			Message: "loading adapters from the server's disk is off: start roe serve with --adapter-root DIR (or upload one with POST /v1/experts)"}
	}
	var r loraRequest
	if err := decodeStrict(c, &r); err != nil {
		return err
	}
	if r.LoraName == "" || r.LoraPath == "" {
		param := "lora_name"
		if r.LoraName != "" {
			param = "lora_path"
		}
		return badRequest(param, "Both 'lora_name' and 'lora_path' must be provided.")
	}
	if err := experts.CheckName(r.LoraName, s.cfg.ModelID); err != nil {
		return domainError(err)
	}
	exists := e.Has(r.LoraName)
	if exists && !r.LoadInplace {
		return badRequest("lora_name", "The lora adapter '%s' has already been loaded (send load_inplace: true to replace it).", r.LoraName)
	}
	x, err := s.readAdapter(r.LoraPath)
	if err != nil {
		return err
	}
	x.Name = r.LoraName
	if !x.Kind.Valid() {
		x.Kind = library.KindImported
	}
	if x.Description == "" {
		x.Description = "loaded from " + r.LoraPath
	}
	o := experts.AddOptions{NameOnly: true}
	if exists {
		_, err = e.Replace(x, o)
	} else {
		_, err = e.Add(x, o)
	}
	if err != nil {
		return adapterError(err)
	}
	s.log.Info("loaded LoRA adapter", "name", r.LoraName, "path", r.LoraPath, "instances", len(x.Instances), "replaced", exists)
	verb := "added"
	if exists {
		verb = "replaced"
	}
	return textOK(c, "Success: LoRA adapter '%s' %s successfully.", r.LoraName, verb)
}

// adapterError is a loading error as vLLM answers it: 400, or 404 for a
// name or file that is not there.
func adapterError(err error) error {
	var ae *apiError
	if errors.As(domainError(err), &ae) {
		if ae.Status == fiber.StatusUnprocessableEntity || ae.Status == fiber.StatusConflict {
			ae.Status = fiber.StatusBadRequest
		}
		return ae
	}
	return err
}

func (s *Server) unloadLoRA(c *fiber.Ctx) error {
	e, err := s.needExperts()
	if err != nil {
		return err
	}
	var r struct {
		LoraName string `json:"lora_name"`
	}
	if err := decodeStrict(c, &r); err != nil {
		return err
	}
	if r.LoraName == "" {
		return badRequest("lora_name", "'lora_name' must be provided.")
	}
	if !e.Has(r.LoraName) {
		return &apiError{Status: fiber.StatusNotFound, Type: "invalid_request_error", Param: "lora_name", Code: "model_not_found",
			Message: fmt.Sprintf("The lora adapter '%s' cannot be found.", r.LoraName)}
	}
	if err := e.Remove(r.LoraName); err != nil {
		return domainError(err)
	}
	s.log.Info("unloaded LoRA adapter", "name", r.LoraName)
	return textOK(c, "Success: LoRA adapter '%s' removed successfully.", r.LoraName)
}

// adapterRel resolves lora_path against the adapter root: a path relative to
// the root, or an absolute one under it. The result is relative to the root,
// slash-separated, with no ".." (os.Root then refuses symlinks that lead out).
func (s *Server) adapterRel(p string) (string, error) {
	outside := badRequest("lora_path", "lora_path %q is outside the adapter root: give a path relative to it, or an absolute one under it", p)
	if strings.ContainsRune(p, 0) {
		return "", outside
	}
	var rel string
	if filepath.IsAbs(p) {
		p = filepath.Clean(p)
		for _, root := range []string{s.cfg.AdapterRoot, s.adapterRootReal} {
			if r, err := filepath.Rel(root, p); err == nil && filepath.IsLocal(r) {
				rel = r
				break
			}
		}
		if rel == "" {
			return "", outside
		}
	} else {
		if !filepath.IsLocal(p) {
			return "", outside
		}
		rel = filepath.Clean(p)
	}
	return filepath.ToSlash(rel), nil
}

// readAdapter reads lora_path under the adapter root: a PEFT folder
// (adapter_config.json, adapter_model.safetensors, and expert.json and
// instances.jsonl when there) or a llama.cpp GGUF LoRA file.
func (s *Server) readAdapter(p string) (*library.Expert, error) {
	rel, err := s.adapterRel(p)
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(s.cfg.AdapterRoot)
	if err != nil {
		return nil, fmt.Errorf("adapter root: %w", err)
	}
	defer root.Close()
	fsys := root.FS()
	st, err := fs.Stat(fsys, rel)
	if err != nil {
		return nil, pathError(p, err)
	}
	invalid := func(err error) error {
		return &apiError{Status: fiber.StatusBadRequest, Type: "invalid_request_error", Param: "lora_path", Code: "invalid_adapter",
			Message: fmt.Sprintf("lora_path %s: %v", p, err)}
	}
	if !st.IsDir() {
		b, err := fs.ReadFile(fsys, rel)
		if err != nil {
			return nil, pathError(p, err)
		}
		if !bytes.HasPrefix(b, []byte("GGUF")) {
			return nil, invalid(errors.New("not a PEFT adapter folder nor a GGUF LoRA file"))
		}
		l, err := adapters.ParseGGUF(p, b, s.cfg.Model.Config)
		if err != nil {
			return nil, invalid(err)
		}
		cfg, tensors, err := library.ExpertFromLoRA(l)
		if err != nil {
			return nil, err
		}
		return &library.Expert{AdapterConfig: cfg, Tensors: tensors}, nil
	}
	x, err := library.ImportFS(fsys, rel)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &apiError{Status: fiber.StatusNotFound, Type: "invalid_request_error", Param: "lora_path", Code: "adapter_not_found",
				Message: fmt.Sprintf("No adapter found at %s: %v", p, err)}
		}
		if isEscape(err) {
			return nil, badRequest("lora_path", "lora_path %s leads outside the adapter root (a symbolic link)", p)
		}
		return nil, invalid(err)
	}
	// Checked against the base model here, so a bad adapter is a 400 that
	// names the path rather than an expert error.
	if _, err := x.LoRA(s.cfg.Model.Config); err != nil {
		return nil, invalid(err)
	}
	return x, nil
}

func pathError(p string, err error) error {
	if isEscape(err) {
		return badRequest("lora_path", "lora_path %s leads outside the adapter root (a symbolic link)", p)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return &apiError{Status: fiber.StatusNotFound, Type: "invalid_request_error", Param: "lora_path", Code: "adapter_not_found",
			Message: fmt.Sprintf("No adapter found at %s", p)}
	}
	return badRequest("lora_path", "lora_path %s: %v", p, err)
}

// isEscape reports os.Root's refusal of a path that leads out of the root.
func isEscape(err error) bool {
	return err != nil && strings.Contains(err.Error(), "escapes from parent")
}

// putInstances replaces an expert's instances: PUT /v1/experts/{name}/instances
// with instances.jsonl as the body, or {"instances": [...]}.
func (s *Server) putInstances(c *fiber.Ctx) error {
	e, err := s.needExperts()
	if err != nil {
		return err
	}
	path, err := expertName(c)
	if err != nil {
		return err
	}
	name, ok := strings.CutSuffix(path, "/instances")
	if !ok || name == "" {
		return &apiError{Status: fiber.StatusNotFound, Type: "invalid_request_error",
			Message: fmt.Sprintf("no route PUT %s: PUT /v1/experts/{name}/instances sets an expert's instances", c.Path())}
	}
	body := bytes.TrimSpace(c.Body())
	var ins []library.Instance
	if len(body) > 0 && body[0] == '{' {
		var obj struct {
			Instances json.RawMessage `json:"instances"`
		}
		if json.Unmarshal(body, &obj) == nil && obj.Instances != nil {
			if err := json.Unmarshal(obj.Instances, &ins); err != nil {
				return badRequest("instances", "instances must be a list of {\"input\", \"answer_choices\", \"target\"} objects: %v", err)
			}
			for i, in := range ins {
				if in.Text == "" {
					return badRequest(fmt.Sprintf("instances[%d].input", i), "instance %d has no input", i)
				}
			}
			body = nil
		}
	}
	if body != nil {
		if ins, err = library.ReadInstances(bytes.NewReader(body), "instances.jsonl"); err != nil {
			return unprocessable("instances", "invalid_instances", "%v", err)
		}
	}
	if len(ins) == 0 {
		return badRequest("instances", "send at least one instance: instances.jsonl lines, or {\"instances\": [...]}")
	}
	m, err := e.SetInstances(name, ins, experts.AddOptions{})
	if err != nil {
		return domainError(err)
	}
	return c.JSON(expertListing{Manifest: m, Routable: m.NumInstances > 0})
}

// expertListing is an expert as the admin routes show it.
type expertListing struct {
	library.Manifest
	// Routable says whether auto routing can pick the expert: an expert
	// without instances (loaded by path, or added without instances.jsonl)
	// is served only by name.
	Routable bool `json:"routable"`
	// Rank and Alpha are the adapter's (0 when its configuration lacks them).
	Rank  int     `json:"rank,omitempty"`
	Alpha float64 `json:"alpha,omitempty"`
	// Stats are the server's selections of the expert since it loaded it.
	Stats *experts.ExpertStats `json:"stats,omitempty"`
}

func listings(ms []library.Manifest) []expertListing {
	out := make([]expertListing, len(ms))
	for i, m := range ms {
		out[i] = expertListing{Manifest: m, Routable: m.NumInstances > 0}
	}
	return out
}

// loraAdapter is one entry of GET /lora-adapters (llama.cpp's shape): id is
// the index that a request's lora field may use, path the expert's name.
// Scale is 0: roe applies no expert unless a request asks for it.
type loraAdapter struct {
	ID       int     `json:"id"`
	Name     string  `json:"name"`
	Path     string  `json:"path"`
	Scale    float64 `json:"scale"`
	Routable bool    `json:"routable"`
}

// loraNames are the experts in the order of GET /lora-adapters: by name.
func (s *Server) loraNames() []string {
	if s.cfg.Experts == nil {
		return nil
	}
	ms := s.cfg.Experts.List()
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Name
	}
	return out
}

func (s *Server) listLoRAAdapters(c *fiber.Ctx) error {
	out := []loraAdapter{}
	if s.cfg.Experts != nil {
		for i, m := range s.cfg.Experts.List() {
			out = append(out, loraAdapter{ID: i, Name: m.Name, Path: m.Name, Routable: m.NumInstances > 0})
		}
	}
	return c.JSON(out)
}

// maxScale bounds a request's adapter scale, as the experts field's weights.
const maxScale = 1e3

// adapterRefs reads the adapter-choosing fields of other servers into
// roe's: LoRAX's adapter_id (an expert by name, like model) and llama.cpp's
// lora, [{"id": index or name, "scale": s}] (entries at scale 0 are left
// out; one expert is applied at its scale, unmerged; several are merged
// with their scales as weights). It returns the refs of a composition, or
// nil with r.Model set.
func (s *Server) adapterRefs(r *commonRequest, refs []experts.Ref) ([]experts.Ref, error) {
	hasLora := len(r.Lora) > 0 && string(r.Lora) != "null"
	if r.AdapterID != "" {
		switch {
		case len(refs) > 0:
			return nil, badRequest("adapter_id", "adapter_id and experts exclude each other: choose the expert with one of them")
		case hasLora:
			return nil, badRequest("adapter_id", "adapter_id and lora exclude each other: choose the expert with one of them")
		case r.Model == "" || r.Model == s.cfg.ModelID || r.Model == r.AdapterID:
			r.Model = r.AdapterID
		default:
			return nil, badRequest("adapter_id", "adapter_id %q and model %q disagree: adapter_id chooses the expert (LoRAX); send model %q or the base model's id %q",
				r.AdapterID, r.Model, r.AdapterID, s.cfg.ModelID)
		}
	}
	if !hasLora {
		return refs, nil
	}
	if len(refs) > 0 {
		return nil, badRequest("lora", "lora and experts exclude each other: choose the experts with one of them")
	}
	var items []struct {
		ID    json.RawMessage `json:"id"`
		Scale *float64        `json:"scale"`
	}
	if err := json.Unmarshal(r.Lora, &items); err != nil {
		return nil, badRequest("lora", "lora must be a list of {\"id\": index or name, \"scale\": number} objects")
	}
	if err := s.loraFields(r.Lora); err != nil {
		return nil, err
	}
	names := s.loraNames()
	seen := map[string]bool{}
	for i, it := range items {
		param := fmt.Sprintf("lora[%d]", i)
		var name string
		var idx int
		switch {
		case json.Unmarshal(it.ID, &name) == nil && name != "":
		case json.Unmarshal(it.ID, &idx) == nil:
			if idx < 0 || idx >= len(names) {
				return nil, notFound("%s.id: no adapter %d: GET /lora-adapters lists %d (ids 0 to %d), or give the expert's name", param, idx, len(names), len(names)-1)
			}
			name = names[idx]
		default:
			return nil, badRequest(param+".id", "%s.id must be an adapter's index in GET /lora-adapters or an expert's name", param)
		}
		scale := 1.0
		if it.Scale != nil {
			scale = *it.Scale
		}
		if math.IsNaN(scale) || math.IsInf(scale, 0) || math.Abs(scale) > maxScale {
			return nil, badRequest(param+".scale", "%s.scale must be a finite number of magnitude ≤ %g", param, float64(maxScale))
		}
		if seen[name] {
			return nil, badRequest(param+".id", "the adapter %q is listed twice", name)
		}
		seen[name] = true
		if scale != 0 {
			refs = append(refs, experts.Ref{Name: name, Weight: scale})
		}
	}
	switch {
	case r.Model == experts.Auto:
		return nil, badRequest("lora", "lora chooses the experts; it does not apply to model %q", experts.Auto)
	case r.Model != "" && r.Model != s.cfg.ModelID && !(len(refs) == 1 && refs[0].Name == r.Model):
		return nil, badRequest("lora", "lora and model %q disagree: send the base model's id %q with lora", r.Model, s.cfg.ModelID)
	}
	if len(refs) == 0 {
		r.Model = s.cfg.ModelID // every adapter at scale 0: the base model
	}
	return refs, nil
}

// loraFields refuses an unknown field in a lora entry by name, as
// checkFields does for the body (unless the server ignores them).
func (s *Server) loraFields(raw json.RawMessage) error {
	var entries []map[string]json.RawMessage
	if json.Unmarshal(raw, &entries) != nil || s.cfg.IgnoreUnknownFields {
		return nil
	}
	for i, e := range entries {
		keys := make([]string, 0, len(e))
		for k := range e {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if k != "id" && k != "scale" {
				name := fmt.Sprintf("lora[%d].%s", i, k)
				return badRequest(name, "unknown field %q: a lora entry is {\"id\", \"scale\"}", name)
			}
		}
	}
	return nil
}
