#!/bin/sh
# q8ratio.sh: int8-activation GEMV speed against the exact float-activation
# GEMV on the SmolLM2-135M shapes, per weight type and thread count, from
# kernels' BenchmarkGEMVQ8 (run from the repository root):
#
#	sh benchmarks/q8ratio.sh [-count N]
#
# Prints ns/op of act=f32 and act=q8 and their ratio f32 ÷ q8 (> 1: q8 is
# faster). Extra arguments go to go test.
set -e
go test ./kernels/ -run '^$' -bench 'GEMVQ8' -cpu 1,2 -benchtime 400ms "$@" |
awk '
/^BenchmarkGEMVQ8/ {
	split($1, p, "/"); shape = p[2]; ty = p[3]; act = p[4]; cpu = "1"
	if (act ~ /-[0-9]+$/) { cpu = act; sub(/.*-/, "", cpu); sub(/-[0-9]+$/, "", act) }
	key = shape " " ty " " cpu
	ns[key, act] += $3; n[key, act]++
	if (!(key in seen)) { seen[key] = 1; order[++k] = key }
}
END {
	printf "%-18s %-5s %7s %12s %12s %8s\n", "shape", "type", "threads", "f32 ns/op", "q8 ns/op", "f32/q8"
	for (i = 1; i <= k; i++) {
		key = order[i]; split(key, f, " ")
		a = ns[key, "act=f32"] / n[key, "act=f32"]; b = ns[key, "act=q8"] / n[key, "act=q8"]
		printf "%-18s %-5s %7s %12.0f %12.0f %7.2fx\n", f[1], f[2], f[3], a, b, a / b
	}
}'
