package serve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// Tools: declared functions are shown to the model through its chat template
// when the template renders tools, and otherwise through roe's generic
// rendering (a system text listing them, calls written as one JSON object
// {"name": ..., "arguments": {...}}). A forced call (tool_choice "required" or
// a named function) is generated under the call's JSON Schema, so it always
// parses; with "auto" the model's text is read back as a call when it is one.

type toolFunction struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
	Strict      *bool           `json:"strict,omitempty"`
}

type toolDef struct {
	Type     string       `json:"type"`
	Function toolFunction `json:"function"`
}

// toolCall is a call in a response (Index set in streamed deltas) or in an
// assistant message of the history.
type toolCall struct {
	Index    *int   `json:"index,omitempty"`
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"` // a JSON object, as text
	} `json:"function"`
}

// toolSet is a request's tools and how the model writes calls.
type toolSet struct {
	defs     []toolDef
	choice   string // none, auto, required or function
	forced   string // the function's name, for choice "function"
	template bool   // the model's chat template renders the tools
	single   bool   // parallel_tool_calls false: at most one call
	pre, suf string // the template's call markers ("" for bare JSON)
}

var toolName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// noArguments is the parameters schema of a function declared without one.
const noArguments = `{"type":"object","properties":{},"additionalProperties":false}`

// parseTools reads tools, tool_choice and parallel_tool_calls. nil: no tools
// (or tool_choice none).
func (s *Server) parseTools(toolsRaw, choiceRaw json.RawMessage, parallel *bool) (*toolSet, error) {
	var defs []toolDef
	if !isNull(toolsRaw) {
		if err := strictJSON(toolsRaw, &defs, "tools"); err != nil {
			return nil, err
		}
	}
	ts := &toolSet{defs: defs, choice: "auto"}
	if len(defs) == 0 {
		ts.choice = "none"
	}
	seen := map[string]bool{}
	for i, d := range defs {
		p := fmt.Sprintf("tools[%d]", i)
		if d.Type != "function" {
			return nil, badRequest(p+".type", "tool type %q is not supported: function only", d.Type)
		}
		if !toolName.MatchString(d.Function.Name) {
			return nil, badRequest(p+".function.name", "a function name is 1 to 64 letters, digits, _ or -, got %q", d.Function.Name)
		}
		if seen[d.Function.Name] {
			return nil, badRequest(p+".function.name", "function %q is declared twice", d.Function.Name)
		}
		seen[d.Function.Name] = true
		if isNull(d.Function.Parameters) {
			defs[i].Function.Parameters = json.RawMessage(noArguments)
		}
		if _, err := s.grammar(defs[i].Function.Parameters, "", ""); err != nil {
			return nil, schemaError(p+".function.parameters", err)
		}
	}
	if !isNull(choiceRaw) {
		var c string
		if json.Unmarshal(choiceRaw, &c) == nil {
			switch c {
			case "none", "auto", "required":
			default:
				return nil, badRequest("tool_choice", "tool_choice must be none, auto, required or {\"type\": \"function\", \"function\": {\"name\": ...}}, got %q", c)
			}
			ts.choice = c
		} else {
			var named struct {
				Type     string `json:"type"`
				Function struct {
					Name string `json:"name"`
				} `json:"function"`
			}
			if err := strictJSON(choiceRaw, &named, "tool_choice"); err != nil {
				return nil, err
			}
			if named.Type != "function" {
				return nil, badRequest("tool_choice.type", "tool_choice type %q is not supported: function only", named.Type)
			}
			if !seen[named.Function.Name] {
				return nil, badRequest("tool_choice.function.name", "tool_choice names %q, which tools does not declare", named.Function.Name)
			}
			ts.choice, ts.forced = "function", named.Function.Name
		}
		if ts.choice != "none" && len(defs) == 0 {
			return nil, badRequest("tool_choice", "tool_choice %s needs tools", ts.choice)
		}
	}
	// A forced call is one call; parallel_tool_calls false also keeps a
	// free answer to its first call (as vLLM does).
	ts.single = parallel != nil && !*parallel
	if ts.choice == "none" {
		return nil, nil
	}
	src := s.tmpl.source
	ts.template = strings.Contains(src, "tools")
	if ts.template && strings.Contains(src, "<tool_call>") {
		ts.pre, ts.suf = "<tool_call>\n", "\n</tool_call>"
	}
	return ts, nil
}

