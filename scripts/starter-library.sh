#!/usr/bin/env bash
# Builds the starter expert library that roe embeds (models/experts) and imports into an
# empty library on the first `roe serve`.
#
#   scripts/starter-library.sh [SHARED]      # SHARED: the shared folder (default ../shared)
#
# Environment: ROE (the binary, default bin/roe), OUT (default models/experts), JOBS (parallel
# trainings, default 2), DATASET_STEPS (300), PROMPT_STEPS (150), PROMPT_TASKS ("sst2 rte cb"; empty for none),
# ONLY (space-separated expert names: train just these and replace them in OUT, keeping the rest),
# MODEL (a Hugging Face model folder to train on instead of the embedded default model: how
# benchmarks/quality's base-model choice gets a candidate's experts).
#
# What it trains, all LoRA on the embedded default model (roe-base) with `roe train` and its
# defaults, the one expert recipe (experts.DefaultRecipe, also the server's training jobs and
# the quality benchmark's): rank 4, alpha 8, lr 1e-3 with 10% warm-up then linear decay,
# gradient norm clipped to 1, batch 8, 128 tokens, no EOS, seed 1:
#   - a dataset expert per task folder of SHARED/data/tasks that has train.jsonl and
#     promptsource templates, named after the folder (sst2), all templates mixed
#     (--all-prompts), DATASET_STEPS steps. sst5 and cr borrow yelp_review_full's and
#     amazon_polarity's templates (tasks/task.go); boolq has only a 32-example few-shot split
#     (train_fewglue32.jsonl) and is left out: it is the expert benchmarks/quality adds live.
#   - a prompt expert per template of each task in PROMPT_TASKS, named task/template-name
#     (lowercased, every run of characters outside [a-z0-9._] becomes one '-'), PROMPT_STEPS steps.
#   - merged experts (roe merge --method linear, uniform weights) of two dataset experts:
#     merged/sentiment = sst2 + mr, merged/nli = rte + cb; their instances are 50 of each
#     parent's.
# Each expert is written as `roe experts export` writes it: adapter_config.json,
# adapter_model.safetensors (F32), instances.jsonl (≤ 100 sampled training instances with
# their embeddings), expert.json (the manifest) in OUT/<name>/ (sst2/review → OUT/sst2/review).
set -euo pipefail

SHARED=${1:-../shared}
ROE=${ROE:-bin/roe}
OUT=${OUT:-models/experts}
JOBS=${JOBS:-2}
DATASET_STEPS=${DATASET_STEPS:-300}
PROMPT_STEPS=${PROMPT_STEPS:-150}
PROMPT_TASKS=${PROMPT_TASKS-"sst2 rte cb"}
ONLY=${ONLY:-}
MODEL=${MODEL:-}
M=()
[ -z "$MODEL" ] || M=(--model "$MODEL")
TASKS="$SHARED/data/tasks"
TEMPLATES="$SHARED/data/templates"
RECIPE=(--eval-n -1) # the expert recipe is roe train's default (experts.DefaultRecipe)

[ -x "$ROE" ] || { echo "no roe binary at $ROE (make build)" >&2; exit 1; }
[ -d "$TASKS" ] && [ -d "$TEMPLATES" ] || { echo "no $TASKS or $TEMPLATES" >&2; exit 1; }
ROE=$(cd "$(dirname "$ROE")" && pwd)/$(basename "$ROE")

work=$(mktemp -d "${TMPDIR:-/tmp}/roe-starter.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lib" "$work/out" "$work/log"
start=$(date +%s)

# safe NAME: the path-safe form of a template name.
safe() {
	printf '%s' "$1" | tr '[:upper:]' '[:lower:]' | sed -E 's/[^a-z0-9._]+/-/g; s/^-+//; s/-+$//'
}

# templates TASK: the task's template names, one a line (roe's own template loader lists them
# when asked for a template that does not exist).
templates() {
	local msg
	msg=$("$ROE" train "${M[@]}" --data "$TASKS/$1" --templates "$TEMPLATES" --prompt '\x00none' --out "$work/none" 2>&1 || true)
	case "$msg" in
	*"has no template"*) ;;
	*) return 1 ;;
	esac
	printf '%s\n' "$msg" | sed -E 's/.*\((.*)\)$/\1/' | sed 's/; /\n/g'
}

