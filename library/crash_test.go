//go:build unix

package library

import (
	"bufio"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	crashEnv     = "ROE_LIBRARY_CRASH_DIR"
	crashModeEnv = "ROE_LIBRARY_CRASH_MODE"
)

// crashOptions: "default" is DefaultOptions; "tight" has an 8 MiB memtable
// (a transaction holds at most 1.2 MiB) and keeps 256 KiB chunks in the LSM
// tree, so every Add takes about ten transactions: a wide window for a kill
// between the data and the manifest.
func crashOptions(dir, mode string) Options {
	o := DefaultOptions(dir)
	if mode == "tight" {
		o = o.WithMemTableSize(8 << 20).WithChunkSize(256 << 10).WithValueThreshold(512 << 10)
	}
	return o
}

// crashShape: 2 MiB of tensors (two 1 MiB chunks), 100 instances of dim 64.
var crashShape = shape{layers: 4, hidden: 1024, rank: 32, inst: 100, dim: 64}

// TestCrashChild is the child of TestCrash: it adds (and now and then
// removes) experts until it is killed, reporting each call that returned.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("child of TestCrash only")
	}
	l, err := Open(crashOptions(dir, os.Getenv(crashModeEnv)))
	if err != nil {
		fmt.Printf("error %v\n", err)
		os.Exit(2)
	}
	fmt.Println("ready")
	for i := 0; ; i++ {
		name := fmt.Sprintf("c%d/%03d", os.Getpid(), i)
		fmt.Println("adding", name)
		if _, err := l.Add(synth(name, crashShape)); err != nil {
			fmt.Printf("error %v\n", err)
			os.Exit(2)
		}
		fmt.Println("added", name)
		ms, err := l.List()
		if err != nil {
			fmt.Printf("error %v\n", err)
			os.Exit(2)
		}
		for len(ms) > 6 { // keep the library small: drop the oldest experts
			fmt.Println("removing", ms[0].Name)
			if err := l.Remove(ms[0].Name); err != nil {
				fmt.Printf("error %v\n", err)
				os.Exit(2)
			}
			fmt.Println("removed", ms[0].Name)
			ms = ms[1:]
		}
	}
}

// TestCrash kills a child that writes to the library with SIGKILL at random
// moments and checks after each kill that the library opens, that every
// expert in it is complete (checksums, counts and the exact bytes), that
// every Add the child saw return is there and every returned Remove is not,
// and that no data is left without a manifest.
func TestCrash(t *testing.T) {
	if os.Getenv(crashEnv) != "" {
		t.Skip("in the child")
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 2))
	x := 1 // ROE_LIBRARY_CRASH_X=n multiplies the kills, for stress runs
	if n, err := strconv.Atoi(os.Getenv("ROE_LIBRARY_CRASH_X")); err == nil && n > 1 {
		x = n
	}
	t.Run("default", func(t *testing.T) { crashLoop(t, r, "default", 20*x) })
	t.Run("tight", func(t *testing.T) { crashLoop(t, r, "tight", 10*x) })
}

