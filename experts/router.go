package experts

import (
	"bufio"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"roe/retriever"
	"roe/tasks"
)

// RouterData is what the routing encoder trains on: each task's training
// examples, rendered by its promptsource templates and as raw fields, drawn
// as (prompt as a user writes it, instance as the library stores it) pairs of
// the same task; and corpus paragraphs as background.
type RouterData struct {
	Tasks      []string // the tasks trained on, in class order
	format     string
	rawShare   float64
	swapShare  float64
	userShare  float64
	byTask     [][]routerItem
	background []string
}

type routerItem struct {
	rendered []tasks.Rendered // by each template that gives this example a target
	fields   []string         // the example's text fields, longest first
	raw      string           // the fields joined: the content, no instruction
	labelled []labelledField  // the text fields with their names, in name order
}

type labelledField struct{ name, text string }

// RouterDataOptions say what LoadRouterData reads.
type RouterDataOptions struct {
	DataDir, TemplatesDir string
	HoldOut               []string // tasks left out (their experts are added later)
	Corpus                []string // background text files
	// Requests are general requests no task is for (models.Background's
	// kind), background keys beside the corpus paragraphs: the encoder learns
	// to keep the library's tasks apart from what people ask an assistant,
	// not only from prose. Those of 8 to 120 words are kept, as paragraphs
	// are (a short request such as "define 'sonder'" is a task's neighbour
	// more than a stranger), and make RequestShare of the background keys a
	// step draws (by repetition), the paragraphs the rest [0.3].
	Requests     []string
	RequestShare float64
	PerTask      int     // examples read per task [2000]
	RawShare     float64 // queries written as the bare fields, no instruction [0.2]
	// SwapShare of the queries not written as bare fields keep their
	// template's instruction around the fields of an example of another task,
	// so the instruction, not the content, has to tell the task [0].
	SwapShare float64
	// UserShare of the queries not written as bare fields are written from
	// the example's fields and a template's answer choices the way people
	// write prompts (writeLikeAUser), with no template's instruction [0].
	UserShare float64
	Format    string // the instance format [retriever.DefaultInstanceFormat]
	Seed      uint64
}

// LoadRouterData renders the train split of every task of DataDir that has
// templates and is not held out.
func LoadRouterData(o RouterDataOptions) (*RouterData, error) {
	if o.PerTask <= 0 {
		o.PerTask = 2000
	}
	if o.Format == "" {
		o.Format = retriever.DefaultInstanceFormat
	}
	ents, err := os.ReadDir(o.DataDir)
	if err != nil {
		return nil, err
	}
	if o.RawShare == 0 {
		o.RawShare = 0.2
	}
	d := &RouterData{format: o.Format, rawShare: o.RawShare, swapShare: o.SwapShare, userShare: o.UserShare}
	for _, ent := range ents {
		name := ent.Name()
		if !ent.IsDir() || slices.Contains(o.HoldOut, name) {
			continue
		}
		ex, err := tasks.LoadTask(filepath.Join(o.DataDir, name), "train")
		if err != nil {
			continue // no train split: not a library task
		}
		ts, fm, err := tasks.TemplatesFor(name, o.TemplatesDir)
		if err != nil {
			continue
		}
		items := renderRouterItems(ex, ts, fm, o.PerTask, o.Seed)
		if len(items) < 2 {
			continue
		}
		d.Tasks = append(d.Tasks, name)
		d.byTask = append(d.byTask, items)
	}
	if len(d.Tasks) < 2 {
		return nil, fmt.Errorf("%w: %d tasks with a train split and templates in %s (need 2)", ErrInvalid, len(d.Tasks), o.DataDir)
	}
	for _, f := range o.Corpus {
		ps, err := paragraphs(f)
		if err != nil {
			return nil, err
		}
		d.background = append(d.background, ps...)
	}
	if len(o.Requests) > 0 {
		d.background = mixRequests(d.background, o.Requests, o.RequestShare)
	}
	return d, nil
}

