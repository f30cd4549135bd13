package tasks

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// templateCounts are the per-file template counts listed in shared/data/SOURCES.md.
var templateCounts = map[string]int{
	"ag_news.yaml": 7, "amazon_polarity.yaml": 9, "anli.yaml": 15, "app_reviews.yaml": 4,
	"commonsense_qa.yaml": 5, "cosmos_qa.yaml": 13, "dbpedia_14.yaml": 4, "dream.yaml": 5,
	"glue_cola.yaml": 5, "glue_mrpc.yaml": 7, "glue_qnli.yaml": 5, "glue_qqp.yaml": 6,
	"glue_rte.yaml": 5, "glue_sst2.yaml": 5, "glue_stsb.yaml": 5, "glue_wnli.yaml": 5,
	"hellaswag.yaml": 11, "imdb.yaml": 11, "paws_labeled_final.yaml": 12, "piqa.yaml": 11,
	"qasc.yaml": 8, "quarel.yaml": 5, "quartz.yaml": 8, "rotten_tomatoes.yaml": 10,
	"sciq.yaml": 5, "social_i_qa.yaml": 6, "story_cloze_2016.yaml": 6, "super_glue_boolq.yaml": 10,
	"super_glue_cb.yaml": 15, "super_glue_copa.yaml": 12, "super_glue_multirc.yaml": 10,
	"super_glue_rte.yaml": 10, "super_glue_wic.yaml": 10, "super_glue_wsc.fixed.yaml": 10,
	"winogrande_winogrande_debiased.yaml": 6, "winogrande_winogrande_xl.yaml": 6, "wiqa.yaml": 8,
	"yelp_review_full.yaml": 7,
}

// TestTemplateLoadAllFiles parses every shared template file and compiles every template's
// Jinja and answer_choices (including the 297 whose datasets are not in shared/data/tasks).
func TestTemplateLoadAllFiles(t *testing.T) {
	dir := sharedData(t, "templates")
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no template files: %v", err)
	}
	total := 0
	for _, f := range files {
		ts, err := LoadTemplates(f)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		base := filepath.Base(f)
		if want, ok := templateCounts[base]; ok && len(ts) != want {
			t.Errorf("%s: %d templates, SOURCES.md says %d", base, len(ts), want)
		}
		total += len(ts)
		names := map[string]bool{}
		for _, tp := range ts {
			if tp.ID == "" || tp.Name == "" || tp.Jinja == "" || tp.Dataset == "" {
				t.Errorf("%s: incomplete template %+v", base, tp)
			}
			if names[tp.Name] {
				t.Errorf("%s: duplicate name %q", base, tp.Name)
			}
			names[tp.Name] = true
			if _, err := compileJinja(addTruncation(tp.Jinja), false); err != nil {
				t.Errorf("%s %q: jinja does not compile: %v", base, tp.Name, err)
			}
			if tp.AnswerChoices != "" {
				if _, err := compileJinja(tp.AnswerChoices, false); err != nil {
					t.Errorf("%s %q: answer_choices do not compile: %v", base, tp.Name, err)
				}
			}
		}
	}
	if total != 302 {
		t.Errorf("%d templates in all, want 302", total)
	}
}

