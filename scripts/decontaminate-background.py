#!/usr/bin/env python3
"""Drops background requests that resemble any routing benchmark prompt.

Usage: scripts/decontaminate-background.py IN.jsonl OUT.jsonl [PROMPTS_DIR]

A request (a JSON line with "prompt") is dropped when, against any prompt of
PROMPTS_DIR/*.jsonl (default benchmarks/routing/prompts: dev, test and fresh,
in and out of domain), its character 5-gram Jaccard similarity is >= 0.25, or
the two share two or more content words (stop words and words of under three
letters left out) making up >= 40% of the smaller prompt's content words. The
rule is deliberately broad, so what the benchmark measures is a request's
likeness to general requests, not to copies of its own prompts.
"""
import glob
import json
import os
import re
import sys

STOP = set("a an the of to in on for and or but is are was were be do does did i you my me it this that "
           "what how why when which who with can could should would will your at by from as about into than "
           "then so if not no yes please just some any get make like".split())


def words(s):
    return {w for w in re.findall(r"[a-z0-9]+", s.lower()) if w not in STOP and len(w) > 2}


def grams(s, n=5):
    s = re.sub(r"\s+", " ", s.lower())
    return {s[i:i + n] for i in range(len(s) - n + 1)}


def main():
    src, dst = sys.argv[1], sys.argv[2]
    pdir = sys.argv[3] if len(sys.argv) > 3 else "benchmarks/routing/prompts"
    bench = []
    for f in sorted(glob.glob(os.path.join(pdir, "*.jsonl"))):
        bench += [json.loads(l)["prompt"] for l in open(f) if l.strip()]
    bg, bw = [grams(p) for p in bench], [words(p) for p in bench]
    kept = dropped = 0
    with open(dst, "w") as out:
        for line in open(src):
            if not line.strip():
                continue
            r = json.loads(line)
            g, w = grams(r["prompt"]), words(r["prompt"])
            hit = False
            for pg, pw in zip(bg, bw):
                shared = w & pw
                if len(g & pg) / max(1, len(g | pg)) >= 0.25 or (
                        len(shared) >= 2 and len(shared) >= 0.4 * min(len(w), len(pw))):
                    hit = True
                    break
            if hit:
                dropped += 1
                continue
            kept += 1
            out.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{kept} kept, {dropped} dropped", file=sys.stderr)


if __name__ == "__main__":
    main()
