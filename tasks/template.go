package tasks

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// Template is one promptsource prompt template (one "prompt expert" in Retrieval-of-Experts).
type Template struct {
	// ID is the template's UUID.
	ID string
	// Name is unique per dataset; the paper's configs name prompts by it.
	Name string
	// Dataset and Subset are the Hugging Face dataset the template was written for (e.g. glue, sst2).
	Dataset, Subset string
	// Jinja renders an example to "input ||| target".
	Jinja string
	// AnswerChoices is a Jinja expression giving the " ||| "-separated choices; "" when the
	// template has none (open-ended generation, e.g. STS-B or paraphrase generation).
	AnswerChoices string
	// OriginalTask: the prompt asks for the dataset's original task.
	OriginalTask bool
	// ChoicesInPrompt: the answer choices appear in the input.
	ChoicesInPrompt bool
	// Metrics names the metrics promptsource lists for the template (e.g. Accuracy).
	Metrics []string
}

// Rendered is a template applied to one example.
type Rendered struct {
	// Input is the prompt (the part before "|||"), stripped.
	Input string
	// Target is the expected output (the part after "|||"), stripped.
	Target string
	// AnswerChoices are the rendered choices, each stripped; nil when the template has none.
	AnswerChoices []string
}

// pipeProtector is promptsource's stand-in for "|||" inside example strings while rendering.
const pipeProtector = "3ed2dface8203c4c9dfb1a5dc58e41e0"

// LoadTemplates reads a promptsource templates.yaml (top-level dataset, subset, and a templates
// map from UUID to a !Template with its !TemplateMetadata), in file order. Errors name the file
// and the line.
func LoadTemplates(path string) ([]Template, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load templates %s: %w", path, err)
	}
	return ParseTemplates(b, path)
}

// ParseTemplates parses the YAML of a promptsource templates file; name is used in errors.
func ParseTemplates(data []byte, name string) ([]Template, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		// yaml.v3 messages read "yaml: line N: ...".
		return nil, fmt.Errorf("load templates %s: %w: %v", name, ErrBadTemplate, err)
	}
	fail := func(n *yaml.Node, format string, args ...any) error {
		line := 0
		if n != nil {
			line = n.Line
		}
		return fmt.Errorf("load templates %s:%d: %w: %s", name, line, ErrBadTemplate, fmt.Sprintf(format, args...))
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, fail(&doc, "empty file")
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fail(root, "top level is not a mapping")
	}
	var dataset, subset string
	var templates *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch k.Value {
		case "dataset":
			if err := scalarString(v, &dataset); err != nil {
				return nil, fail(v, "dataset: %v", err)
			}
		case "subset":
			if err := scalarString(v, &subset); err != nil {
				return nil, fail(v, "subset: %v", err)
			}
		case "templates":
			templates = v
		}
	}
	if dataset == "" {
		return nil, fail(root, "no dataset")
	}
	if templates == nil {
		return nil, fail(root, "no templates")
	}
	if templates.Kind != yaml.MappingNode {
		return nil, fail(templates, "templates is not a mapping")
	}
	out := make([]Template, 0, len(templates.Content)/2)
	for i := 0; i+1 < len(templates.Content); i += 2 {
		k, v := templates.Content[i], templates.Content[i+1]
		t, err := parseTemplateNode(v)
		if err != nil {
			return nil, fail(v, "template %s: %v", k.Value, err)
		}
		if t.ID == "" {
			t.ID = k.Value
		}
		t.Dataset, t.Subset = dataset, subset
		out = append(out, t)
	}
	return out, nil
}

// templateYAML mirrors promptsource's Template and Template.Metadata objects.
type templateYAML struct {
	AnswerChoices *string `yaml:"answer_choices"`
	ID            string  `yaml:"id"`
	Jinja         *string `yaml:"jinja"`
	Name          string  `yaml:"name"`
	Reference     string  `yaml:"reference"`
	Metadata      *struct {
		OriginalTask    *bool    `yaml:"original_task"`
		ChoicesInPrompt *bool    `yaml:"choices_in_prompt"`
		Metrics         []string `yaml:"metrics"`
		Languages       []string `yaml:"languages"`
	} `yaml:"metadata"`
}

