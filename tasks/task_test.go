package tasks

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
)

func init() {
	// Golden files are rewritten with -update. Register the flag only once, in case another
	// test file of the package declares it too.
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite golden files under testdata")
	}
}

func updating() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// renderN is how many leading examples of every split the render tests use.
const renderN = 20

var (
	taskCacheMu sync.Mutex
	taskCache   = map[string][]Example{}
)

// firstExamples returns the first renderN examples of a shared task split (cached).
func firstExamples(t *testing.T, task, split string) []Example {
	t.Helper()
	key := task + "/" + split
	taskCacheMu.Lock()
	defer taskCacheMu.Unlock()
	if ex, ok := taskCache[key]; ok {
		return ex
	}
	ex, err := LoadTask(sharedData(t, "tasks", task), split)
	if err != nil {
		t.Fatal(err)
	}
	ex = ex[:min(renderN, len(ex))]
	taskCache[key] = ex
	return ex
}

func TestTaskTemplatesForEveryTask(t *testing.T) {
	tdir := sharedData(t, "templates")
	tasks := sharedData(t, "tasks")
	for _, task := range TemplatedTasks() {
		ts, fm, err := TemplatesFor(task, tdir)
		if err != nil {
			t.Errorf("%s: %v", task, err)
			continue
		}
		if len(ts) == 0 {
			t.Errorf("%s: no templates", task)
		}
		if _, err := os.Stat(filepath.Join(tasks, task)); err != nil {
			t.Errorf("%s: task folder: %v", task, err)
		}
		if task == "rte" {
			if len(ts) != 15 || fm["sentence1"] != "premise" || fm["sentence2"] != "hypothesis" {
				t.Errorf("rte: %d templates, field map %v", len(ts), fm)
			}
		}
	}
	for _, task := range []string{"sst", "nope"} {
		if _, _, err := TemplatesFor(task, tdir); !errors.Is(err, ErrUnknownTask) {
			t.Errorf("%s: got %v, want ErrUnknownTask", task, err)
		}
	}
	// Every task folder has templates (sst5 and cr borrowed ones).
	ents, _ := os.ReadDir(tasks)
	for _, e := range ents {
		if _, ok := TemplateFilesFor(e.Name()); !ok && e.IsDir() {
			t.Errorf("task folder %s has no template mapping", e.Name())
		}
	}
}

func TestTaskFieldMapApply(t *testing.T) {
	fm := FieldMap{"sentence1": "premise", "sentence2": "hypothesis", "x": "absent", "title": "=", "kind": "=review"}
	ex := Example{"premise": "p", "hypothesis": "h", "sentence2": "keep", "label": 1}
	got := fm.Apply(ex)
	want := Example{"premise": "p", "hypothesis": "h", "sentence1": "p", "sentence2": "keep", "label": 1, "title": "", "kind": "review"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if len(ex) != 4 {
		t.Error("Apply modified its input")
	}
	if got := FieldMap(nil).Apply(ex); !reflect.DeepEqual(got, ex) {
		t.Error("nil map changed the example")
	}
}

// TestTaskELMPromptNames checks that the prompt names the paper's configs use (for the task
// folders present here) name templates that TemplatesFor returns.
func TestTaskELMPromptNames(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(sharedData(t, "templates"), "ELM_experts_and_eval_prompts.json"))
	if err != nil {
		t.Fatal(err)
	}
	var elm struct {
		Heldout  map[string][]string `json:"heldout_eval_prompts"`
		Training map[string][]struct {
			TrainPrompts []string `json:"train_prompts"`
		} `json:"training_experts"`
	}
	if err := json.Unmarshal(b, &elm); err != nil {
		t.Fatal(err)
	}
	heldout := map[string]string{
		"anli_r1/dev_r1": "anli_r1", "anli_r2/dev_r2": "anli_r2", "anli_r3/dev_r3": "anli_r3",
		"super_glue_copa/copa": "copa", "super_glue_cb/cb": "cb", "super_glue_rte/rte": "rte",
		"super_glue_wsc.fixed/wsc.fixed": "wsc", "super_glue_wic/wic": "wic",
	}
	training := map[string]string{"ag_news": "ag_news", "dream": "dream", "mrpc": "mrpc", "rotten_tomatoes": "mr"}
	check := func(task string, names []string) {
		ts, _, err := TemplatesFor(task, sharedData(t, "templates"))
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if _, ok := FindTemplate(ts, n); !ok {
				t.Errorf("%s: ELM prompt %q not among the templates", task, n)
			}
		}
	}
	for k, task := range heldout {
		if _, ok := elm.Heldout[k]; !ok {
			t.Errorf("ELM file lacks held-out set %s", k)
		}
		check(task, elm.Heldout[k])
	}
	for k, task := range training {
		if len(elm.Training[k]) == 0 {
			t.Errorf("ELM file lacks training dataset %s", k)
		}
		for _, cfg := range elm.Training[k] {
			check(task, cfg.TrainPrompts)
		}
	}
}