func TestTemplateLoadFields(t *testing.T) {
	ts, err := LoadTemplates(filepath.Join(sharedData(t, "templates"), "glue_sst2.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tp, ok := FindTemplate(ts, "review")
	if !ok {
		t.Fatal("no review template")
	}
	want := Template{
		ID: "228fcae7-7f4c-4e3c-9ac4-e49b26bc103d", Name: "review", Dataset: "glue", Subset: "sst2",
		Jinja:         "I'm reading a review that says \"{{sentence}}\".\n\nDo you think the review is {{\"positive\"}} or {{\"negative\"}}? ||| {{ answer_choices[label] }}",
		AnswerChoices: "negative ||| positive", OriginalTask: true, ChoicesInPrompt: true, Metrics: []string{"Accuracy"},
	}
	if !reflect.DeepEqual(tp, want) {
		t.Errorf("got  %#v\nwant %#v", tp, want)
	}
	stsb, err := LoadTemplates(filepath.Join(sharedData(t, "templates"), "glue_stsb.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range stsb {
		if tp.AnswerChoices != "" {
			t.Errorf("stsb %q: answer_choices %q, want none (null in YAML)", tp.Name, tp.AnswerChoices)
		}
	}
}

func TestTemplateMalformedYAMLNamesFileAndLine(t *testing.T) {
	cases := map[string]struct{ yaml, line string }{
		"syntax":              {"dataset: x\ntemplates:\n  a: !Template\n    jinja: 'x\n    name: [unclosed\n", "line "},
		"no jinja":            {"dataset: x\ntemplates:\n  a: !Template\n    name: n\n    id: a\n", ":3:"},
		"no name":             {"dataset: x\ntemplates:\n  a: !Template\n    jinja: x ||| y\n", ":3:"},
		"unknown tag":         {"dataset: x\ntemplates:\n  a: !Evil\n    jinja: x ||| y\n    name: n\n", ":3:"},
		"templates not a map": {"dataset: x\ntemplates: 3\n", ":2:"},
		"no dataset":          {"templates:\n  a: !Template\n    jinja: x\n    name: n\n", ":1:"},
		"bad metadata":        {"dataset: x\ntemplates:\n  a: !Template\n    jinja: x\n    name: n\n    metadata: !TemplateMetadata\n      metrics: 5\n", ":3:"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			p := writeFile(t, "t.yaml", c.yaml)
			_, err := LoadTemplates(p)
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrBadTemplate) || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), c.line) {
				t.Errorf("error %q: want ErrBadTemplate naming %s and %q", err, p, c.line)
			}
		})
	}
}

// loadOne loads one example of a shared task and one template.
func loadOne(t *testing.T, task, split string, index int, file, name string) (Template, Example) {
	t.Helper()
	ts, err := LoadTemplates(filepath.Join(sharedData(t, "templates"), file))
	if err != nil {
		t.Fatal(err)
	}
	tp, ok := FindTemplate(ts, name)
	if !ok {
		t.Fatalf("%s: no template %q", file, name)
	}
	ex, err := LoadTask(sharedData(t, "tasks", task), split)
	if err != nil {
		t.Fatal(err)
	}
	return tp, ex[index]
}

// TestRenderExact checks renders against what promptsource (Python Jinja2) gives, written by
// hand from the template text.
func TestRenderExact(t *testing.T) {
	cases := []struct {
		task, split string
		index       int
		file, name  string
		want        Rendered
	}{
		{"sst2", "train", 0, "glue_sst2.yaml", "review", Rendered{
			Input:         "I'm reading a review that says \"a stirring , funny and finally transporting re-imagining of beauty and the beast and 1930s horror films\".\n\nDo you think the review is positive or negative?",
			Target:        "positive",
			AnswerChoices: []string{"negative", "positive"},
		}},
		{"copa", "train", 0, "super_glue_copa.yaml", "exercise", Rendered{
			// "{{ premise }} {% if question == "cause" %} because... {% else %}...": premise, a
			// space, then " because... " and the template's newline.
			Input:         "Exercise: choose the most plausible alternative.\n\nThe chandelier shattered on the floor.  because... \n- The chandelier dropped from the ceiling.\n- The chandelier's lights flickered on and off.",
			Target:        "The chandelier dropped from the ceiling.",
			AnswerChoices: []string{"The chandelier dropped from the ceiling.", "The chandelier's lights flickered on and off."},
		}},
		{"wsc", "train", 0, "super_glue_wsc.fixed.yaml", "in other words", Rendered{
			// text.split(" ")[13:] | join(" ") | replace("He", "Mark")
			Input:         "Mark told Pete many lies about himself, which Pete included in his book. He should have been more skeptical. \n\nIn other words, Mark should have been more skeptical. True or false?",
			Target:        "False",
			AnswerChoices: []string{"False", "True"},
		}},
		{"stsb", "train", 6, "glue_stsb.yaml", "rate", Rendered{
			// label 0.5: 5*0.5 = 2.5, Python's round gives 2.0 (ties to even), /5 = 0.4.
			Input:  "Please rate how similar these two sentences are from 0.0 to 5.0.\nSentence A: A man is smoking.\nSentence B: A man is skating.",
			Target: "0.4",
		}},
		{"stsb", "train", 0, "glue_stsb.yaml", "rate", Rendered{
			// label 5.0 renders as Python's float: "5.0".
			Input:  "Please rate how similar these two sentences are from 0.0 to 5.0.\nSentence A: A plane is taking off.\nSentence B: An air plane is taking off.",
			Target: "5.0",
		}},
		{"dream", "train", 0, "dream.yaml", "baseline", Rendered{
			Input:         "Dialogue:\n\nM: I am considering dropping my dancing class. I am not making any progress.\n\nW: If I were you, I stick with it. It's definitely worth time and effort.\n\nQuestion: What does the man suggest the woman do? \n\n- Consult her dancing teacher.\n\n- Take a more interesting class.\n\n- Continue her dancing class.",
			Target:        "Continue her dancing class.",
			AnswerChoices: []string{"Consult her dancing teacher.", "Take a more interesting class.", "Continue her dancing class."},
		}},
		{"dream", "train", 0, "dream.yaml", "generate-first-utterance", Rendered{
			Input:  "W: If I were you, I stick with it. It's definitely worth time and effort.\n\nWhat was said before this conversation?",
			Target: "M: I am considering dropping my dancing class. I am not making any progress.",
		}},
	}
	for _, c := range cases {
		t.Run(c.task+"/"+c.name, func(t *testing.T) {
			tp, ex := loadOne(t, c.task, c.split, c.index, c.file, c.name)
			got, err := tp.Render(ex)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %#v\nwant %#v", got, c.want)
			}
		})
	}
}

