#!/usr/bin/env bash
# Trains the routing encoder that the binary embeds (models/roe-router), with
# `roe embedder train` on the train splits of the starter library's tasks in
# SHARED/data, corpus paragraphs as background. wic, wsc and copa are held out
# (their experts are placed by features the encoder never trained), and so are
# the tasks the quality report holds out or adds live (anli_r1-3, boolq).
# A share of the training queries is written from the examples' fields and
# answer choices the way people write prompts (--user-share). When OUT is the
# embedded encoder, the starter library's instances are re-embedded with it
# (roe experts reembed), so importing the library embeds nothing.
# About two minutes on 2 cores.
#
# Usage: scripts/router.sh [SHARED_DIR] (default ../shared); OUT=DIR to write elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${1:-../shared}
OUT=${OUT:-models/roe-router}
ROE=${ROE:-bin/roe}
[ -x "$ROE" ] || { echo "no roe binary at $ROE (make build)" >&2; exit 1; }
"$ROE" embedder train --data "$SHARED/data/tasks" --templates "$SHARED/data/templates" \
	--corpus "$SHARED/data/corpus/war_and_peace.txt" --corpus "$SHARED/data/corpus/gutenberg_nltk_tokenized.txt" \
	--hold-out wic,wsc,copa,anli_r1,anli_r2,anli_r3,boolq \
	--steps "${STEPS:-1500}" --per-task 5000 --raw-share 0.35 --user-share 0.3 --temperature 0.2 --proj-lr -1 --seed 2 --out "$OUT"
if [ "$OUT" = models/roe-router ]; then
	find models/experts -name expert.json -printf '%h\n' | sort | xargs "$ROE" experts reembed --embedder "$OUT" >/dev/null
	echo "starter library re-embedded with $OUT"
fi
