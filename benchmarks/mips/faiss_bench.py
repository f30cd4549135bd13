#!/usr/bin/env python3
"""Time FAISS IndexFlatIP on the vectors `go run ./benchmarks/mips -write DIR` wrote,
check its top-k against roe's, and write the roe-vs-FAISS table.

    faiss_bench.py --dir DIR --roe DIR/roe.json --md OUT.md --json OUT.json
"""
import argparse
import sys
import json
import os
import platform
import time

import numpy as np
import faiss

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "peers"))
import blascore  # noqa: E402


def timed(fn, min_time, max_reps=1000):
    fn()  # warm-up
    times = []
    start = time.perf_counter()
    while len(times) < 5 or (time.perf_counter() - start < min_time and len(times) < max_reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    # The minimum: other processes share this machine and only ever add time.
    return min(times), len(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--roe", required=True)
    ap.add_argument("--md", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--time", type=float, default=2.0)
    a = ap.parse_args()

    core, real = blascore.check()
    if not real:
        sys.exit(f"faiss_bench: OpenBLAS runs the generic core {core!r}; a ratio against it would flatter roe")
    roe = json.load(open(a.roe))
    raw = [r for r in roe["results"] if r["norm"] == "raw"]
    faiss_res = {}
    threads = faiss.omp_get_max_threads()
    for dim in sorted({r["dim"] for r in raw}, reverse=True):
        base_all = np.fromfile(os.path.join(a.dir, f"base_{dim}.f32"), dtype="<f4").reshape(-1, dim)
        queries = np.fromfile(os.path.join(a.dir, f"query_{dim}.f32"), dtype="<f4").reshape(-1, dim)
        for n in sorted({r["n"] for r in raw if r["dim"] == dim}):
            index = faiss.IndexFlatIP(dim)
            index.add(np.ascontiguousarray(base_all[:n]))
            for r in [r for r in raw if r["dim"] == dim and r["n"] == n]:
                q, k = r["q"], r["k"]
                xq = np.ascontiguousarray(queries[:q])
                _, ids = index.search(xq, k)
                faiss.omp_set_num_threads(1)
                sec1, _ = timed(lambda: index.search(xq, k), a.time)
                faiss.omp_set_num_threads(threads)
                sec, reps = timed(lambda: index.search(xq, k), a.time)
                recall = None
                p = os.path.join(a.dir, f"roe_ids_n{n}_d{dim}_q{q}_k{k}.i64")
                if os.path.exists(p):
                    roe_ids = np.fromfile(p, dtype="<i8").reshape(q, -1)
                    recall = float(np.mean([len(set(roe_ids[i]) & set(ids[i])) / k for i in range(q)]))
                faiss_res[(n, dim, q)] = {"ms_per_batch": sec * 1e3, "ms_per_batch_1thread": sec1 * 1e3, "reps": reps, "agreement": recall,
                                          "gb_per_s": n * dim * 4 / sec / 1e9}
                print(f"faiss N={n:<8} dim={dim:<4} Q={q:<3} {sec*1e3:9.3f} ms (1 thread {sec1*1e3:9.3f} ms)  top-{k} agreement with roe {recall}", flush=True)
            del index
        del base_all

    bw = roe["read_bandwidth_gb_per_s"]
    rows = []
    for r in raw:
        f = faiss_res[(r["n"], r["dim"], r["q"])]
        rows.append({
            "n": r["n"], "dim": r["dim"], "q": r["q"], "k": r["k"],
            "roe_ms": r["ms_per_batch"], "faiss_ms": f["ms_per_batch"],
            "speedup_vs_faiss": f["ms_per_batch"] / r["ms_per_batch"],
            "faiss_1thread_ms": f["ms_per_batch_1thread"],
            "speedup_vs_best_faiss": min(f["ms_per_batch"], f["ms_per_batch_1thread"]) / r["ms_per_batch"],
            "roe_gb_per_s": r["gb_per_s"], "roe_pct_bandwidth": r["pct_bandwidth"],
            "faiss_gb_per_s": f["gb_per_s"], "faiss_pct_bandwidth": 100 * f["gb_per_s"] / bw,
            "roe_gflops": r["gflops"], "topk_agreement": f["agreement"],
        })
    extra = [r for r in roe["results"] if r["norm"] != "raw"]
    env = {
        "cpu": roe["cpu"], "threads": roe["threads"], "roe_kernels": roe["kernels"],
        "read_bandwidth_gb_per_s": bw, "read_bandwidth_1thread_gb_per_s": roe["read_bandwidth_1thread_gb_per_s"],
        "faiss": faiss.__version__, "faiss_omp_threads": faiss.omp_get_max_threads(), "openblas_core": core,
        "numpy": np.__version__, "python": platform.python_version(),
        "blas": "Debian libopenblas0-openmp (LD_LIBRARY_PATH=openblas-openmp)",
        "go": roe["go_version"], "seed": roe["seed"],
        "loadavg_roe_start": roe.get("loadavg_start"), "loadavg_roe_end": roe.get("loadavg_end"),
        "loadavg_faiss_end": open("/proc/loadavg").read().strip(),
    }
    json.dump({"commit": roe["commit"], "env": env, "rows": rows, "roe_center_l2": extra}, open(a.json, "w"), indent=2)

    out = []
    out.append("# Exact MIPS: roe vs FAISS IndexFlatIP\n")
    out.append(f"Commit: `{roe['commit']}`.\n")
    out.append(f"CPU: {env['cpu']}, {env['threads']} threads; roe kernels {env['roe_kernels']}; "
               f"FAISS {env['faiss']} (Debian, {env['faiss_omp_threads']} OpenMP threads, OpenBLAS-openmp, core {env['openblas_core']}); "
               f"measured read bandwidth {bw:.1f} GB/s (1 GiB streaming SIMD read, all threads; "
               f"1 thread {env['read_bandwidth_1thread_gb_per_s']:.1f} GB/s).\n")
    out.append("Random uniform vectors, fixed seed, raw inner product, top-10; time is the best (minimum) "
               "wall time of one search call over the whole query batch. GB/s = N·dim·4 bytes / time "
               "(above the DRAM bandwidth when the matrix fits in the last-level cache). "
               "speedup = FAISS time / roe time; FAISS 1T is FAISS with one OpenMP thread, "
               "and 'vs best' compares roe with the faster of FAISS's two settings. "
               f"Load average (other processes on the machine): {env['loadavg_roe_start']} at the start, "
               f"{env['loadavg_faiss_end']} at the end.\n")
    out.append("| N | dim | Q | roe ms | FAISS ms | speedup | FAISS 1T ms | vs best | roe GB/s | roe % bw | FAISS GB/s | top-k agreement |")
    out.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        agree = "-" if r["topk_agreement"] is None else f"{r['topk_agreement']:.3f}"
        out.append(f"| {r['n']} | {r['dim']} | {r['q']} | {r['roe_ms']:.3f} | {r['faiss_ms']:.3f} | "
                   f"{r['speedup_vs_faiss']:.2f}× | {r['faiss_1thread_ms']:.3f} | {r['speedup_vs_best_faiss']:.2f}× | {r['roe_gb_per_s']:.2f} | {r['roe_pct_bandwidth']:.0f}% | "
                   f"{r['faiss_gb_per_s']:.2f} | {agree} |")
    if extra:
        out.append("\nroe with its default normalisation (center-l2, folded into the scores):\n")
        out.append("| N | dim | Q | roe ms | GB/s | % bw |")
        out.append("|---:|---:|---:|---:|---:|---:|")
        for r in extra:
            out.append(f"| {r['n']} | {r['dim']} | {r['q']} | {r['ms_per_batch']:.3f} | {r['gb_per_s']:.2f} | {r['pct_bandwidth']:.0f}% |")
    text = "\n".join(out) + "\n"
    open(a.md, "w").write(text)
    print(text)


if __name__ == "__main__":
    main()
