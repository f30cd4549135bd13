package results

import (
	"regexp"
	"testing"
)

func TestCommit(t *testing.T) {
	if c := Commit(); !regexp.MustCompile(`^([0-9a-f]{7,40}(-dirty)?|unknown)$`).MatchString(c) {
		t.Errorf("Commit() = %q", c)
	}
	if got, want := Markdown("abc1234", ""), "Commit: `abc1234`."; got != want {
		t.Errorf("Markdown = %q, want %q", got, want)
	}
	if got, want := Markdown("abc1234", "from git"), "Commit: `abc1234` (from git)."; got != want {
		t.Errorf("Markdown = %q, want %q", got, want)
	}
}
