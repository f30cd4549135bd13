package tasks

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
)

// FieldMap maps a field name that a template uses to the field of the task's data that holds
// it (e.g. glue_rte's "sentence1" ← rte's "premise"), or, when the source starts with "=", to
// the text after it (a field the data lacks: "title": "=" gives an empty title). Apply adds them and keeps the
// original fields, so one map serves every template file of a task (rte is rendered with both
// super_glue_rte, which reads premise, and glue_rte, which reads sentence1).
type FieldMap map[string]string

// Apply returns ex with the mapped fields added (ex itself is not modified). A template field
// that the example already has is left as it is; a source field the example lacks adds nothing.
func (m FieldMap) Apply(ex Example) Example {
	if len(m) == 0 {
		return ex
	}
	out := make(Example, len(ex)+len(m))
	for k, v := range ex {
		out[k] = v
	}
	for to, from := range m {
		if _, ok := ex[to]; ok {
			continue
		}
		if lit, ok := strings.CutPrefix(from, "="); ok {
			out[to] = lit
		} else if v, ok := ex[from]; ok {
			out[to] = v
		}
	}
	return out
}

// TaskTemplates says which promptsource template files serve a task folder of shared/data/tasks.
type TaskTemplates struct {
	// Files are template file names in the templates folder (promptsource's dataset path with
	// "/" replaced by "_"), in the order their templates are returned.
	Files []string
	// Fields renames example fields for these templates.
	Fields FieldMap
}

// taskTemplates follows shared/data/SOURCES.md. sst5 and cr have no promptsource templates of
// their own; they borrow those of the promptsource dataset with the same labels and the same kind
// of text (yelp_review_full: 5 ratings; amazon_polarity: product reviews, negative/positive).
var taskTemplates = map[string]TaskTemplates{
	"sst2":    {Files: []string{"glue_sst2.yaml"}},
	"mr":      {Files: []string{"rotten_tomatoes.yaml"}},
	"ag_news": {Files: []string{"ag_news.yaml"}},
	"cb":      {Files: []string{"super_glue_cb.yaml"}},
	"rte": {
		Files: []string{"super_glue_rte.yaml", "glue_rte.yaml"},
		// glue/rte names the pair sentence1/sentence2; the 0/1 labels mean the same.
		Fields: FieldMap{"sentence1": "premise", "sentence2": "hypothesis"},
	},
	"wsc":     {Files: []string{"super_glue_wsc.fixed.yaml"}},
	"copa":    {Files: []string{"super_glue_copa.yaml"}},
	"wic":     {Files: []string{"super_glue_wic.yaml"}},
	"boolq":   {Files: []string{"super_glue_boolq.yaml"}},
	"mrpc":    {Files: []string{"glue_mrpc.yaml"}},
	"stsb":    {Files: []string{"glue_stsb.yaml"}},
	"wnli":    {Files: []string{"glue_wnli.yaml"}},
	"cola":    {Files: []string{"glue_cola.yaml"}},
	"anli_r1": {Files: []string{"anli.yaml"}},
	"anli_r2": {Files: []string{"anli.yaml"}},
	"anli_r3": {Files: []string{"anli.yaml"}},
	"dream":   {Files: []string{"dream.yaml"}},
	// sst5's 0–4 labels are very negative … very positive, as yelp's 1–5 stars.
	"sst5": {Files: []string{"yelp_review_full.yaml"}, Fields: FieldMap{"text": "sentence"}},
	// cr has no title: the templates' "Title:" line stays empty.
	"cr": {Files: []string{"amazon_polarity.yaml"}, Fields: FieldMap{"content": "text", "title": "="}},
}

// TemplatedTasks lists the task folders that have promptsource templates, sorted.
func TemplatedTasks() []string {
	out := make([]string, 0, len(taskTemplates))
	for k := range taskTemplates {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TemplateFilesFor says which template files serve task; ok is false for a task without templates.
func TemplateFilesFor(task string) (TaskTemplates, bool) {
	tt, ok := taskTemplates[task]
	return tt, ok
}

// TemplatesFor loads the promptsource templates that serve a task folder of shared/data/tasks
// (e.g. "rte": super_glue_rte then glue_rte) from templatesDir, and the FieldMap to apply to
// the task's examples before Render.
func TemplatesFor(task, templatesDir string) ([]Template, FieldMap, error) {
	tt, ok := taskTemplates[task]
	if !ok {
		return nil, nil, fmt.Errorf("templates for %q: %w (tasks with templates: %s)", task, ErrUnknownTask, strings.Join(TemplatedTasks(), ", "))
	}
	var out []Template
	for _, f := range tt.Files {
		ts, err := LoadTemplates(filepath.Join(templatesDir, f))
		if err != nil {
			return nil, nil, fmt.Errorf("templates for %q: %w", task, err)
		}
		out = append(out, ts...)
	}
	return out, tt.Fields, nil
}

// DefaultInstanceFormat is the instance text the Retrieval-of-Experts paper found best for
// retrieval: "Answer Choices: {choices}, Instance: {input}".
const DefaultInstanceFormat = "Answer Choices: {choices}, Instance: {input}"

// InstanceText formats a rendered example for embedding and retrieval. format may use
// {choices} (the answer choices joined with " ||| ", empty when the template has none),
// {input} and {target}; "" means DefaultInstanceFormat. Other text is copied as it is, and
// placeholders inside the substituted values are not expanded again.
func InstanceText(format string, r Rendered) string {
	if format == "" {
		format = DefaultInstanceFormat
	}
	return strings.NewReplacer(
		"{choices}", strings.Join(r.AnswerChoices, " ||| "),
		"{input}", r.Input,
		"{target}", r.Target,
	).Replace(format)
}
