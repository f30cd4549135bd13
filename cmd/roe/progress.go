package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// progressOut receives the progress of commands whose stdout is their result
// (eval, experts add/import); tests replace it.
var progressOut io.Writer = os.Stderr

// progress shows how far a long command is: a bar redrawn in place when w is
// a terminal, else JSON lines ({"event":"progress","phase",...}) for logs and
// scripts, as `roe train` prints them.
type progress struct {
	w     io.Writer
	tty   bool
	enc   *json.Encoder
	phase string
	start time.Time
	last  time.Time     // last line or redraw
	every time.Duration // JSON lines at most this often (the last one always)
	open  bool          // a bar is drawn and not yet ended by a newline
}

func newProgress(w io.Writer, phase string) *progress {
	return &progress{w: w, tty: isTerminal(w), enc: json.NewEncoder(w), phase: phase, start: time.Now(), every: time.Second}
}

// report shows done of total. text follows the bar on a terminal; fields go
// into the JSON line.
func (p *progress) report(done, total int, text string, fields map[string]any) {
	now := time.Now()
	elapsed := now.Sub(p.start)
	var eta time.Duration
	if done > 0 && total > done {
		eta = time.Duration(float64(elapsed) / float64(done) * float64(total-done))
	}
	last := done >= total
	if p.tty {
		if !last && now.Sub(p.last) < 100*time.Millisecond {
			return
		}
		p.last = now
		fmt.Fprintf(p.w, "\r%s  %s  ETA %s   ", drawBar(p.phase, done, total), text, eta.Round(time.Second))
		p.open = !last
		if last {
			fmt.Fprintln(p.w)
		}
		return
	}
	if !last && done > 1 && p.every > 0 && now.Sub(p.last) < p.every {
		return
	}
	p.last = now
	line := map[string]any{"event": "progress", "phase": p.phase, "done": done, "total": total,
		"elapsed_s": round3(elapsed.Seconds()), "eta_s": round3(eta.Seconds())}
	for k, v := range fields {
		line[k] = v
	}
	_ = p.enc.Encode(line)
}

// end finishes a bar left open (a run stopped before its last step).
func (p *progress) end() {
	if p.open {
		fmt.Fprintln(p.w)
		p.open = false
	}
}

// println prints a line of text, below the bar on a terminal.
func (p *progress) println(format string, a ...any) {
	if p.open {
		fmt.Fprintln(p.w)
		p.open = false
	}
	fmt.Fprintf(p.w, format+"\n", a...)
}

// drawBar is "phase [=====     ] done/total", the bar of every command.
func drawBar(phase string, done, total int) string {
	const width = 30
	n := width * min(done, total) / max(1, total)
	return fmt.Sprintf("%-9s [%s%s] %d/%d", phase, strings.Repeat("=", n), strings.Repeat(" ", width-n), done, total)
}

func round3(x float64) float64 { return float64(int64(x*1000+0.5)) / 1000 }
