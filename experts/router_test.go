package experts

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"roe/tasks"
)

func TestWriteLikeAUser(t *testing.T) {
	ex := tasks.Example{"premise": "A man plays a guitar on stage.", "hypothesis": "A man performs music tonight.", "label": 0.0, "idx": 3.0, "genre": "x y z"}
	it := routerItem{
		rendered: []tasks.Rendered{{Input: "Does the premise imply the hypothesis? template words", AnswerChoices: []string{"yes", "no"}}},
		labelled: labelledFields(ex),
	}
	if len(it.labelled) != 2 || it.labelled[0].name != "hypothesis" || it.labelled[1].name != "premise" {
		t.Fatalf("labelled fields %+v", it.labelled)
	}
	r := rand.New(rand.NewPCG(1, 2))
	seen := map[string]bool{}
	for range 200 {
		q := writeLikeAUser(r, it)
		if strings.Contains(q, "template words") {
			t.Fatalf("the template's instruction leaked: %q", q)
		}
		for _, f := range it.labelled {
			if !strings.Contains(q, f.text) {
				t.Fatalf("field %s missing: %q", f.name, q)
			}
		}
		if !strings.Contains(q, "yes") || !strings.Contains(q, "no") {
			t.Fatalf("choices missing: %q", q)
		}
		seen[strings.SplitN(q, ":", 2)[0]] = true
	}
	// Both labelled ("Hypothesis: …", "hypothesis: …") and other forms occur.
	if !seen["Hypothesis"] || !seen["hypothesis"] || len(seen) < 4 {
		t.Errorf("forms seen: %v", seen)
	}
}

// General requests join the background keys at about their share, each at
// least once, and those shorter than 8 words (or longer than 120) not at all.
func TestMixRequests(t *testing.T) {
	paras := make([]string, 700)
	for i := range paras {
		paras[i] = fmt.Sprintf("paragraph %d of plain prose with enough words in it", i)
	}
	long := "please write me a short poem about the sea at night"
	short := "350 F to C"
	got := mixRequests(paras, []string{long, short}, 0.3)
	n := 0
	for _, s := range got {
		switch s {
		case long:
			n++
		case short:
			t.Fatalf("a request of %d words is a background key", len(strings.Fields(short)))
		}
	}
	if share := float64(n) / float64(len(got)); n == 0 || math.Abs(share-0.3) > 0.01 {
		t.Errorf("%d of %d keys are requests (%.3f), want about 0.3", n, len(got), share)
	}
	if got := mixRequests(nil, []string{long}, 0.3); len(got) != 1 || got[0] != long {
		t.Errorf("no paragraphs: %q, want the request once", got)
	}
	if got := mixRequests(paras, []string{short}, 0.3); len(got) != len(paras) {
		t.Errorf("only short requests: %d keys, want the %d paragraphs", len(got), len(paras))
	}
}
