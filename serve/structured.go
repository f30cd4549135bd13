package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"sync"

	"roe/constrain"
	"roe/model"
)

// outputs holds what structured output needs across requests: the
// vocabulary's token trie (built on first use) and recently compiled grammars
// (their mask caches make a repeated schema cheap).
type outputs struct {
	once  sync.Once
	vocab *constrain.Vocab

	mu    sync.Mutex
	grams map[string]*constrain.Grammar
	order []string
}

const maxCachedGrammars = 64

func (s *Server) constrainVocab() *constrain.Vocab {
	s.outs.once.Do(func() {
		m := s.cfg.Model
		s.outs.vocab = constrain.FromTokenizer(s.cfg.Tokenizer, m.Config.VocabSize, m.Config.EOS)
	})
	return s.outs.vocab
}

// grammar compiles (or finds) the grammar of a schema between prefix and
// suffix; schema nil is any JSON object.
func (s *Server) grammar(schema []byte, prefix, suffix string) (*constrain.Grammar, error) {
	key := prefix + "\x00" + suffix + "\x00" + string(schema)
	s.outs.mu.Lock()
	g := s.outs.grams[key]
	s.outs.mu.Unlock()
	if g != nil {
		return g, nil
	}
	var err error
	switch {
	case schema == nil && prefix == "" && suffix == "":
		g = constrain.AnyObject()
	case schema == nil:
		g, err = constrain.CompileWrapped([]byte(`{"type":"object"}`), prefix, suffix)
	default:
		g, err = constrain.CompileWrapped(schema, prefix, suffix)
	}
	if err != nil {
		return nil, err
	}
	s.outs.mu.Lock()
	defer s.outs.mu.Unlock()
	if s.outs.grams == nil {
		s.outs.grams = map[string]*constrain.Grammar{}
	}
	if _, ok := s.outs.grams[key]; !ok {
		if len(s.outs.order) >= maxCachedGrammars {
			delete(s.outs.grams, s.outs.order[0])
			s.outs.order = s.outs.order[1:]
		}
		s.outs.order = append(s.outs.order, key)
	}
	s.outs.grams[key] = g
	return g, nil
}

// outputSpec is what a request asks of its output's form.
type outputSpec struct {
	grammar *constrain.Grammar // nil: free text
	param   string             // the field that asked for the grammar
	tools   *toolSet           // nil: no tools
}

type responseFormat struct {
	Type       string `json:"type"`
	JSONSchema *struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Schema      json.RawMessage `json:"schema"`
		Strict      *bool           `json:"strict"`
	} `json:"json_schema"`
}

// strictJSON decodes raw into v, refusing fields v does not have (named by
// their path under param).
func strictJSON(raw json.RawMessage, v any, param string) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			f = param + "." + strings.Trim(f, `"`)
			return badRequest(f, "unknown field %q", f)
		}
		return badRequest(param, "%s is malformed: %v", param, err)
	}
	return nil
}

func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}

// responseFormatSpec reads response_format: text (nil), json_object or json_schema.
func (s *Server) responseFormatSpec(raw json.RawMessage) (*outputSpec, error) {
	if isNull(raw) {
		return nil, nil
	}
	var rf responseFormat
	if err := strictJSON(raw, &rf, "response_format"); err != nil {
		return nil, err
	}
	switch rf.Type {
	case "text":
		if rf.JSONSchema != nil {
			return nil, badRequest("response_format.json_schema", "json_schema goes with type json_schema")
		}
		return nil, nil
	case "json_object":
		if rf.JSONSchema != nil {
			return nil, badRequest("response_format.json_schema", "json_schema goes with type json_schema")
		}
		g, err := s.grammar(nil, "", "")
		if err != nil {
			return nil, err
		}
		return &outputSpec{grammar: g, param: "response_format"}, nil
	case "json_schema":
		if rf.JSONSchema == nil {
			return nil, badRequest("response_format.json_schema", "type json_schema needs a json_schema object")
		}
		var schema []byte
		if !isNull(rf.JSONSchema.Schema) {
			schema = rf.JSONSchema.Schema
		}
		g, err := s.grammar(schema, "", "")
		if err != nil {
			return nil, schemaError("response_format.json_schema.schema", err)
		}
		return &outputSpec{grammar: g, param: "response_format"}, nil
	case "":
		return nil, badRequest("response_format.type", "response_format needs a type: text, json_object or json_schema")
	}
	return nil, badRequest("response_format.type", "response_format type %q is not supported: text, json_object or json_schema", rf.Type)
}

func schemaError(param string, err error) error {
	if errors.Is(err, constrain.ErrUnsupported) || errors.Is(err, constrain.ErrSchema) || errors.Is(err, constrain.ErrUnsatisfiable) {
		return badRequest(param, "%s: %v", param, err)
	}
	return err
}

// constrainBudget fits prompt i's budget to the plan's output grammar:
// without an explicit max_tokens the output may use the rest of the context,
// and a max_tokens below the shortest valid output is refused. Call it after
// maxTokens, which reads max_completion_tokens into r.MaxTokens.
func (s *Server) constrainBudget(p *plan, r *commonRequest, i int) error {
	spec := p.spec
	if spec == nil || spec.grammar == nil {
		return nil
	}
	if len(p.stops) > 0 {
		return badRequest("stop", "stop cannot be combined with %s: a stop string could cut the output short of valid JSON", spec.param)
	}
	pr := &p.prompts[i]
	if r.MaxTokens == nil {
		pr.maxNew = max(1, min(s.cfg.MaxTokens, s.cfg.MaxContext-len(pr.ids)))
	}
	c, err := constrain.New(spec.grammar, s.constrainVocab())
	if err != nil {
		return badRequest(spec.param, "%s cannot be used with this model: %v", spec.param, err)
	}
	if need := c.MinTokens(); pr.maxNew < need {
		if r.MaxTokens == nil {
			param := "prompt"
			if p.chat {
				param = "messages"
			}
			return unprocessable(param, "context_length_exceeded", "the shortest output valid for %s may take %d tokens (one per byte); the prompt leaves %d", spec.param, need, pr.maxNew)
		}
		return badRequest("max_tokens", "max_tokens %d is too small for %s: the shortest valid output may take %d tokens (one per byte)", pr.maxNew, spec.param, need)
	}
	return nil
}

// newConstraint starts one sequence's constraint (nil without a grammar):
// each completion has its own, as a constraint has state.
func (s *Server) newConstraint(spec *outputSpec) (model.Constraint, error) {
	if spec == nil || spec.grammar == nil {
		return nil, nil
	}
	c, err := constrain.New(spec.grammar, s.constrainVocab())
	if err != nil {
		return nil, badRequest(spec.param, "%s cannot be used with this model: %v", spec.param, err)
	}
	return c, nil
}