func TestRenderRTEWithGlueFieldNames(t *testing.T) {
	ts, fm, err := TemplatesFor("rte", sharedData(t, "templates"))
	if err != nil {
		t.Fatal(err)
	}
	tp, ok := FindTemplate(ts, "imply")
	if !ok || tp.Dataset != "glue" {
		t.Fatalf("no glue_rte imply template: %+v", tp)
	}
	ex, err := LoadTask(sharedData(t, "tasks", "rte"), "train")
	if err != nil {
		t.Fatal(err)
	}
	got, err := tp.Render(fm.Apply(ex[0]))
	if err != nil {
		t.Fatal(err)
	}
	want := Rendered{
		Input:         `Does "No Weapons of Mass Destruction Found in Iraq Yet." imply that "Weapons of Mass Destruction Found in Iraq."? Please answer either yes or no.`,
		Target:        "no",
		AnswerChoices: []string{"yes", "no"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %#v\nwant %#v", got, want)
	}
	if _, ok := ex[0]["sentence1"]; ok {
		t.Error("FieldMap.Apply modified its input")
	}
}

func TestRenderNoTarget(t *testing.T) {
	// glue_mrpc generate_paraphrase renders only for paraphrase pairs (label 1).
	tp, _ := loadOne(t, "mrpc", "train", 0, "glue_mrpc.yaml", "generate_paraphrase")
	_, err := tp.Render(Example{"sentence1": "a", "sentence2": "b", "label": 0})
	if !errors.Is(err, ErrNoTarget) {
		t.Errorf("label 0: got %v, want ErrNoTarget", err)
	}
	r, err := tp.Render(Example{"sentence1": "a", "sentence2": "b", "label": 1})
	if err != nil || r.Input != "Paraphrase the following sentence: a" || r.Target != "b" || r.AnswerChoices != nil {
		t.Errorf("label 1: %#v, %v", r, err)
	}
	// An unlabeled example (label -1) leaves the target empty.
	cb, _ := loadOne(t, "cb", "train", 0, "super_glue_cb.yaml", "GPT-3 style")
	if _, err := cb.Render(Example{"premise": "p", "hypothesis": "h", "label": -1}); !errors.Is(err, ErrNoTarget) {
		t.Errorf("label -1: got %v, want ErrNoTarget", err)
	}
}

func TestRenderSemantics(t *testing.T) {
	tp := Template{Name: "t", Jinja: `{{ a }} ||| {{ b }}`, AnswerChoices: `x ||| {{ c }}`}
	// "|||" inside an example's strings does not split the output.
	r, err := tp.Render(Example{"a": "l|||r", "b": " t ", "c": " y|||z "})
	if err != nil {
		t.Fatal(err)
	}
	if r.Input != "l|||r" || r.Target != "t" || !reflect.DeepEqual(r.AnswerChoices, []string{"x", "y|||z"}) {
		t.Errorf("%#v", r)
	}
	if _, err := tp.Render(Example{"a": "x", "b": "y", "answer_choices": "z"}); err == nil {
		t.Error("reserved answer_choices field: no error")
	}
	// Undefined names render as "" (as in Jinja2); the strict mode the report uses names them.
	undef := Template{Name: "t", Jinja: `{{ missing }}x ||| y`}
	if r, err := undef.Render(Example{}); err != nil || r.Input != "x" {
		t.Errorf("undefined name: %#v, %v", r, err)
	}
	if _, err := undef.render(Example{}, true); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("strict render of an undefined name: %v", err)
	}
	three := Template{Name: "t", Jinja: `a ||| b ||| c`}
	if _, err := three.Render(Example{}); !errors.Is(err, ErrBadTemplate) {
		t.Errorf("three parts: %v", err)
	}
	bad := Template{Name: "t", Jinja: `{% if %} ||| x`}
	if _, err := bad.Render(Example{}); !errors.Is(err, ErrBadTemplate) {
		t.Errorf("syntax error: %v", err)
	}
	// Truncation: every {{ }} output is cut to 2048 characters at a space, plus "...".
	long := strings.Repeat("word ", 1000)
	r, err = Template{Name: "t", Jinja: `{{ p }} ||| y`}.Render(Example{"p": long})
	if err != nil {
		t.Fatal(err)
	}
	// Jinja2: the first 2045 characters, cut at their last space, then "...".
	want := strings.Repeat("word ", 408) + "word..."
	if r.Input != want {
		t.Errorf("truncated input: %d chars, ends %q", utf8.RuneCountInString(r.Input), r.Input[len(r.Input)-20:])
	}
}

