// Package results records which commit a benchmark's results were measured on:
// every writer of benchmarks/results puts Commit() into its JSON (a "commit"
// field) and Markdown() into its markdown header. Shell and Python writers get
// it from `go run ./benchmarks/internal/results/commit`.
package results

import (
	"fmt"
	"os/exec"
	"runtime/debug"
	"strings"
)

// Commit is the git commit of the source tree the benchmark runs from: the short
// hash of HEAD, with "-dirty" when tracked or untracked files differ from it
// (benchmarks/results itself excepted: a run's own output does not change what
// it measures). It asks git, since `go run` does not stamp the build with
// vcs.revision; without git it falls back to the build's stamp, else "unknown".
func Commit() string {
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		c := strings.TrimSpace(string(out))
		st, err := exec.Command("git", "status", "--porcelain", "--", ":(top)", ":(top,exclude)benchmarks/results").Output()
		if err != nil {
			return c + "-unknown"
		}
		if len(strings.TrimSpace(string(st))) > 0 {
			c += "-dirty"
		}
		return c
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		var rev, dirty string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "-dirty"
				}
			}
		}
		if len(rev) > 7 {
			rev = rev[:7]
		}
		if rev != "" {
			return rev + dirty
		}
	}
	return "unknown"
}

// Markdown is the header sentence that records commit, with a note on where it
// came from when the run did not record it itself.
func Markdown(commit, note string) string {
	if note != "" {
		return fmt.Sprintf("Commit: `%s` (%s).", commit, note)
	}
	return fmt.Sprintf("Commit: `%s`.", commit)
}