// backgroundKey reports whether a text may be a background key: valid
// UTF-8 of 8 to 120 words (corpus paragraphs and general requests alike).
func backgroundKey(s string) bool {
	n := len(strings.Fields(s))
	return n >= 8 && n <= 120 && utf8.ValidString(s)
}

// mixRequests appends the requests of 8 to 120 words to paragraphs, repeated
// so that they are share of the result (about; at least once each), so a
// uniform draw of background keys takes a request with that probability.
func mixRequests(paragraphs, requests []string, share float64) []string {
	if share <= 0 || share >= 1 {
		share = 0.3
	}
	requests = slices.DeleteFunc(slices.Clone(requests), func(r string) bool { return !backgroundKey(r) })
	if len(requests) == 0 {
		return paragraphs
	}
	n := 1
	if len(paragraphs) > 0 {
		n = max(1, int(math.Round(share/(1-share)*float64(len(paragraphs))/float64(len(requests)))))
	}
	out := slices.Clip(paragraphs)
	for range n {
		out = append(out, requests...)
	}
	return out
}

// renderRouterItems renders up to n examples (a seeded draw) by every template.
func renderRouterItems(ex []tasks.Example, ts []tasks.Template, fm tasks.FieldMap, n int, seed uint64) []routerItem {
	r := rand.New(rand.NewPCG(seed, 0x40e7))
	idx := r.Perm(len(ex))
	var out []routerItem
	for _, i := range idx {
		if len(out) == n {
			break
		}
		e := fm.Apply(ex[i])
		var it routerItem
		for _, t := range ts {
			rd, err := t.Render(e)
			if err == nil && strings.TrimSpace(rd.Input) != "" && rd.Target != "" {
				it.rendered = append(it.rendered, rd)
			}
		}
		it.fields = textFields(ex[i])
		it.raw = strings.Join(it.fields, "\n")
		it.labelled = labelledFields(ex[i])
		if len(it.rendered) > 0 {
			out = append(out, it)
		}
	}
	return out
}

// textFields are an example's text fields of three words or more: the
// content a user pastes, without the short ones (a label word, a name).
func textFields(e tasks.Example) []string {
	var out []string
	for _, f := range tasks.TextFields(e) {
		if len(strings.Fields(f)) >= 3 {
			out = append(out, f)
		}
	}
	return out
}

// paragraphs reads a text file's paragraphs (blank-line separated, else lines)
// of 8 to 120 words.
func paragraphs(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	var cur []string
	flush := func() {
		p := strings.Join(cur, " ")
		cur = cur[:0]
		if backgroundKey(p) {
			out = append(out, p)
		}
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || len(strings.Fields(strings.Join(cur, " ")))+len(strings.Fields(line)) > 120 {
			flush()
		}
		if line != "" {
			cur = append(cur, line)
		}
	}
	flush()
	return out, sc.Err()
}

// Background returns the corpus paragraphs.
func (d *RouterData) Background() []string { return d.background }

// Sample draws one training pair: a task, two of its examples; the key is
// one rendered as the library stores instances, the query the other written
// as a user might (a random template's prompt or the bare fields, with words
// dropped or misspelt now and then).
func (d *RouterData) Sample(r *rand.Rand) retriever.EncoderExample {
	c := r.IntN(len(d.Tasks))
	items := d.byTask[c]
	a, b := items[r.IntN(len(items))], items[r.IntN(len(items))]
	kr := b.rendered[r.IntN(len(b.rendered))]
	key := retriever.FormatInstance(d.format, kr.Input, kr.AnswerChoices)
	q := a.rendered[r.IntN(len(a.rendered))].Input
	switch {
	case a.raw != "" && r.Float64() < d.rawShare:
		q = a.raw
	case d.swapShare > 0 && r.Float64() < d.swapShare:
		q = d.swapContent(r, q, a)
	case d.userShare > 0 && len(a.labelled) > 0 && r.Float64() < d.userShare:
		q = writeLikeAUser(r, a)
	}
	q = noisy(r, q)
	return retriever.EncoderExample{Query: retriever.FormatInstance(d.format, q, nil), Key: key, Class: c}
}

