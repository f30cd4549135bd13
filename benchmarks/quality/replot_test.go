package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestResultsReproduce checks that the committed quality reports are what
// -replot writes from their quality.json: the markdown is not edited by hand,
// and quality.json round-trips through Report.
func TestResultsReproduce(t *testing.T) {
	for _, dir := range []string{"../results", "../results/stories260K"} {
		t.Run(dir, func(t *testing.T) {
			js, err := os.ReadFile(filepath.Join(dir, "quality.json"))
			if err != nil {
				t.Fatal(err)
			}
			md, err := os.ReadFile(filepath.Join(dir, "quality.md"))
			if err != nil {
				t.Fatal(err)
			}
			var rep Report
			if err := json.Unmarshal(js, &rep); err != nil {
				t.Fatal(err)
			}
			if rep.Commit == "" {
				t.Error("no commit recorded")
			}
			if st := rep.Stability; st != nil && st.LabelMajority == nil {
				t.Fatal("stability without the label baseline: run -replot with the shared data")
			}
			old := *outDir
			defer func() { *outDir = old }()
			*outDir = t.TempDir()
			if err := write(&rep); err != nil {
				t.Fatal(err)
			}
			for name, want := range map[string][]byte{"quality.json": js, "quality.md": md} {
				got, err := os.ReadFile(filepath.Join(*outDir, name))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s/%s differs from what -replot writes from quality.json", dir, name)
				}
			}
		})
	}
}
