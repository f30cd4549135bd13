#!/usr/bin/env bash
# How much a routing result owes to the encoder's seed: trains the routing
# encoder as scripts/router.sh does with other seeds (cached in SEEDS_DIR, one
# folder per seed and flag set), then routes the dev split with each and with
# the embedded encoder (seed 2), and prints one line per encoder and the mean.
# Extra arguments go to benchmarks/routing (e.g. -signature-weight 1), so a
# routing change can be judged over several encoders, not one. Never runs the
# test split. About 75 s a seed to train (cached after), 15 s a seed to route.
#
# Usage: scripts/router-seeds.sh [SHARED_DIR] [benchmarks/routing flags...]
#   SEEDS="1 3 4" (default) the extra seeds; SEEDS_DIR=DIR (default /tmp/roe-router-seeds).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=../shared
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
	SHARED=$1
	shift
fi
SEEDS=${SEEDS:-1 3 4}
DIR=${SEEDS_DIR:-/tmp/roe-router-seeds}
mkdir -p "$DIR"
ROE=$(mktemp -d)/roe
BENCH=$(dirname "$ROE")/routing
trap 'rm -rf "$(dirname "$ROE")"' EXIT
go build -o "$ROE" ./cmd/roe
go build -o "$BENCH" ./benchmarks/routing

# The encoders: the embedded one (router) and one per extra seed, trained
# with scripts/router.sh's settings (its train command, with --seed and --out
# replaced), unless cached; the cache is keyed by that command, so a change
# to scripts/router.sh's settings trains afresh.
encoders=(router)
key=$(sed -n '/^"\$ROE" embedder train/,/--out/p' scripts/router.sh | sha1sum | cut -c1-10)
for s in $SEEDS; do
	out="$DIR/$key/seed$s"
	if [ ! -f "$out/encoder.json" ]; then
		echo "training the routing encoder with seed $s into $out" >&2
		sed -n '/^"\$ROE" embedder train/,/--out/p' scripts/router.sh |
			sed -e "s|\"\$ROE\"|$ROE|" -e "s|\$SHARED|$SHARED|g" -e "s|--seed 2|--seed $s|" \
				-e "s|--out \"\$OUT\"|--out $out|" -e 's|\${STEPS:-1500}|1500|' |
			bash >/dev/null
	fi
	encoders+=("$out")
done

printf '%-28s %8s %8s %8s %7s %9s\n' encoder top-1 fb-in fb-out AUROC held-out
for enc in "${encoders[@]}"; do
	rep=$(mktemp -d)
	line=$("$BENCH" -shared "$SHARED" -split dev -templates=false -embedder "$enc" -out "$rep" "$@" 2>&1 | grep "dev Q=1:")
	# held-out families: right prompts of wordsense, coreference, causal (Q = 1)
	held=$(python3 - "$rep/routing.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
q1 = [q for q in d["splits"][0]["q"] if q["q"] == 1][0]
held = ("wordsense", "coreference", "causal")
ds = [x for x in q1["decisions"] if x["family"] in held]
print(f"{sum(x['routed'] == x['family'] for x in ds)}/{len(ds)}")
EOF
)
	rm -rf "$rep"
	echo "$line" | sed -E "s|.*top-1 ([0-9.]+), fallback in ([0-9.]+) out ([0-9.]+), AUROC ([0-9.]+).*|\1 \2 \3 \4|" |
		awk -v e="$(basename "$enc")" -v h="$held" '{printf "%-28s %8.1f %8.1f %8.1f %7.3f %9s\n", e, 100*$1, 100*$2, 100*$3, $4, h}'
done | tee "$DIR/last.txt"
awk '{t+=$2; a+=$3; b+=$4; u+=$5; split($6, h, "/"); k+=h[1]; n++} END {printf "%-28s %8.1f %8.1f %8.1f %7.3f %9.1f\n", "mean", t/n, a/n, b/n, u/n, k/n}' "$DIR/last.txt"