func TestJinjaFilters(t *testing.T) {
	cases := []struct {
		src  string
		vars map[string]any
		want string
	}{
		{`{{ 2.5|round }} {{ 3.5|round }} {{ 0.5|round }} {{ 5|round }} {{ 2.675|round(2) }}`, nil, "2.0 4.0 0.0 5 2.67"},
		{`{{ 2.5|round(method="ceil") }} {{ 2.5|round(0, "floor") }}`, nil, "3.0 2.0"},
		{`{{ "a b c d"|truncate(5, leeway=0) }}|{{ "abcdefgh"|truncate(5, true, leeway=0) }}|{{ "ab"|truncate(5) }}`, nil, "a...|ab...|ab"},
		{`{{ "a\nb c d e f"|truncate(7, leeway=0) }}`, nil, "a\nb..."},
		{`{{ l|most_frequent|join(",") }}`, map[string]any{"l": []any{"a", "b", "b", "a", "c"}}, "a,b"},
		{`{% for x, y in zip(a, b) %}{{x}}{{y}} {% endfor %}`, map[string]any{"a": []any{1, 2, 3}, "b": []any{"x", "y"}}, "1x 2y "},
		{`{{ l|choice }}`, map[string]any{"l": []any{"only"}}, "only"},
		{`{{ "x"|highlight }}`, nil, "<span style='color: #F08080'>x</span>"},
		{`{{ s.split(" ")[1:]|join("-")|replace("b", "B") }} {{ s.lower() }} {{ l[:-1] }} {{ l[-1] }}`,
			map[string]any{"s": "A b c", "l": []any{"x", "y"}}, "B-c a b c ['x'] y"},
		{`{{ "<&>" }} {{ missing }}|{{ 4/2 }} {{ 0.1+0.2 }} {{ True }}`, nil, "<&> |2.0 0.30000000000000004 True"},
		{"a\n{% if x %}\nb\n{% endif %}\nc\n", map[string]any{"x": true}, "a\n\nb\n\nc"},
		// gonja's own str methods return a type that never equals a string; pyMethods fixes it.
		{`{% if s.lower() == "they" or s.lower() == "them" %}are{% else %}is{% endif %} {{ s.upper() == "THEM" }}`, map[string]any{"s": "Them"}, "are True"},
		{`{{ " a  b\tc ".split() }} {{ "a,b,,c".split(",", 1) }} {{ "a b".split(" ")|length }}`, nil, "['a', 'b', 'c'] ['a', 'b,,c'] 2"},
		{`{{ l.index("b") }} {{ l.count("a") }} {{ a[l.index(k)] }}`, map[string]any{"l": []any{"a", "b", "a"}, "a": []string{"x", "y"}, "k": "b"}, "1 2 y"},
	}
	for _, c := range cases {
		got, err := renderJinja(c.src, c.vars, false)
		if err != nil {
			t.Errorf("%s: %v", c.src, err)
			continue
		}
		if got != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.src, got, c.want)
		}
	}
	// choice is deterministic.
	l := map[string]any{"l": []any{"a", "b", "c", "d", "e"}}
	first, _ := renderJinja(`{{ l|choice }}`, l, false)
	for range 5 {
		if again, _ := renderJinja(`{{ l|choice }}`, l, false); again != first {
			t.Fatalf("choice not deterministic: %q then %q", first, again)
		}
	}
}