func crashLoop(t *testing.T, r *rand.Rand, mode string, kills int) {
	dir := t.TempDir()
	present := map[string]bool{}  // acknowledged adds minus started removes
	wants := map[string]*Expert{} // synth cache (synth is slow under -race)
	verified, maxLive, acked, removes, cleanups := 0, 0, 0, 0, 0
	start := time.Now()
	period := 100 * time.Millisecond // how long one Add takes in the child, measured
	for k := 0; k < kills; k++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+dir, crashModeEnv+"="+mode)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// The reader forwards the child's lines; the parent waits for a
		// random number of finished adds (0-1), then kills at a random
		// point of the next add (or the remove after it), whose length it measures.
		events := make(chan string, 1024)
		var lines []string
		readDone := make(chan struct{})
		go func() {
			defer close(readDone)
			defer close(events)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines = append(lines, sc.Text())
				events <- sc.Text()
			}
		}()
		if k%6 == 5 {
			// Now and then kill it early: during Open and its cleanup.
			time.Sleep(time.Duration(r.IntN(60)) * time.Millisecond)
		} else {
			wantAdds, adds := r.IntN(2), 0
			deadline := time.After(60 * time.Second)
			var lastAdding time.Time
		wait:
			for adds < wantAdds || lastAdding.IsZero() {
				select {
				case ev, ok := <-events:
					if !ok {
						break wait
					}
					switch {
					case strings.HasPrefix(ev, "adding "):
						lastAdding = time.Now()
					case strings.HasPrefix(ev, "added "):
						adds++
						period = (3*period + time.Since(lastAdding)) / 4
					}
				case <-deadline:
					cmd.Process.Kill()
					t.Fatal("child made no progress in 60 s")
				}
			}
			time.Sleep(time.Duration(r.Int64N(int64(period)*5/4 + 1)))
		}
		cmd.Process.Signal(syscall.SIGKILL)
		go func() {
			for range events {
			}
		}()
		<-readDone
		werr := cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("child ended by itself (%v): %s", werr, strings.Join(lines, "\n"))
		}
		for _, line := range lines {
			switch {
			case strings.HasPrefix(line, "error "):
				t.Fatalf("child: %s", line)
			case strings.HasPrefix(line, "added "):
				present[strings.TrimPrefix(line, "added ")] = true
				acked++
			case strings.HasPrefix(line, "removing "):
				// From here on it may be gone, whether or not Remove returned.
				delete(present, strings.TrimPrefix(line, "removing "))
				removes++
			}
		}

		var logBuf strings.Builder
		l, err := Open(crashOptions(dir, mode).WithLogger(slog.New(slog.NewTextHandler(&logBuf, nil))))
		if err != nil {
			t.Fatalf("kill %d: open: %v", k, err)
		}
		if strings.Contains(logBuf.String(), "interrupted") {
			cleanups++
		}
		ms, err := l.List()
		if err != nil {
			t.Fatalf("kill %d: list: %v", k, err)
		}
		listed := map[string]bool{}
		for _, m := range ms {
			listed[m.Name] = true
			e, err := l.Get(m.Name)
			if err != nil {
				t.Fatalf("kill %d: %v", k, err)
			}
			want := wants[m.Name]
			if want == nil {
				want = synth(m.Name, crashShape)
				wants[m.Name] = want
			}
			if err := checkTensors(e.Tensors, want.Tensors); err != nil {
				t.Fatalf("kill %d: %s: %v", k, m.Name, err)
			}
			if len(e.Instances) != crashShape.inst || e.Instances[99].Text != want.Instances[99].Text ||
				e.Instances[99].Embedding[63] != want.Instances[99].Embedding[63] {
				t.Fatalf("kill %d: %s: instances differ", k, m.Name)
			}
			verified++
		}
		for name := range present {
			if !listed[name] {
				t.Fatalf("kill %d: %s was added (Add returned) but is gone", k, name)
			}
		}
		for name := range wants {
			if !listed[name] {
				delete(wants, name)
			}
		}
		// An unacknowledged add may have committed; a removed one may not be listed.
		for name := range listed {
			present[name] = true
		}
		if ids := dataIDs(t, l); len(ids) != len(ms) {
			t.Fatalf("kill %d: data of %d experts for %d manifests", k, len(ids), len(ms))
		}
		maxLive = max(maxLive, len(ms))
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if acked == 0 {
		t.Fatal("the child never finished an Add")
	}
	t.Logf("%d kills in %v: %d adds acknowledged, %d removes started, %d expert reads verified, up to %d experts live, %d opens cleaned orphan data; an Add took %v",
		kills, time.Since(start).Round(time.Millisecond), acked, removes, verified, maxLive, cleanups, period.Round(time.Millisecond))
}
