// q8ab measures decode with and without int8 activations (--activations q8)
// on the random SmolLM2-135M-shape model written as GGUF files of the given
// types, alternating the two configurations round by round so that load on
// a shared machine falls on both:
//
//	go run ./benchmarks/q8ab q8_0,q4_0,q4_k_m
//
// It prints ms per token (minimum and median of 12 rounds of 24 greedy
// steps) at 1 and 2 threads. The files are cached in $TMPDIR/roe-q8ab.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"roe/benchmarks/internal/synthvocab"
	"roe/kernels"
	"roe/model"
)

func steps(m *model.Model, n int) time.Duration {
	out := make([]model.Output, 1)
	c := m.NewCache()
	tok := []int{1}
	m.ForwardInto([]model.Step{{Cache: c, Tokens: tok}}, out)
	start := time.Now()
	for range n {
		tok[0] = model.Argmax(out[0].Logits)
		m.ForwardInto([]model.Step{{Cache: c, Tokens: tok}}, out)
	}
	return time.Since(start) / time.Duration(n)
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: q8ab TYPE[,TYPE...]   (GGUF file types, e.g. q8_0,q4_0,q4_k_m)")
		os.Exit(2)
	}
	types := strings.Split(os.Args[1], ",")
	rounds := 12
	var f32 *model.Model
	for _, name := range types {
		dir := filepath.Join(os.TempDir(), "roe-q8ab")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			panic(err)
		}
		path := filepath.Join(dir, "random-135M-"+name+".gguf")
		if _, err := os.Stat(path); err != nil {
			if f32 == nil {
				if f32, err = model.Random(model.SmolLM2Shape(), 1); err != nil {
					panic(err)
				}
			}
			ft, err := model.ParseGGUFFileType(name)
			if err != nil {
				panic(err)
			}
			if err := model.SaveGGUF(path, f32, model.GGUFWriteOptions{FileType: ft, Name: "random-135M", Vocab: synthvocab.GGUF(f32.Config.VocabSize)}); err != nil {
				panic(err)
			}
		}
		a, _, err := model.LoadGGUF(path, model.LoadOptions{})
		if err != nil {
			panic(err)
		}
		b, _, err := model.LoadGGUF(path, model.LoadOptions{Activations: model.ActivationsQ8})
		if err != nil {
			panic(err)
		}
		for _, t := range []int{1, 2} {
			kernels.SetThreads(t)
			var ta, tb []float64
			for range rounds {
				ta = append(ta, steps(a, 24).Seconds()*1e3)
				tb = append(tb, steps(b, 24).Seconds()*1e3)
			}
			slices.Sort(ta)
			slices.Sort(tb)
			fmt.Printf("%s threads=%d ms/token: f32 min %.2f med %.2f | q8 (%s) min %.2f med %.2f | f32/q8 min %.2fx med %.2fx\n",
				name, t, ta[0], ta[rounds/2], b.Q8Types(), tb[0], tb[rounds/2], ta[0]/tb[0], ta[rounds/2]/tb[rounds/2])
		}
	}
}