// callSchema is the JSON Schema of one call to d: {"name": d's name, "arguments": ...}.
func callSchema(d toolDef) string {
	name, _ := json.Marshal(d.Function.Name)
	return `{"type":"object","properties":{"name":{"const":` + string(name) + `},"arguments":` + string(d.Function.Parameters) +
		`},"required":["name","arguments"],"additionalProperties":false}`
}

// spec is the output spec of a tool request: a grammar when a call is forced.
func (s *Server) toolSpec(ts *toolSet) (*outputSpec, error) {
	spec := &outputSpec{tools: ts}
	if ts.choice == "auto" {
		return spec, nil
	}
	var alts []string
	for _, d := range ts.defs {
		if ts.choice == "required" || d.Function.Name == ts.forced {
			alts = append(alts, callSchema(d))
		}
	}
	schema := alts[0]
	if len(alts) > 1 {
		schema = `{"anyOf":[` + strings.Join(alts, ",") + `]}`
	}
	g, err := s.grammar([]byte(schema), ts.pre, ts.suf)
	if err != nil {
		return nil, schemaError("tools", err)
	}
	spec.grammar, spec.param = g, "tool_choice"
	return spec, nil
}

// parseCalls reads tool calls back from the model's text: the rest is the
// text outside them. With parallel_tool_calls false, calls after the first
// are dropped.
func (ts *toolSet) parseCalls(text string) (calls []toolCall, rest string) {
	calls, rest = ts.readCalls(text)
	if ts.single && len(calls) > 1 {
		calls = calls[:1]
	}
	return calls, rest
}

func (ts *toolSet) readCalls(text string) (calls []toolCall, rest string) {
	if ts.pre != "" {
		var out strings.Builder
		for {
			i := strings.Index(text, strings.TrimSpace(ts.pre))
			if i < 0 {
				break
			}
			j := strings.Index(text[i:], strings.TrimSpace(ts.suf))
			if j < 0 {
				break
			}
			body := text[i+len(strings.TrimSpace(ts.pre)) : i+j]
			c, ok := ts.readCall(body)
			if !ok {
				break
			}
			out.WriteString(text[:i])
			calls = append(calls, c)
			text = text[i+j+len(strings.TrimSpace(ts.suf)):]
		}
		out.WriteString(text)
		return calls, strings.TrimSpace(out.String())
	}
	if c, ok := ts.readCall(text); ok {
		return []toolCall{c}, ""
	}
	return nil, text
}

// readCall reads one call: a JSON object with a declared function's name and
// its arguments (an object; "parameters" is read as arguments too).
func (ts *toolSet) readCall(text string) (toolCall, bool) {
	var raw struct {
		Name       string          `json:"name"`
		Arguments  json.RawMessage `json:"arguments"`
		Parameters json.RawMessage `json:"parameters"`
	}
	var c toolCall
	text = strings.TrimSpace(text)
	if !strings.HasPrefix(text, "{") || json.Unmarshal([]byte(text), &raw) != nil {
		return c, false
	}
	args := raw.Arguments
	if isNull(args) {
		args = raw.Parameters
	}
	var str string
	if json.Unmarshal(args, &str) == nil { // arguments already as text
		args = json.RawMessage(str)
	}
	var compact bytes.Buffer
	if json.Compact(&compact, args) != nil || !bytes.HasPrefix(compact.Bytes(), []byte("{")) {
		return c, false
	}
	declared := false
	for _, d := range ts.defs {
		declared = declared || d.Function.Name == raw.Name
	}
	if !declared {
		return c, false
	}
	c.ID, c.Type = newID("call_"), "function"
	c.Function.Name, c.Function.Arguments = raw.Name, compact.String()
	return c, true
}

