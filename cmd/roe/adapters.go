package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"roe/adapters"
	"roe/model"
)

// mergeFlags are the options shared by `generate --adapter A,B --merge M` and `roe merge`.
type mergeFlags struct {
	method  *string
	weights *string
	density *float64
	t       *float64
	seed    *uint64
	rank    *int
	core    *float64
}

func addMergeFlags(fs *flag.FlagSet) *mergeFlags {
	return &mergeFlags{
		method:  fs.String("merge", "linear", "merge method: "+methodList()),
		weights: fs.String("weights", "", "comma-separated weight per adapter (default: the method's)"),
		density: fs.Float64("density", 0, "fraction of entries kept by ties, dare-*, magnitude-prune (default: the method's)"),
		t:       fs.Float64("t", 0.5, "slerp interpolation between the two adapters"),
		seed:    fs.Uint64("merge-seed", 0, "seed of dare's random drop"),
		rank:    fs.Int("rank", 0, "compress the merged adapter to this rank by truncated SVD (default: exact, e.g. Σ ranks for linear)"),
		core:    fs.Float64("core-fraction", 0, "cpi: fraction of |ΔW| entries that are an expert's core (default 0.01)"),
	}
}

func methodList() string {
	var names []string
	for _, m := range adapters.Methods() {
		names = append(names, string(m))
	}
	return strings.Join(names, ", ")
}

func (f *mergeFlags) options(n int) (adapters.MergeOptions, error) {
	o := adapters.MergeOptions{Method: adapters.Method(*f.method), Density: *f.density, T: *f.t, Seed: *f.seed,
		Rank: *f.rank, CoreFraction: *f.core}
	if *f.weights != "" {
		for _, s := range strings.Split(*f.weights, ",") {
			w, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if err != nil {
				return o, usagef("--weights: %q is not a number", s)
			}
			o.Weights = append(o.Weights, w)
		}
		if len(o.Weights) != n {
			return o, usagef("--weights has %d values for %d adapters", len(o.Weights), n)
		}
	}
	return o, nil
}

// adapterFlag is `--adapter DIR[,DIR...]` with the merge options.
type adapterFlag struct {
	dirs  *string
	merge *mergeFlags
}

func adapterFlags(fs *flag.FlagSet) *adapterFlag {
	return &adapterFlag{
		dirs:  fs.String("adapter", "", "PEFT LoRA folder; several, comma-separated, are merged with --merge"),
		merge: addMergeFlags(fs),
	}
}

// load returns nil without --adapter, the adapter for one folder, or the merge
// of several (or of one with --weights, which scales it under linear).
func (a *adapterFlag) load(base model.Config) (model.Adapter, error) {
	if *a.dirs == "" {
		return nil, nil
	}
	dirs := strings.Split(*a.dirs, ",")
	ls, err := loadAdapters(dirs, base)
	if err != nil {
		return nil, err
	}
	if len(ls) == 1 && *a.merge.weights == "" {
		return ls[0], nil // served unmerged; a weight makes it a (scaled) merge of one
	}
	o, err := a.merge.options(len(ls))
	if err != nil {
		return nil, err
	}
	merged, rep, err := adapters.Merge(ls, o)
	if err != nil {
		return nil, err
	}
	if rep.Compressed {
		fmt.Fprintln(mergeLog, "merge: "+describeReport(rep))
	}
	return merged, nil
}

// mergeLog receives what generate says about its merge (tests replace it).
var mergeLog io.Writer = os.Stderr

// describeReport says a merge's rank and, when it was compressed, what that lost.
func describeReport(rep adapters.MergeReport) string {
	if !rep.Compressed {
		return fmt.Sprintf("method %s, rank %d, exact", rep.Method, rep.Rank)
	}
	return fmt.Sprintf("method %s, compressed to rank %d (exact rank %d), relative Frobenius error %.3g (worst module %.3g)",
		rep.Method, rep.Rank, rep.ExactRank, rep.RelFrobError, rep.MaxModuleRelError)
}

func loadAdapters(dirs []string, base model.Config) ([]*adapters.LoRA, error) {
	var ls []*adapters.LoRA
	for _, d := range dirs {
		d = strings.TrimSpace(d)
		if d == "" {
			return nil, usagef("empty adapter folder name in the list")
		}
		l, err := adapters.Load(d, base)
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
	}
	return ls, nil
}

func runMerge(args []string, _ io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("merge", flag.ContinueOnError)
	dir := modelFlag(fs)
	list := fs.String("adapters", "", "comma-separated PEFT LoRA folders")
	out := fs.String("out", "", "output PEFT folder")
	mf := addMergeFlags(fs)
	fs.Lookup("merge").Usage = "merge method (alias of --method)"
	method := fs.String("method", "", "merge method: "+methodList())
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *list == "" || *out == "" {
		return usagef("--adapters and --out are required")
	}
	if *method != "" {
		*mf.method = *method
	}
	cfg, err := loadConfig(*dir)
	if err != nil {
		return err
	}
	ls, err := loadAdapters(strings.Split(*list, ","), cfg)
	if err != nil {
		return err
	}
	o, err := mf.options(len(ls))
	if err != nil {
		return err
	}
	merged, rep, err := adapters.Merge(ls, o)
	if err != nil {
		return err
	}
	if err := merged.Save(*out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: %s\n", *out, describeReport(rep))
	return nil
}