# train NAME TASK [PROMPT]: trains one expert into its own library, exports it to $work/out/NAME.
train() {
	local name=$1 task=$2 prompt=${3-} key mode steps desc
	key=$(printf '%s' "$name" | tr '/' '_')
	if [ -n "$prompt" ]; then
		mode=(--prompt "$prompt") steps=$PROMPT_STEPS desc="$task with the template \"$prompt\""
	else
		mode=(--all-prompts) steps=$DATASET_STEPS desc="$task, all templates"
	fi
	"$ROE" train "${M[@]}" --library "$work/lib/$key" --name "$name" --data "$TASKS/$task" --templates "$TEMPLATES" \
		"${mode[@]}" --steps "$steps" "${RECIPE[@]}" --description "starter: $desc" >"$work/log/$key.log" 2>&1 ||
		{ echo "train $name failed:" >&2; tail -5 "$work/log/$key.log" >&2; return 1; }
	"$ROE" experts export "${M[@]}" "$name" --library "$work/lib/$key" --out "$work/out/$name" >/dev/null
	echo "  $name ($(($(date +%s) - start)) s)"
}

# The job list: NAME<TAB>TASK<TAB>PROMPT.
jobs=$work/jobs.tsv
: >"$jobs"
datasets=()
for d in "$TASKS"/*/; do
	task=$(basename "$d")
	[ -f "$d/train.jsonl" ] || { echo "skip $task: no train.jsonl"; continue; }
	templates "$task" >/dev/null || { echo "skip $task: no promptsource templates"; continue; }
	datasets+=("$task")
	printf '%s\t%s\t\n' "$task" "$task" >>"$jobs"
done
declare -A seen=()
for task in $PROMPT_TASKS; do
	while IFS= read -r p; do
		[ -n "$p" ] || continue
		s=$(safe "$p")
		if [ -n "${seen[$task/$s]-}" ]; then
			echo "template names \"$p\" and \"${seen[$task/$s]}\" of $task have the same safe name $s" >&2
			exit 1
		fi
		seen[$task/$s]=$p
		printf '%s\t%s\t%s\n' "$task/$s" "$task" "$p" >>"$jobs"
	done < <(templates "$task")
done
# wanted NAME: whether ONLY (when set) names it.
wanted() { [ -z "$ONLY" ] || [[ " $ONLY " == *" $1 "* ]]; }
if [ -n "$ONLY" ]; then
	while IFS=$'\t' read -r name task prompt; do
		wanted "$name" && printf '%s\t%s\t%s\n' "$name" "$task" "$prompt"
	done <"$jobs" >"$jobs.only"
	mv "$jobs.only" "$jobs"
fi
echo "training $(wc -l <"$jobs") experts, $JOBS at a time"

# Run the jobs JOBS at a time; stop at the first failure.
running=0
fail=0
while IFS=$'\t' read -r name task prompt; do
	train "$name" "$task" "$prompt" &
	running=$((running + 1))
	if [ "$running" -ge "$JOBS" ]; then
		wait -n || fail=1
		running=$((running - 1))
		[ "$fail" = 0 ] || break
	fi
done <"$jobs"
while [ "$running" -gt 0 ]; do
	wait -n || fail=1
	running=$((running - 1))
done
[ "$fail" = 0 ] || { echo "a training failed" >&2; exit 1; }

# Merged experts: a uniform linear merge of two dataset experts, with half of each parent's
# instances.
merge() {
	local name=$1 a=$2 b=$3 key
	wanted "$name" || return 0
	key=$(printf '%s' "$name" | tr '/' '_')
	[ -d "$work/out/$a" ] && [ -d "$work/out/$b" ] || { echo "skip $name: no $a or $b"; return 0; }
	"$ROE" merge "${M[@]}" --adapters "$work/out/$a,$work/out/$b" --method linear --out "$work/merge-$key" >"$work/log/$key.log" 2>&1
	{ head -n 50 "$work/out/$a/instances.jsonl"; head -n 50 "$work/out/$b/instances.jsonl"; } >"$work/merge-$key.jsonl"
	"$ROE" experts add "${M[@]}" --library "$work/lib/$key" --adapter "$work/merge-$key" --instances "$work/merge-$key.jsonl" \
		--name "$name" --kind merged --description "starter: linear merge of $a and $b (uniform weights)" >/dev/null
	"$ROE" experts export "${M[@]}" "$name" --library "$work/lib/$key" --out "$work/out/$name" >/dev/null
	echo "  $name = $a + $b"
}
merge merged/sentiment sst2 mr
merge merged/nli rte cb

if [ -n "$ONLY" ]; then
	for name in $ONLY; do
		[ -d "$work/out/$name" ] || { echo "ONLY names $name, which is not a starter expert" >&2; exit 1; }
		rm -rf "${OUT:?}/$name"
		mkdir -p "$(dirname "$OUT/$name")"
		cp -r "$work/out/$name" "$OUT/$name"
	done
else
	rm -rf "$OUT"
	mkdir -p "$(dirname "$OUT")"
	cp -r "$work/out" "$OUT"
fi
n=$(find "$OUT" -name expert.json | wc -l)
echo "wrote $n experts to $OUT ($(du -sh "$OUT" | cut -f1)) in $(($(date +%s) - start)) s"