func TestInstanceText(t *testing.T) {
	r := Rendered{Input: "Is it {input}?", Target: "yes", AnswerChoices: []string{"no", "yes"}}
	if got, want := InstanceText("", r), "Answer Choices: no ||| yes, Instance: Is it {input}?"; got != want {
		t.Errorf("default: %q, want %q", got, want)
	}
	if got, want := InstanceText(DefaultInstanceFormat, r), InstanceText("", r); got != want {
		t.Errorf("explicit default %q != %q", got, want)
	}
	if got, want := InstanceText("{input} => {target}", r), "Is it {input}? => yes"; got != want {
		t.Errorf("custom: %q, want %q", got, want)
	}
	if got, want := InstanceText("", Rendered{Input: "x"}), "Answer Choices: , Instance: x"; got != want {
		t.Errorf("no choices: %q, want %q", got, want)
	}
}

// templateStat is how one template fared on one task's examples.
type templateStat struct {
	task, file, name     string
	ok, noTarget, errs   int
	firstErr             string
	strictNote           string
	skipVals, renderVals map[string]map[string]bool // field → values seen on skipped / rendered examples
	fieldSeen            map[string]int             // field → examples where it had a short value
	perSplit             map[string][3]int
}

// noTargetReason guesses why a template gives no target for some examples: a categorical field
// whose values on skipped examples never occur on rendered ones.
func (s *templateStat) noTargetReason() string {
	fields := make([]string, 0, len(s.skipVals))
	for f := range s.skipVals {
		fields = append(fields, f)
	}
	sort.Slice(fields, func(i, j int) bool { // label first, then by name
		if (fields[i] == "label") != (fields[j] == "label") {
			return fields[i] == "label"
		}
		return fields[i] < fields[j]
	})
	for _, f := range fields {
		skip, rend := s.skipVals[f], s.renderVals[f]
		disjoint := len(skip) > 0
		for v := range skip {
			if rend[v] {
				disjoint = false
			}
		}
		// Only a categorical field (a short value on every example, few values in all) explains the skips.
		if disjoint && s.fieldSeen[f] == s.ok+s.noTarget && len(skip)+len(rend) <= 5 {
			vals := make([]string, 0, len(skip))
			for v := range skip {
				vals = append(vals, v)
			}
			sort.Strings(vals)
			return fmt.Sprintf("no target when %s is %s (the template renders only for other values)", f, strings.Join(vals, " or "))
		}
	}
	return "no target for some examples"
}

func shortValue(v any) (string, bool) {
	switch x := v.(type) {
	case int, bool, float64:
		return fmt.Sprint(x), true
	case string:
		if len(x) <= 20 {
			return fmt.Sprintf("%q", x), true
		}
	}
	return "", false
}

// collectRenderStats renders every template of every templated task on the first renderN
// examples of every split.
func collectRenderStats(t *testing.T) []*templateStat {
	tdir := sharedData(t, "templates")
	var stats []*templateStat
	for _, task := range TemplatedTasks() {
		tt, _ := TemplateFilesFor(task)
		splits, err := TaskSplits(sharedData(t, "tasks", task))
		if err != nil {
			t.Fatal(err)
		}
		for _, file := range tt.Files {
			ts, err := LoadTemplates(filepath.Join(tdir, file))
			if err != nil {
				t.Fatal(err)
			}
			for _, tp := range ts {
				s := &templateStat{task: task, file: file, name: tp.Name, perSplit: map[string][3]int{},
					skipVals: map[string]map[string]bool{}, renderVals: map[string]map[string]bool{}, fieldSeen: map[string]int{}}
				for _, split := range splits {
					var c [3]int
					for i, ex := range firstExamples(t, task, split) {
						ex = tt.Fields.Apply(ex)
						r, err := tp.Render(ex)
						vals := s.renderVals
						switch {
						case err == nil:
							c[0]++
							if r.Input == "" {
								t.Errorf("%s %s %q %s[%d]: empty input", task, file, tp.Name, split, i)
							}
						case errors.Is(err, ErrNoTarget):
							c[1]++
							vals = s.skipVals
						default:
							c[2]++
							if s.firstErr == "" {
								s.firstErr = fmt.Sprintf("%s[%d]: %v", split, i, err)
							}
							continue
						}
						for f, v := range ex {
							if sv, ok := shortValue(v); ok {
								if vals[f] == nil {
									vals[f] = map[string]bool{}
								}
								vals[f][sv] = true
								s.fieldSeen[f]++
							}
						}
						// Strict rendering names fields the template reads but the data lacks.
						if err == nil && s.strictNote == "" {
							if _, serr := tp.render(ex, true); serr != nil && !errors.Is(serr, ErrNoTarget) {
								s.strictNote = fmt.Sprintf("%s[%d]: %v", split, i, serr)
							}
						}
					}
					s.perSplit[split] = c
					s.ok += c[0]
					s.noTarget += c[1]
					s.errs += c[2]
				}
				stats = append(stats, s)
			}
		}
	}
	return stats
}