func parseTemplateNode(n *yaml.Node) (Template, error) {
	if n.Kind != yaml.MappingNode {
		return Template{}, errors.New("not a mapping")
	}
	if err := clearCustomTags(n); err != nil {
		return Template{}, err
	}
	var y templateYAML
	if err := n.Decode(&y); err != nil {
		return Template{}, err
	}
	if y.Jinja == nil {
		return Template{}, errors.New("no jinja")
	}
	if y.Name == "" {
		return Template{}, errors.New("no name")
	}
	t := Template{ID: y.ID, Name: y.Name, Jinja: *y.Jinja}
	if y.AnswerChoices != nil {
		t.AnswerChoices = *y.AnswerChoices
	}
	if m := y.Metadata; m != nil {
		t.OriginalTask = m.OriginalTask != nil && *m.OriginalTask
		t.ChoicesInPrompt = m.ChoicesInPrompt != nil && *m.ChoicesInPrompt
		t.Metrics = m.Metrics
	}
	return t, nil
}

// clearCustomTags drops promptsource's !Template and !TemplateMetadata tags (Python object tags)
// so the mappings decode as plain maps; any other application tag is an error.
func clearCustomTags(n *yaml.Node) error {
	if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		switch n.Tag {
		case "!Template", "!TemplateMetadata":
			if n.Kind != yaml.MappingNode {
				return fmt.Errorf("line %d: %s is not a mapping", n.Line, n.Tag)
			}
			n.Tag = ""
		default:
			return fmt.Errorf("line %d: unknown tag %s", n.Line, n.Tag)
		}
	}
	for _, c := range n.Content {
		if err := clearCustomTags(c); err != nil {
			return err
		}
	}
	return nil
}

func scalarString(n *yaml.Node, out *string) error {
	if n.Kind != yaml.ScalarNode {
		return errors.New("not a scalar")
	}
	if n.Tag == "!!null" {
		*out = ""
		return nil
	}
	*out = n.Value
	return nil
}

// FindTemplate returns the template with the given name.
func FindTemplate(ts []Template, name string) (Template, bool) {
	for _, t := range ts {
		if t.Name == name {
			return t, true
		}
	}
	return Template{}, false
}

// Render applies the template to ex as promptsource's Template.apply(ex) does (truncate=True):
// every {{ }} output is cut to 2048 characters, "|||" inside the example's string fields is
// protected, the output is split on "|||" into input and target and each part stripped;
// answer_choices is rendered first (itself Jinja, split on "|||", each choice stripped) and
// visible to the template. Field renames (FieldMap) must be applied to ex before.
// An example for which the template gives no target (a single part, or an empty target)
// returns an error wrapping ErrNoTarget.
func (t Template) Render(ex Example) (Rendered, error) {
	return t.render(ex, false)
}

func (t Template) render(ex Example, strict bool) (Rendered, error) {
	if _, ok := ex["answer_choices"]; ok {
		return Rendered{}, fmt.Errorf("template %q: %w: example contains the reserved field answer_choices", t.Name, ErrBadTemplate)
	}
	vars := escapePipes(ex)
	var r Rendered
	if t.AnswerChoices != "" {
		s, err := renderJinja(t.AnswerChoices, vars, strict)
		if err != nil {
			return Rendered{}, fmt.Errorf("template %q: answer_choices: %w: %v", t.Name, ErrBadTemplate, err)
		}
		for _, c := range strings.Split(s, "|||") {
			r.AnswerChoices = append(r.AnswerChoices, unescapePipes(pyStrip(c)))
		}
		vars["answer_choices"] = r.AnswerChoices
	} else {
		vars["answer_choices"] = nil
	}
	s, err := renderJinja(addTruncation(t.Jinja), vars, strict)
	if err != nil {
		return Rendered{}, fmt.Errorf("template %q: %w: %v", t.Name, ErrBadTemplate, err)
	}
	parts := strings.Split(s, "|||")
	for i, p := range parts {
		parts[i] = pyStrip(unescapePipes(p))
	}
	switch {
	case len(parts) == 1 || (len(parts) == 2 && parts[1] == ""):
		return Rendered{}, fmt.Errorf("template %q: %w", t.Name, ErrNoTarget)
	case len(parts) > 2:
		return Rendered{}, fmt.Errorf("template %q: %w: rendered %d parts separated by |||, want 2", t.Name, ErrBadTemplate, len(parts))
	}
	r.Input, r.Target = parts[0], parts[1]
	return r, nil
}

// escapePipes copies ex, replacing "|||" in its top-level string fields by pipeProtector.
func escapePipes(ex Example) map[string]any {
	out := make(map[string]any, len(ex)+1)
	for k, v := range ex {
		if s, ok := v.(string); ok {
			v = strings.ReplaceAll(s, "|||", pipeProtector)
		}
		out[k] = v
	}
	return out
}

func unescapePipes(s string) string { return strings.ReplaceAll(s, pipeProtector, "|||") }