// callText is how a call in the history is written back for the model.
func callText(c toolCall) string {
	name, _ := json.Marshal(c.Function.Name)
	args := c.Function.Arguments
	if !json.Valid([]byte(args)) {
		a, _ := json.Marshal(args)
		args = string(a)
	}
	return `{"name": ` + string(name) + `, "arguments": ` + args + `}`
}

// toolsPrompt is roe's generic rendering of the tools, for models whose
// template does not render them.
func toolsPrompt(defs []toolDef) string {
	var b strings.Builder
	b.WriteString("You can call these tools. To call one, answer with only a JSON object {\"name\": <tool name>, \"arguments\": <its arguments>}.\n")
	for _, d := range defs {
		line, _ := json.Marshal(struct {
			Name        string          `json:"name"`
			Description string          `json:"description,omitempty"`
			Parameters  json.RawMessage `json:"parameters"`
		}{d.Function.Name, d.Function.Description, d.Function.Parameters})
		b.Write(line)
		b.WriteByte('\n')
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// turn is one chat message with the tool fields of the history.
type turn struct {
	message
	ToolCalls  []toolCall
	ToolCallID string
	Name       string // a tool message's function
}

// parseTurns reads messages: the roles system, developer, user, assistant
// (with tool_calls, content then optional) and tool (with tool_call_id and
// an optional name); content as parseMessages reads it.
func (s *Server) parseTurns(in []chatMessage) ([]turn, error) {
	if len(in) == 0 {
		return nil, badRequest("messages", "messages must be a non-empty list")
	}
	out := make([]turn, len(in))
	for i, m := range in {
		p := fmt.Sprintf("messages[%d]", i)
		t := turn{message: message{Role: m.Role}, ToolCallID: m.ToolCallID, Name: m.Name}
		switch m.Role {
		case "system", "user", "assistant", "developer", "tool":
		default:
			return nil, badRequest(p+".role", "unknown role %q", m.Role)
		}
		if !isNull(m.ToolCalls) {
			if m.Role != "assistant" {
				return nil, badRequest(p+".tool_calls", "%s.tool_calls: tool_calls belong to assistant messages", p)
			}
			if err := strictJSON(m.ToolCalls, &t.ToolCalls, p+".tool_calls"); err != nil {
				return nil, err
			}
			for k, c := range t.ToolCalls {
				if c.Type != "function" || c.Function.Name == "" || c.Index != nil {
					q := fmt.Sprintf("%s.tool_calls[%d]", p, k)
					return nil, badRequest(q, "%s: a tool call is {id, type: function, function: {name, arguments}}", q)
				}
			}
		}
		if m.Role == "tool" && m.ToolCallID == "" {
			return nil, badRequest(p+".tool_call_id", "%s.tool_call_id: a tool message needs the tool_call_id it answers", p)
		}
		if m.Role != "tool" && m.ToolCallID != "" {
			return nil, badRequest(p+".tool_call_id", "%s.tool_call_id: tool_call_id belongs to tool messages", p)
		}
		if m.Name != "" && m.Role != "tool" {
			return nil, badRequest(p+".name", "%s.name: participant names are not supported (name is read on tool messages only)", p)
		}
		if isNull(m.Content) && len(t.ToolCalls) > 0 {
			out[i] = t
			continue
		}
		msgs, err := s.parseMessages([]chatMessage{{Role: "user", Content: m.Content}})
		if err != nil {
			if ae, ok := err.(*apiError); ok {
				ae.Param = strings.Replace(ae.Param, "messages[0]", p, 1)
			}
			return nil, err
		}
		t.Content = msgs[0].Content
		out[i] = t
	}
	return out, nil
}

// flatten turns tool turns into plain messages for a template without tool
// support (or roe's fallback format): tools listed in the system text, calls
// written as JSON, results as tool (fallback) or user (template) messages.
func flatten(turns []turn, ts *toolSet, template bool) []message {
	var out []message
	if ts != nil {
		out = append(out, message{"system", toolsPrompt(ts.defs)})
		if len(turns) > 0 && (turns[0].Role == "system" || turns[0].Role == "developer") {
			out[0].Content = turns[0].Content + "\n\n" + out[0].Content
			turns = turns[1:]
		}
	}
	for _, t := range turns {
		m := t.message
		if len(t.ToolCalls) > 0 {
			parts := []string{}
			if m.Content != "" {
				parts = append(parts, m.Content)
			}
			for _, c := range t.ToolCalls {
				parts = append(parts, callText(c))
			}
			m.Content = strings.Join(parts, "\n")
		}
		if m.Role == "tool" && t.Name != "" {
			m.Content = t.Name + ": " + m.Content
		}
		if m.Role == "tool" && template {
			m = message{"user", "Tool result: " + m.Content}
		}
		out = append(out, m)
	}
	return out
}

// toolTemplateVars are the turns and tools as transformers passes them to a
// chat template: tool_calls with arguments as objects, tools as declared.
func toolTemplateVars(turns []turn, ts *toolSet) (msgs []any, tools []any) {
	for _, t := range turns {
		m := map[string]any{"role": t.Role, "content": t.Content}
		if len(t.ToolCalls) > 0 {
			var calls []any
			for _, c := range t.ToolCalls {
				var args any
				if json.Unmarshal([]byte(c.Function.Arguments), &args) != nil {
					args = c.Function.Arguments
				}
				calls = append(calls, map[string]any{"id": c.ID, "type": "function",
					"function": map[string]any{"name": c.Function.Name, "arguments": args}})
			}
			m["tool_calls"] = calls
		}
		if t.ToolCallID != "" {
			m["tool_call_id"] = t.ToolCallID
		}
		if t.Name != "" {
			m["name"] = t.Name
		}
		msgs = append(msgs, m)
	}
	if ts != nil {
		for _, d := range ts.defs {
			var params any
			json.Unmarshal(d.Function.Parameters, &params)
			f := map[string]any{"name": d.Function.Name, "parameters": params}
			if d.Function.Description != "" {
				f["description"] = d.Function.Description
			}
			tools = append(tools, map[string]any{"type": "function", "function": f})
		}
	}
	return msgs, tools
}

// renderChat renders a conversation with tools (ts nil: none).
func (s *Server) renderChat(turns []turn, ts *toolSet) (string, error) {
	hasTools := ts != nil
	for _, t := range turns {
		hasTools = hasTools || len(t.ToolCalls) > 0 || t.Role == "tool"
	}
	if !hasTools {
		msgs := make([]message, len(turns))
		for i, t := range turns {
			msgs[i] = t.message
		}
		return s.tmpl.render(msgs)
	}
	if s.tmpl.tmpl != nil && strings.Contains(s.tmpl.source, "tools") {
		msgs, tools := toolTemplateVars(turns, ts)
		return s.tmpl.renderVars(msgs, tools)
	}
	return s.tmpl.render(flatten(turns, ts, s.tmpl.tmpl != nil))
}

// MarshalJSON writes content null beside tool calls, as the official API does.
func (o chatOut) MarshalJSON() ([]byte, error) {
	type plain struct {
		Role      string     `json:"role,omitempty"`
		Content   *string    `json:"content"`
		ToolCalls []toolCall `json:"tool_calls,omitempty"`
	}
	p := plain{Role: o.Role, Content: &o.Content, ToolCalls: o.ToolCalls}
	if len(o.ToolCalls) > 0 && o.Content == "" {
		p.Content = nil
	}
	return json.Marshal(p)
}