// TestTemplatesRenderAllTasks renders every template whose dataset is in shared/data/tasks on
// the first 20 examples of every split, logs the templates that skip examples or fail, and
// keeps testdata/templates/render_report.md (rewrite it with -update).
func TestTemplatesRenderAllTasks(t *testing.T) {
	stats := collectRenderStats(t)
	report := renderReport(stats)
	for _, s := range stats {
		if s.errs > 0 {
			t.Errorf("%s %s %q: %d errors, first: %s", s.task, s.file, s.name, s.errs, s.firstErr)
		}
		if s.ok == 0 {
			t.Logf("cannot render: %s %s %q: %s", s.task, s.file, s.name, s.reason())
		} else if s.noTarget > 0 {
			t.Logf("skips %d of %d: %s %s %q: %s", s.noTarget, s.ok+s.noTarget, s.task, s.file, s.name, s.reason())
		}
		if s.strictNote != "" {
			t.Logf("%s %s %q reads an undefined value: %s", s.task, s.file, s.name, s.strictNote)
		}
	}
	golden := filepath.Join("testdata", "templates", "render_report.md")
	if updating() {
		if err := os.WriteFile(golden, []byte(report), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./train -run TestTemplatesRenderAllTasks -update)", err)
	}
	if string(want) != report {
		t.Errorf("%s is out of date; rerun with -update. New report:\n%s", golden, report)
	}
}

func (s *templateStat) reason() string {
	switch {
	case s.errs > 0:
		return "error: " + s.firstErr
	case s.ok == 0 && s.noTarget > 0:
		return s.noTargetReason() + "; none of the examples tried qualifies"
	case s.noTarget > 0:
		return s.noTargetReason()
	case s.strictNote != "":
		return "renders, but reads an undefined value: " + s.strictNote
	}
	return ""
}

