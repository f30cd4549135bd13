#!/usr/bin/env bash
# Pretrains roe's own base model candidate from scratch on the shared corpus, with roe's own
# byte-level BPE vocabulary and full-parameter trainer (make base-model).
#
#   scripts/base-model.sh [SHARED]      # SHARED: the shared folder (default ../shared)
#
# Environment: ROE (the binary, default bin/roe), OUT (default models/roe-base), VOCAB (4096),
# STEPS (1400 optimizer steps of 16 × 256 tokens, ~1.7 passes over the corpus: about 12 minutes
# on 2 idle cores; a fixed count, not a time budget, so that the result is reproducible),
# PRETRAIN_FLAGS (more `roe model pretrain` flags, e.g. --hidden 192), EXPERTS (a folder: also
# train the new model's dataset experts there with scripts/starter-library.sh, as a candidate's
# experts for benchmarks/quality's base-model choice; default none, since roe-base is the
# default model and `make library` trains the starter library on it).
#
# Only the corpus (SHARED/data/corpus/*.txt: Gutenberg, Shakespeare, War and Peace) is read; no
# task text goes into the vocabulary or the pretraining data. `--decontaminate` also drops any
# corpus line that shares a 13-word sequence with a validation or test example of
# SHARED/data/tasks, as GPT-3's decontamination did, and the pretraining log counts them.
set -euo pipefail

SHARED=${1:-../shared}
ROE=${ROE:-bin/roe}
OUT=${OUT:-models/roe-base}
VOCAB=${VOCAB:-4096}
STEPS=${STEPS:-1400}
EXPERTS=${EXPERTS-}
read -r -a EXTRA <<<"${PRETRAIN_FLAGS:-}"

[ -x "$ROE" ] || { echo "no roe binary at $ROE (make build)" >&2; exit 1; }
CORPUS=("$SHARED"/data/corpus/*.txt)
[ -f "${CORPUS[0]}" ] || { echo "no corpus in $SHARED/data/corpus" >&2; exit 1; }
corpus=()
for f in "${CORPUS[@]}"; do corpus+=(--corpus "$f"); done

work=$(mktemp -d "${TMPDIR:-/tmp}/roe-base.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "vocabulary: byte-level BPE, $VOCAB tokens"
"$ROE" model train-tokenizer "${corpus[@]}" --decontaminate "$SHARED/data/tasks" --vocab-size "$VOCAB" --out "$work/tokenizer"

echo "pretraining ($STEPS steps)"
"$ROE" model pretrain "${corpus[@]}" --tokenizer "$work/tokenizer" --out "$work/model" \
	--decontaminate "$SHARED/data/tasks" --steps "$STEPS" --log-every 50 --dtype bf16 "${EXTRA[@]}"

rm -rf "$OUT"
mkdir -p "$(dirname "$OUT")"
cp -r "$work/model" "$OUT"
# The README's command names the temporary folders; say what made them.
sed -i "s#$work/#TMP/#g; 1s/.*/# $(basename "$OUT")/" "$OUT/README.md"
printf '\nMade by `make base-model` (scripts/base-model.sh): TMP/tokenizer is `roe model train-tokenizer %s --decontaminate %s --vocab-size %s --out TMP/tokenizer`.\n' \
	"${corpus[*]}" "$SHARED/data/tasks" "$VOCAB" >>"$OUT/README.md"
echo "wrote $OUT ($(du -sh "$OUT" | cut -f1))"

if [ -n "$EXPERTS" ]; then
	echo "dataset experts on $OUT -> $EXPERTS"
	MODEL="$OUT" OUT="$EXPERTS" PROMPT_TASKS="" ROE="$ROE" bash "$(dirname "$0")/starter-library.sh" "$SHARED"
fi
