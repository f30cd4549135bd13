package experts

import (
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
