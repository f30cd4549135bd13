package main

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every command and command group answers -h and --help with exit status 0,
// and `roe help CMD [SUB]` is `roe CMD [SUB] -h`.
func TestHelpEverywhere(t *testing.T) {
	// Leaf commands print their flags to the process's stderr.
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	old := os.Stderr
	os.Stderr = devnull
	defer func() { os.Stderr = old }()
	var lines [][]string
	for _, c := range commands {
		lines = append(lines, []string{c.name}, []string{"help", c.name})
		if c.name == "eval" {
			lines = append(lines, []string{"eval", "routing"})
		}
		for _, s := range c.subs {
			lines = append(lines, []string{c.name, s.name}, []string{"help", c.name, s.name})
		}
	}
	for _, l := range lines {
		for _, h := range []string{"-h", "--help"} {
			args := l
			if l[0] != "help" {
				args = append(append([]string(nil), l...), h)
			} else if h == "--help" {
				continue
			}
			if _, errs, code := roe(t, "", args...); code != 0 {
				t.Errorf("roe %s: exit %d: %s", strings.Join(args, " "), code, errs)
			}
		}
	}
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}} {
		if _, errs, code := roe(t, "", args...); code != 0 || !strings.Contains(errs, "commands:") {
			t.Errorf("roe %v: exit %d: %s", args, code, errs)
		}
	}
	// A group without a command is a usage error that lists its commands.
	if _, errs, code := roe(t, "", "experts"); code != 2 || !strings.Contains(errs, "import") {
		t.Errorf("roe experts: exit %d: %s", code, errs)
	}
}

func TestVersion(t *testing.T) {
	for _, arg := range []string{"--version", "version"} {
		out, _, code := roe(t, "", arg)
		if code != 0 || !strings.HasPrefix(out, "roe ") || !strings.Contains(out, "go1.") {
			t.Errorf("roe %s: exit %d: %q", arg, code, out)
		}
	}
	version = "v9.9.9-test"
	defer func() { version = "" }()
	if out, _, _ := roe(t, "", "--version"); !strings.HasPrefix(out, "roe v9.9.9-test") {
		t.Errorf("with -X main.version: %q", out)
	}
}

// A taken port fails at once: before "serving" is printed and before the
// library is created or the starter experts imported.
func TestServeBindsFirst(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lib := filepath.Join(t.TempDir(), "lib")
	out, errs, code := roe(t, "", "serve", "--addr", ln.Addr().String(), "--library", lib)
	if code == 0 || strings.Contains(out, "serving") || !strings.Contains(errs, "--addr") || !strings.Contains(errs, "in use") {
		t.Errorf("serve on a taken port: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if _, err := os.Stat(lib); err == nil {
		t.Error("the library was created before the bind failed")
	}
	for _, args := range [][]string{{"--addr", "nonsense"}, {"--adapter-root", "/nonexistent"}} {
		if _, errs, code := roe(t, "", append([]string{"serve", "--library", lib}, args...)...); code == 0 || errs == "" {
			t.Errorf("serve %v: exit %d %q", args, code, errs)
		}
	}
	// $ROE_ADDR is the default address.
	t.Setenv("ROE_ADDR", ln.Addr().String())
	if _, errs, _ := roe(t, "", "serve", "--library", lib); !strings.Contains(errs, ln.Addr().String()) {
		t.Errorf("ROE_ADDR not used: %q", errs)
	}
}

// Off a terminal, progress is JSON lines, at most one a second but always
// the first and the last.
func TestProgressJSONLines(t *testing.T) {
	var b bytes.Buffer
	p := newProgress(&b, "eval")
	for i := 0; i <= 100; i++ {
		p.report(i, 100, "choices", map[string]any{"extra": 1})
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) < 2 || len(lines) > 5 {
		t.Fatalf("%d lines:\n%s", len(lines), b.String())
	}
	var last map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
		t.Fatal(err)
	}
	if last["event"] != "progress" || last["phase"] != "eval" || last["done"] != 100.0 || last["total"] != 100.0 || last["extra"] != 1.0 {
		t.Errorf("last line %v", last)
	}
	if s := drawBar("x", 5, 10); !strings.Contains(s, "[===============               ] 5/10") {
		t.Errorf("bar %q", s)
	}
}