// swapContent replaces the fields of a that appear in q by the fields of an
// example of another task.
func (d *RouterData) swapContent(r *rand.Rand, q string, a routerItem) string {
	other := d.byTask[r.IntN(len(d.byTask))]
	b := other[r.IntN(len(other))]
	if len(b.fields) == 0 {
		return q
	}
	for i, f := range a.fields {
		q = strings.ReplaceAll(q, f, b.fields[i%len(b.fields)])
	}
	return q
}

// labelledFields are an example's text fields of three words or more with
// their names, in name order.
func labelledFields(e tasks.Example) []labelledField {
	var out []labelledField
	for _, k := range slices.Sorted(maps.Keys(e)) {
		v, ok := e[k].(string)
		if !ok || len(strings.Fields(v)) < 3 {
			continue
		}
		switch k {
		case "idx", "id", "uid", "id1", "id2", "dialogue_id", "label", "source", "genre":
			continue
		}
		out = append(out, labelledField{strings.ReplaceAll(k, "_", " "), v})
	}
	return out
}

// writeLikeAUser writes an example as a person might send it, without any
// template's instruction: its fields bare or labelled with their names
// ("Premise: …"), and a template's answer choices asked as a question ("A or
// B?", "(A/B)", "Options: A, B") before or after them. Nothing of it is
// task-specific: the field names are the dataset's, the choices a template's.
func writeLikeAUser(r *rand.Rand, a routerItem) string {
	var parts []string
	labels := r.IntN(2) == 0
	for _, f := range a.labelled {
		switch {
		case !labels:
			parts = append(parts, f.text)
		case r.IntN(2) == 0:
			parts = append(parts, f.name+": "+f.text)
		default:
			parts = append(parts, strings.ToUpper(f.name[:1])+f.name[1:]+": "+f.text)
		}
	}
	content := strings.Join(parts, "\n")
	var choices []string
	if rd := a.rendered[r.IntN(len(a.rendered))]; len(rd.AnswerChoices) >= 2 && len(rd.AnswerChoices) <= 6 {
		choices = rd.AnswerChoices
	}
	if len(choices) == 0 {
		return content
	}
	var ask string
	switch r.IntN(4) {
	case 0:
		ask = strings.Join(choices, " or ") + "?"
	case 1:
		ask = "(" + strings.Join(choices, "/") + ")"
	case 2:
		ask = "Options: " + strings.Join(choices, ", ")
	default:
		var sb strings.Builder
		for i, c := range choices {
			fmt.Fprintf(&sb, "%c) %s ", 'A'+i, c)
		}
		ask = strings.TrimSpace(sb.String())
	}
	if r.IntN(2) == 0 {
		return ask + " " + content
	}
	return content + "\n" + ask
}

// noisy drops, swaps and misspells words of q, each sometimes.
func noisy(r *rand.Rand, q string) string {
	if r.Float64() < 0.5 {
		return q
	}
	ws := strings.Fields(q)
	out := ws[:0:0]
	for _, w := range ws {
		switch x := r.Float64(); {
		case x < 0.08 && len(ws) > 4:
			continue // dropped
		case x < 0.14 && len(w) > 3:
			i := 1 + r.IntN(len(w)-2)
			w = w[:i] + w[i+1:] // a letter missing
		case x < 0.18 && len(w) > 3:
			i := r.IntN(len(w) - 1)
			b := []byte(w)
			b[i], b[i+1] = b[i+1], b[i] // two letters swapped
			w = string(b)
		}
		out = append(out, w)
	}
	if r.Float64() < 0.3 {
		return strings.ToLower(strings.Join(out, " "))
	}
	return strings.Join(out, " ")
}