func TestPyStrip(t *testing.T) {
	if got := pyStrip("\x1c\t a b \u00a0\n\x1f"); got != "a b" {
		t.Errorf("%q", got)
	}
}

// FuzzRender feeds arbitrary field values through templates that slice, split, index and
// compare fields: errors are fine, panics and hangs are not.
func FuzzRender(f *testing.F) {
	templates := []Template{
		{Name: "wsc", Jinja: `{{ text }} In other words, {{ text.split(" ")[span2_index:] | join(" ") | replace(span2_text, span1_text) }} {% if span2_text.lower() == "they" %}are{% else %}is{% endif %} ||| {% if label != -1 %}{{ answer_choices[label] }}{% endif %}`, AnswerChoices: "False ||| True"},
		{Name: "copa", Jinja: `{{ premise }} {% if question == "cause" %} because {% else %} so {% endif %} "{{ answer_choices[0] }}" or "{{ answer_choices[1] }}"? ||| {{ answer_choices[label] }}`, AnswerChoices: "{{choice1}} ||| {{choice2}}"},
		{Name: "stsb", Jinja: `{{ premise }} ||| {{ (((5*label) | round )/5) }}`},
		{Name: "dream", Jinja: `{{ premise[:-1] }} {{ question | lower | trim }} ||| {{ choice1 }}`, AnswerChoices: `{{ premise | join("|||") }}`},
	}
	f.Add("Mark told Pete lies. He should.", "cause", "a", "b", 3, 1, 0.5)
	f.Add("|||", "effect", "|||", "{{", -1, -5, 2.5)
	f.Add("", "", "", "", 0, 99, -1e308)
	f.Add("ünïcödé \x00 \xff", "}}{%", "x", "y", 1<<40, -1<<40, 1e-320)
	f.Fuzz(func(t *testing.T, text, question, c1, c2 string, i, label int, x float64) {
		exs := []Example{
			{"text": text, "span2_index": i, "span1_text": c1, "span2_text": c2, "label": label},
			{"premise": text, "question": question, "choice1": c1, "choice2": c2, "label": label},
			{"premise": text, "label": x},
			{"premise": []any{text, c1, c2}, "question": question, "choice1": c1},
		}
		for _, tp := range templates {
			for _, ex := range exs {
				r, err := tp.Render(ex)
				if err == nil && strings.Contains(r.Input+r.Target, pipeProtector) {
					t.Errorf("%s: pipe protector leaked: %#v", tp.Name, r)
				}
			}
		}
	})
}

func TestTemplateLoadMissingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "nope.yaml")
	if _, err := LoadTemplates(p); err == nil || !strings.Contains(err.Error(), p) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("got %v", err)
	}
}

// TestRenderConcurrent renders from many goroutines at once (run with -race).
func TestRenderConcurrent(t *testing.T) {
	tp := Template{Name: "t", Jinja: `{% set x = a.split(" ") %}{% for w in x %}{{ loop.index }}{{ w.lower() }} {% endfor %}||| {{ answer_choices[l] }}`, AnswerChoices: "n ||| y"}
	done := make(chan error)
	for g := range 8 {
		go func() {
			var err error
			for i := range 50 {
				var r Rendered
				r, err = tp.Render(Example{"a": "A B", "l": (g + i) % 2})
				if err == nil && r.Input != "1a 2b" {
					err = errors.New("bad render " + r.Input)
				}
				if err != nil {
					break
				}
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
