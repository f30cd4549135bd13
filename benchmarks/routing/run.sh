#!/usr/bin/env bash
# Routing accuracy of Retrieval-of-Experts on the shared tasks: one dataset
# expert per task with a train split (S = 100 instances, a zero-initialised
# LoRA as the stand-in adapter: routing reads only the instances), then
# `roe eval routing` on each task's held-out split at Q = 1, 8, 32, for every
# normalisation, two pooled layers, with and without BM25, and with instances
# rendered by promptsource templates or as raw text fields.
#
# Usage: benchmarks/routing/run.sh [SHARED_DIR]   (writes benchmarks/results/routing.{md,json})
# routing.json is {"commit": the commit measured, "runs": [one per setting]}.
set -euo pipefail
cd "$(dirname "$0")/../.."
SHARED=${1:-../shared}
OUT=benchmarks/results
mkdir -p "$OUT" bin
COMMIT=$(go run ./benchmarks/internal/results/commit)
go build -o bin/roe ./cmd/roe
ROE=bin/roe
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
$ROE adapter init --rank 4 --out "$WORK/zero" >/dev/null
layers=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["num_hidden_layers"])' models/stories260K/config.json)
mid=$(( (layers + 1) / 2 ))

build() { # $1 = library dir, $2 = templates flag ("" or --templates DIR)
  for d in "$SHARED"/data/tasks/*/; do
    t=$(basename "$d")
    [ -f "$d/train.jsonl" ] || continue
    $ROE data instances --task "$d" --n 100 $2 > "$WORK/$t.jsonl"
    $ROE experts add --library "$1" --adapter "$WORK/zero" --instances "$WORK/$t.jsonl" \
      --name "$t" --kind dataset --dataset "$t" >/dev/null
  done
}

echo "{\"commit\":\"$COMMIT\",\"runs\":[" > "$OUT/routing.json"
first=1
for mode in templates raw; do
  lib="$WORK/lib-$mode"
  tflag=""; [ "$mode" = templates ] && tflag="--templates $SHARED/data/templates"
  build "$lib" "$tflag"
  data=""
  for t in $($ROE experts list --library "$lib" --json | python3 -c 'import sys,json;[print(json.loads(l)["name"]) for l in sys.stdin]'); do
    data="$data --data $SHARED/data/tasks/$t"
  done
  for layer in 0 $mid; do
    for norm in raw l2 center-l2; do
      for lex in false true; do
        [ "$lex" = true ] && [ "$norm" != center-l2 ] && continue
        echo "routing: instances=$mode layer=$layer normalization=$norm lexical=$lex" >&2
        res=$($ROE eval routing --library "$lib" $data $tflag --embed-layer $layer --normalization $norm --lexical=$lex)
        [ $first = 1 ] || echo "," >> "$OUT/routing.json"
        first=0
        echo "{\"instances\":\"$mode\",\"layer\":$layer,\"result\":$res}" >> "$OUT/routing.json"
      done
    done
  done
done
echo "]}" >> "$OUT/routing.json"

python3 - "$OUT/routing.json" > "$OUT/routing.md" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
runs = doc["runs"]
print("# Routing accuracy (Retrieval-of-Experts, stories260K embedder)\n")
note = f" ({doc['commit_note']})" if doc.get("commit_note") else ""
print(f"Commit: `{doc['commit']}`{note}.\n")
print("Produced by `benchmarks/routing/run.sh`. One dataset expert per task with a train split,")
print("S = 100 instances; queries from each task's validation (else test) split. Q = 1: 64 queries")
print("per task; Q = 8 and 32: 4 routing decisions per task. Accuracy averaged over tasks.\n")
print("| instances | layer | normalisation | BM25 | Q=1 | Q=8 | Q=32 |")
print("|---|---|---|---|---|---|---|")
for r in runs:
    a = r["result"]["average"]
    print(f'| {r["instances"]} | {r["layer"] or "final"} | {r["result"]["normalization"]} | {"yes" if r["result"]["lexical"] else "no"} '
          f'| {a.get("q1",0):.1%} | {a.get("q8",0):.1%} | {a.get("q32",0):.1%} |')
best = max(runs, key=lambda r: r["result"]["average"].get("q1", 0))
print(f'\n## Per task, best Q = 1 setting ({best["instances"]}, layer {best["layer"] or "final"}, {best["result"]["normalization"]}, BM25 {best["result"]["lexical"]})\n')
print("| task | Q=1 | Q=8 | Q=32 | Q=1 mistakes go to |")
print("|---|---|---|---|---|")
for t in best["result"]["tasks"]:
    s = {x["q"]: x["accuracy"] for x in t["scores"]}
    conf = ", ".join(f"{k} {v}" for k, v in sorted(t.get("confused_with", {}).items(), key=lambda kv: -kv[1])[:3])
    print(f'| {t["task"]} | {s.get(1,0):.0%} | {s.get(8,0):.0%} | {s.get(32,0):.0%} | {conf} |')
PY
cat "$OUT/routing.md"
