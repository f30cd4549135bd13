package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"roe/model/tokenizer"
	"roe/tasks"
)

// runTrainTokenizer is `roe model train-tokenizer`: it learns a byte-level BPE vocabulary
// from text files and writes tokenizer.json and tokenizer_config.json.
func runTrainTokenizer(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("model train-tokenizer", flag.ContinueOnError)
	var corpus stringList
	fs.Var(&corpus, "corpus", "training text `file` (repeatable)")
	vocab := fs.Int("vocab-size", 4096, "vocabulary size, the specials <s> </s> and the 256 bytes included")
	minFreq := fs.Int("min-frequency", 2, "merge only pairs seen at least this often")
	out := fs.String("out", "", "output `folder` for tokenizer.json and tokenizer_config.json")
	decon := fs.String("decontaminate", "", "task `folders` (as shared/data/tasks): skip corpus lines sharing a 13-word sequence with any validation or test example")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q (give training files with --corpus)", pos[0])
	}
	if len(corpus) == 0 || *out == "" {
		return usagef("usage: roe model train-tokenizer --corpus FILE [--corpus FILE...] --vocab-size N --out DIR")
	}
	if *vocab <= 0 || *minFreq <= 0 {
		return usagef("--vocab-size and --min-frequency must be positive")
	}
	for _, f := range corpus {
		if _, err := os.Stat(f); err != nil {
			return err
		}
	}

	start := time.Now()
	var readErr error
	lines := corpusLines(corpus, &readErr)
	if *decon != "" {
		f, err := tasks.TaskFilter(*decon)
		if err != nil {
			return fmt.Errorf("--decontaminate: %w", err)
		}
		all, dropped := lines, 0
		lines = func(yield func(string) bool) {
			for l := range all {
				if f.Hit(l) {
					dropped++
					continue
				}
				if !yield(l) {
					return
				}
			}
		}
		defer func() { fmt.Fprintf(stdout, "decontamination: %d corpus lines skipped\n", dropped) }()
	}
	tr, err := tokenizer.TrainBPE(lines, tokenizer.TrainOptions{VocabSize: *vocab, MinFrequency: *minFreq})
	if readErr != nil {
		return readErr
	}
	if err != nil {
		return err
	}
	took := time.Since(start)
	if err := tr.WriteDir(*out); err != nil {
		return err
	}
	tok, err := tokenizer.Load(*out) // the files must load as written
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "trained %d tokens (%d merges) in %.2fs\n", len(tr.Tokens), len(tr.Merges), took.Seconds())

	var nBytes, nTokens, nWords int
	for line := range corpusLines(corpus, &readErr) {
		nBytes += len(line)
		nTokens += len(tok.Encode(line, false))
		nWords += len(strings.Fields(line))
	}
	if readErr != nil {
		return readErr
	}
	if nTokens > 0 && nWords > 0 {
		fmt.Fprintf(stdout, "corpus: %d bytes, %d words -> %d tokens: %.2f bytes/token, %.3f tokens/word\n",
			nBytes, nWords, nTokens, float64(nBytes)/float64(nTokens), float64(nTokens)/float64(nWords))
	}
	fmt.Fprintf(stdout, "wrote %s\n", *out)
	return nil
}

// corpusLines yields the lines of the files, line endings kept, as the Hugging Face
// trainer reads files; the first read error goes to *errp and ends the sequence.
func corpusLines(files []string, errp *error) func(func(string) bool) {
	return func(yield func(string) bool) {
		for _, name := range files {
			f, err := os.Open(name)
			if err != nil {
				*errp = err
				return
			}
			r := bufio.NewReaderSize(f, 1<<20)
			for {
				line, err := r.ReadString('\n')
				if line != "" && !yield(line) {
					f.Close()
					return
				}
				if err == io.EOF {
					break
				}
				if err != nil {
					f.Close()
					*errp = fmt.Errorf("%s: %w", name, err)
					return
				}
			}
			f.Close()
		}
	}
}
