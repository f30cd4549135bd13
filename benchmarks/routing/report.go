package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"

	"roe/retriever"
)

// Report is routing.json.
type Report struct {
	Commit       string           `json:"commit"`
	Date         string           `json:"date"`
	Command      string           `json:"command"`
	Seconds      float64          `json:"seconds"`
	GoMaxProcs   int              `json:"gomaxprocs"`
	Model        string           `json:"model"`
	Embedder     string           `json:"embedder"`      // the embedding space's id
	EmbedderFlag string           `json:"embedder_flag"` // -embedder
	Experts      int              `json:"experts"`
	MinScore     float64          `json:"min_score"`
	Fallback     float64          `json:"fallback_quantile"`
	Lexical      bool             `json:"lexical"`
	Signature    float64          `json:"signature_weight"`
	Typical      float64          `json:"typical_weight"`
	Background   int              `json:"background"` // general requests the fallback measures against (0: none)
	GroupSize    int              `json:"group_size"`
	Splits       []SplitReport    `json:"splits"`
	Templated    *TemplatedReport `json:"template_rendered,omitempty"`
	Bars         []Bar            `json:"bars,omitempty"`       // judged on the test split and the template-rendered means
	FreshBars    []Bar            `json:"fresh_bars,omitempty"` // the same bars on the fresh split (prompts/README.md)
}

// SplitReport is one prompt split at each Q.
type SplitReport struct {
	Split   string         `json:"split"`
	TunedOn bool           `json:"tuned_on"` // false for test: never used to tune anything
	Prompts map[string]int `json:"prompts"`  // by family
	Q       []QReport      `json:"q"`
}

// QReport is one split routed at one Q (prompts per request).
type QReport struct {
	Q           int                       `json:"q"`
	InDomain    int                       `json:"in_domain_decisions"`
	OutOfDomain int                       `json:"out_of_domain_decisions"`
	Top1        num                       `json:"in_domain_top1"`
	ByFamily    map[string]num            `json:"top1_by_family"`
	FallbackIn  num                       `json:"fallback_in_domain"`
	FallbackOut num                       `json:"fallback_out_of_domain"`
	AUROC       num                       `json:"auroc"`         // confidence: in-domain above out-of-domain
	Confusion   map[string]map[string]int `json:"confusion"`     // true family → routed family or "fallback"
	Wrong       map[string]map[string]int `json:"wrong_experts"` // true family → expert routed to wrongly
	Decisions   []decision                `json:"decisions"`
	Thresholds  []ThresholdRow            `json:"client_thresholds"`
}

// ThresholdRow is what a client that serves the routed expert only when
// roe.confidence ≥ Min (and otherwise the base model, like a fallback) would
// get on these prompts: how to read the confidence as a decision.
type ThresholdRow struct {
	Min       float64 `json:"min_confidence"`
	Served    int     `json:"served"`     // decisions served by an expert
	Right     int     `json:"right"`      // of them, in domain and of the right family
	InDomain  num     `json:"recall"`     // in-domain decisions served right ÷ in-domain decisions
	Precision num     `json:"precision"`  // Right ÷ Served
	OutServed num     `json:"out_served"` // out-of-domain decisions served by an expert ÷ out-of-domain decisions
}

// clientThresholds are the confidences the threshold table tries (0: the
// server's own decision).
var clientThresholds = []float64{0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5}

// thresholds is the threshold table of ds.
func thresholds(ds []decision, nIn, nOut int) []ThresholdRow {
	var rows []ThresholdRow
	for _, t := range clientThresholds {
		r := ThresholdRow{Min: t}
		out := 0
		for _, d := range ds {
			if d.Routed == "fallback" || d.Confidence < t {
				continue
			}
			r.Served++
			switch {
			case d.Family == none:
				out++
			case d.Routed == d.Family:
				r.Right++
			}
		}
		r.InDomain, r.Precision, r.OutServed = num(ratio(r.Right, nIn)), num(ratio(r.Right, r.Served)), num(ratio(out, nOut))
		rows = append(rows, r)
	}
	return rows
}

// TemplatedReport is section 2 of quality.md, measured with this run's embedder.
type TemplatedReport struct {
	Qs      []int                   `json:"qs"`
	Singles int                     `json:"queries_q1"`
	Trials  int                     `json:"trials_q_gt_1"`
	Seed    uint64                  `json:"seed"`
	Tasks   []retriever.TaskRouting `json:"tasks"`
	Mean    map[string]num          `json:"mean"`
}

// score counts a Q's decisions.
func score(q int, ds []decision) QReport {
	r := QReport{Q: q, ByFamily: map[string]num{}, Confusion: map[string]map[string]int{},
		Wrong: map[string]map[string]int{}, Decisions: ds}
	n, correct := map[string]int{}, map[string]int{}
	var in, out []float64
	fbIn, fbOut := 0, 0
	for _, d := range ds {
		if r.Confusion[d.Family] == nil {
			r.Confusion[d.Family], r.Wrong[d.Family] = map[string]int{}, map[string]int{}
		}
		r.Confusion[d.Family][d.Routed]++
		if d.Expert != "" && d.Routed != d.Family {
			r.Wrong[d.Family][d.Expert]++
		}
		if d.Family == none {
			r.OutOfDomain++
			out = append(out, d.Confidence)
			if d.Routed == "fallback" {
				fbOut++
			}
			continue
		}
		r.InDomain++
		n[d.Family]++
		in = append(in, d.Confidence)
		if d.Routed == d.Family {
			correct[d.Family]++
		}
		if d.Routed == "fallback" {
			fbIn++
		}
	}
	all := 0
	for f, k := range n {
		r.ByFamily[f] = num(ratio(correct[f], k))
		all += correct[f]
	}
	r.Top1 = num(ratio(all, r.InDomain))
	r.FallbackIn, r.FallbackOut = num(ratio(fbIn, r.InDomain)), num(ratio(fbOut, r.OutOfDomain))
	r.AUROC = num(auroc(in, out))
	r.Thresholds = thresholds(ds, r.InDomain, r.OutOfDomain)
	return r
}

// num is a float64 that JSON writes as null when NaN (nothing measured).
type num float64

func (x num) MarshalJSON() ([]byte, error) {
	if math.IsNaN(float64(x)) {
		return []byte("null"), nil
	}
	return json.Marshal(float64(x))
}

func ratio(a, b int) float64 {
	if b == 0 {
		return math.NaN()
	}
	return float64(a) / float64(b)
}

// auroc is P(a random positive scores above a random negative), ties ½.
func auroc(pos, neg []float64) float64 {
	if len(pos) == 0 || len(neg) == 0 {
		return math.NaN()
	}
	s := 0.0
	for _, p := range pos {
		for _, n := range neg {
			switch {
			case p > n:
				s++
			case p == n:
				s += 0.5
			}
		}
	}
	return s / float64(len(pos)*len(neg))
}

func readFS(fsys fs.FS, name string) ([]byte, error) { return fs.ReadFile(fsys, name) }

func sortedCopy(xs []string) []string {
	out := append([]string(nil), xs...)
	sort.Strings(out)
	return out
}

func pct(x num) string {
	if math.IsNaN(float64(x)) {
		return "–"
	}
	return fmt.Sprintf("%.1f", 100*x)
}

// write saves routing.json and routing.md in -out.
func write(rep *Report) error {
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(*outDir, "routing.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	md := filepath.Join(*outDir, "routing.md")
	logf("wrote %s and routing.json", md)
	return os.WriteFile(md, []byte(markdown(rep)), 0o644)
}