func renderReport(stats []*templateStat) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Template render report\n\n")
	fmt.Fprintf(&b, "Generated by `go test ./train -run TestTemplatesRenderAllTasks -update` from ../shared/data:\n")
	fmt.Fprintf(&b, "every promptsource template that serves a task folder (`TemplatesFor`), rendered with `Template.Render`\n")
	fmt.Fprintf(&b, "on the first %d examples of every split of the task. \"No target\" means the template gives no\n", renderN)
	fmt.Fprintf(&b, "target for that example (`ErrNoTarget`; promptsource returns a single part): callers skip the example.\n")
	fmt.Fprintf(&b, "The renders also match Python Jinja2 (promptsource's apply) digest for digest: see\n")
	fmt.Fprintf(&b, "promptsource_golden.jsonl and TestRenderMatchesJinja2.\n\n")
	fmt.Fprintf(&b, "Task folders without promptsource templates: sst5, cr.\n\n")

	fmt.Fprintf(&b, "## Per task\n\n")
	fmt.Fprintf(&b, "| task | template files | templates | render every example | skip some examples | render no example | errors |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|\n")
	for _, task := range TemplatedTasks() {
		tt, _ := TemplateFilesFor(task)
		var n, all, some, none, errs int
		for _, s := range stats {
			if s.task != task {
				continue
			}
			n++
			switch {
			case s.errs > 0:
				errs++
			case s.ok == 0:
				none++
			case s.noTarget > 0:
				some++
			default:
				all++
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %d | %d |\n", task, strings.Join(tt.Files, ", "), n, all, some, none, errs)
	}

	fmt.Fprintf(&b, "\n## Templates that skip examples or cannot render\n\n")
	fmt.Fprintf(&b, "| task | file | template | rendered | no target | errors | reason |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|\n")
	any := false
	for _, s := range stats {
		if s.noTarget == 0 && s.errs == 0 && s.strictNote == "" {
			continue
		}
		any = true
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %d | %s |\n", s.task, s.file, mdCell(s.name), s.ok, s.noTarget, s.errs, mdCell(s.reason()))
	}
	if !any {
		fmt.Fprintf(&b, "| (none) | | | | | | |\n")
	}

	fmt.Fprintf(&b, "\n## All templates (rendered / no target / errors per split)\n\n")
	fmt.Fprintf(&b, "| task | file | template | splits |\n|---|---|---|---|\n")
	for _, s := range stats {
		splits := make([]string, 0, len(s.perSplit))
		for sp := range s.perSplit {
			splits = append(splits, sp)
		}
		slices.Sort(splits)
		cells := make([]string, len(splits))
		for i, sp := range splits {
			c := s.perSplit[sp]
			cells[i] = fmt.Sprintf("%s %d/%d/%d", sp, c[0], c[1], c[2])
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", s.task, s.file, mdCell(s.name), strings.Join(cells, ", "))
	}
	return b.String()
}

func mdCell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}

// renderDigest is the digest gen_promptsource_golden.py writes: the first 16 hex digits of
// SHA-256 over input NUL target (NUL choices joined by NUL, when the template has choices).
func renderDigest(r Rendered) string {
	blob := r.Input + "\x00" + r.Target
	if r.AnswerChoices != nil {
		blob += "\x00" + strings.Join(r.AnswerChoices, "\x00")
	}
	sum := sha256.Sum256([]byte(blob))
	return hex.EncodeToString(sum[:])[:16]
}

// TestRenderMatchesJinja2 compares every render of TestTemplatesRenderAllTasks with Python
// Jinja2 running promptsource's apply (testdata/templates/gen_promptsource_golden.py).
func TestRenderMatchesJinja2(t *testing.T) {
	tdir := sharedData(t, "templates")
	f, err := os.Open(filepath.Join("testdata", "templates", "promptsource_golden.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type example struct {
		Index   int       `json:"index"`
		Input   string    `json:"input"`
		Target  string    `json:"target"`
		Choices *[]string `json:"choices"`
	}
	var rec struct {
		Task, Split, File, Template string
		Renders                     []string
		Example                     *example
	}
	files := map[string][]Template{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	records, compared := 0, 0
	for sc.Scan() {
		rec.Example = nil
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatal(err)
		}
		records++
		ts, ok := files[rec.File]
		if !ok {
			if ts, err = LoadTemplates(filepath.Join(tdir, rec.File)); err != nil {
				t.Fatal(err)
			}
			files[rec.File] = ts
		}
		tp, ok := FindTemplate(ts, rec.Template)
		if !ok {
			t.Errorf("%s: no template %q", rec.File, rec.Template)
			continue
		}
		tt, _ := TemplateFilesFor(rec.Task)
		exs := firstExamples(t, rec.Task, rec.Split)
		if len(exs) != len(rec.Renders) {
			t.Errorf("%s/%s: %d examples, golden has %d", rec.Task, rec.Split, len(exs), len(rec.Renders))
			continue
		}
		for i, ex := range exs {
			r, err := tp.Render(tt.Fields.Apply(ex))
			var got string
			switch {
			case err == nil:
				got = "ok:" + renderDigest(r)
			case errors.Is(err, ErrNoTarget):
				got = "no_target"
			default:
				got = "error: " + err.Error()
			}
			compared++
			if got == rec.Renders[i] {
				continue
			}
			msg := fmt.Sprintf("%s/%s[%d] %s %q: got %s, Jinja2 %s", rec.Task, rec.Split, i, rec.File, rec.Template, got, rec.Renders[i])
			if e := rec.Example; e != nil && e.Index == i {
				msg += fmt.Sprintf("\n got  %#v\n want input %q target %q choices %v", r, e.Input, e.Target, e.Choices)
			}
			t.Error(msg)
		}
		if e := rec.Example; e != nil {
			r, err := tp.Render(tt.Fields.Apply(exs[e.Index]))
			var choices []string
			if e.Choices != nil {
				choices = *e.Choices
			}
			if err != nil || r.Input != e.Input || r.Target != e.Target || !reflect.DeepEqual(r.AnswerChoices, choices) {
				t.Errorf("%s/%s[%d] %q:\n got  %#v (%v)\n want input %q target %q choices %#v", rec.Task, rec.Split, e.Index, rec.Template, r, err, e.Input, e.Target, choices)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if records == 0 {
		t.Fatal("empty golden file")
	}
	t.Logf("%d template×split records, %d renders compared with Jinja2", records, compared)
}
