// Command roe serves a base language model with a library of expert adapters.
//
// Usage:
//
//	roe serve     [--model DIR] [--library DIR] [--addr HOST:PORT] [--api-key KEY | --api-key-file F] [--max-batch N] [--max-context N] [--embedder base|DIR]
//	roe generate  [--model DIR] [--adapter DIR[,DIR --merge M]] --prompt TEXT [--max-tokens N] [--temperature T] [--top-p P] [--top-k K] [--seed S] [--stop S] [--json]
//	roe tokenize  [--model DIR] [--no-special] [TEXT]
//	roe embed     [--model DIR] TEXT
//	roe score     [--model DIR] --prompt TEXT --continuation TEXT
//	roe merge     [--model DIR] --adapters A,B,... --method M [--weights W,...] [--density D] [--rank R] --out DIR
//	roe train     [--model DIR] --data DIR --template FILE|--templates DIR [--prompt NAME | --all-prompts] [--strategy single|stilts|mtl|auto --aux DIR] [--method lora|full|cpi] [--rank R] [--epochs E] [--steps N] [--lr LR] [--batch B] [--seed S] [--seeds N] [--no-bias-correction] (--out DIR | --library DIR --name NAME)
//	roe eval      [--model DIR] [--adapter DIR | --library DIR --expert NAME|auto] --data DIR --template FILE|--templates DIR [--prompt NAME] [--split validation] [--n N] [--length-norm]
//	roe model import-llama2c --checkpoint F --tokenizer F --out DIR
//	roe model train-tokenizer --corpus FILE [--corpus FILE...] [--vocab-size N] [--min-frequency N] --out DIR
//	roe model pretrain --corpus FILE [--corpus FILE...] --tokenizer DIR --out DIR [--hidden 128 --layers 4 --heads 4 --kv-heads 2 --ffn 352 --seq-len 256 --steps N --batch 16 --lr 3e-3 --seed 1 --dtype f32|bf16 --time-budget 20m]
//	roe model quantize [--model DIR|FILE.gguf|NAME] --type q8_0|q4_0|q4_1|q5_0|q5_1|q2_k|q3_k_s|q3_k_m|q3_k_l|q4_k_s|q4_k_m|q5_k_s|q5_k_m|q6_k|iq4_nl|iq4_xs|f16|bf16|f32 --out FILE.gguf [--name NAME]
//	roe model export-gguf [--model DIR|FILE.gguf|NAME] [--type f32|f16|bf16] --out FILE.gguf [--name NAME]
//
// Without --model, roe uses the embedded stories260K model.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

type command struct {
	name  string
	usage string
	run   func(args []string, stdin io.Reader, stdout io.Writer) error
	subs  []subcommand // a group's subcommands; nil for a command of its own
}

// subcommand is one command of a group, for the group's help.
type subcommand struct{ name, usage string }

var commands []command

func init() {
	commands = []command{
		{"serve", "serve the OpenAI-compatible API with expert routing", runServe, nil},
		{"generate", "generate a continuation of a prompt", runGenerate, nil},
		{"tokenize", "print token ids as a JSON array", runTokenize, nil},
		{"embed", "print the mean-pooled embedding of a text", runEmbed, nil},
		{"embedder", "routing embedder tools: train", runEmbedder, []subcommand{
			{"train", "train the routing encoder on task data"}}},
		{"score", "print the log-likelihood of a continuation", runScore, nil},
		{"experts", "manage the expert library: add, import, list, show, rm, export", runExperts, []subcommand{
			{"add", "add a PEFT or GGUF LoRA with its instances as an expert"},
			{"import", "import an expert folder written by `experts export`"},
			{"list", "list the library's experts"},
			{"show", "print an expert's manifest"},
			{"rm", "remove an expert"},
			{"export", "write an expert as a PEFT folder or a GGUF LoRA"},
			{"reembed", "re-embed exported expert folders' instances with another embedder"}}},
		{"route", "raw retrieval of query instances over a library folder (no calibrated fallback; the server's decision: POST /v1/route)", runRoute, nil},
		{"train", "train an expert (LoRA, full or CPI-FT) on a task", runTrain, nil},
		{"eval", "evaluate: task accuracy by rank classification; routing accuracy (eval routing)", runEval, nil},
		{"data", "task data tools: instances", runData, []subcommand{
			{"instances", "print instances of a task as instances.jsonl"}}},
		{"adapter", "adapter tools: init", runAdapter, []subcommand{
			{"init", "write a freshly initialised PEFT LoRA"}}},
		{"merge", "merge LoRA adapters into a new PEFT folder", runMerge, nil},
		{"model", "model tools: info, import-llama2c, train-tokenizer, pretrain, quantize, export-gguf", runModel, []subcommand{
			{"info", "what a model is: format, shape, tensor types, tokenizer (no weights read)"},
			{"import-llama2c", "convert a llama2.c checkpoint to a Hugging Face folder"},
			{"train-tokenizer", "train a byte-level BPE tokenizer on a corpus"},
			{"pretrain", "pretrain a small Llama from scratch on a corpus"},
			{"quantize", "write a model as a quantized GGUF (q8_0, q4_k_m, ...)"},
			{"export-gguf", "write a model as a GGUF of float weights"}}},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// isHelp reports whether a is a request for help.
func isHelp(a string) bool { return a == "-h" || a == "--help" || a == "-help" || a == "help" }

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || isHelp(args[0]) {
		// roe help CMD [SUB] is roe CMD [SUB] -h.
		if len(args) > 1 && args[0] == "help" && !isHelp(args[1]) {
			return run(append(append([]string(nil), args[1:]...), "-h"), stdin, stdout, stderr)
		}
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "--version" || args[0] == "-version" || args[0] == "version" {
		fmt.Fprintln(stdout, versionString())
		return 0
	}
	for _, c := range commands {
		if c.name == args[0] {
			if c.subs != nil && (len(args) == 1 || isHelp(args[1])) {
				groupUsage(stderr, c)
				if len(args) == 1 {
					return 2
				}
				return 0
			}
			err := c.run(args[1:], stdin, stdout)
			if err == nil {
				return 0
			}
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			fmt.Fprintf(stderr, "roe %s: %v\n", c.name, err)
			var ue usageError
			if errors.As(err, &ue) {
				return 2
			}
			return 1
		}
	}
	fmt.Fprintf(stderr, "roe: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: roe <command> [flags]\n\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.usage)
	}
	fmt.Fprintln(w, "\nrun 'roe <command> -h' for a command's flags; 'roe --version' for the version")
}

// groupUsage lists a command group's subcommands.
func groupUsage(w io.Writer, c command) {
	fmt.Fprintf(w, "usage: roe %s <command> [flags]\n\n%s\n\ncommands:\n", c.name, c.usage)
	for _, s := range c.subs {
		fmt.Fprintf(w, "  %-16s %s\n", s.name, s.usage)
	}
	fmt.Fprintf(w, "\nrun 'roe %s <command> -h' for a command's flags\n", c.name)
}

// usageError marks bad command-line input (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// parse parses flags that may come before or after positional arguments.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		f := fs.Lookup(name)
		if f == nil {
			continue // flag.Parse reports it
		}
		if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
			continue
		}
		if i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	if err := fs.Parse(flags); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stderr)
			fs.Usage()
			return nil, err
		}
		return nil, usageError{err.Error()}
	}
	return pos, nil
}
