"""PyTorch reference for roe's perf benchmark: the same Llama-shaped model
(SmolLM2-135M's shape by default, random weights, float32), the same
measurements (prefill 128/512 tokens, decode 128 tokens) at each thread count.

Plain torch ops only (no transformers): embedding, RMSNorm, rotate-half RoPE,
grouped-query attention over a preallocated KV cache, SwiGLU MLP, tied LM head.
Prints one JSON object on stdout.
"""
import argparse
import sys
import os
import json
import math
import re
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "peers"))
import blascore  # noqa: E402


def build(cfg, dtype):
    g = torch.Generator().manual_seed(1)
    H, I, V = cfg["hidden"], cfg["ffn"], cfg["vocab"]
    hd = H // cfg["heads"]
    qd, kvd = cfg["heads"] * hd, cfg["kv_heads"] * hd

    def w(*shape):
        return (torch.randn(*shape, generator=g) * 0.02).to(dtype)

    layers = []
    for _ in range(cfg["layers"]):
        layers.append(dict(
            ln1=torch.ones(H), ln2=torch.ones(H),
            q=w(qd, H), k=w(kvd, H), v=w(kvd, H), o=w(H, qd),
            gate=w(I, H), up=w(I, H), down=w(H, I)))
    return dict(embed=w(V, H), norm=torch.ones(H), layers=layers, hd=hd)


def rms(x, w, eps=1e-5):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


class Runner:
    def __init__(self, cfg, model, ctx, dtype):
        self.cfg, self.m, self.dtype = cfg, model, dtype
        hd = model["hd"]
        inv = 1.0 / (cfg["theta"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
        ang = torch.arange(ctx, dtype=torch.float64)[:, None] * inv[None, :]
        self.cos = torch.cat([ang.cos(), ang.cos()], -1).float()
        self.sin = torch.cat([ang.sin(), ang.sin()], -1).float()
        L, kvh = cfg["layers"], cfg["kv_heads"]
        self.k = torch.zeros(L, kvh, ctx, hd)
        self.v = torch.zeros(L, kvh, ctx, hd)
        self.n = 0

    def rope(self, x, pos):  # x: [heads, T, hd]
        c, s = self.cos[pos], self.sin[pos]
        h = x.shape[-1] // 2
        rot = torch.cat([-x[..., h:], x[..., :h]], -1)
        return x * c + rot * s

    def forward(self, ids):
        cfg, m = self.cfg, self.m
        T, nh, kvh, hd = len(ids), cfg["heads"], cfg["kv_heads"], m["hd"]
        pos = torch.arange(self.n, self.n + T)
        x = m["embed"][ids].float()
        lin = lambda a, w: a @ w.t().float() if w.dtype != torch.float32 else a @ w.t()
        for li, l in enumerate(m["layers"]):
            h = rms(x, l["ln1"])
            q = lin(h, l["q"]).view(T, nh, hd).transpose(0, 1)
            k = lin(h, l["k"]).view(T, kvh, hd).transpose(0, 1)
            v = lin(h, l["v"]).view(T, kvh, hd).transpose(0, 1)
            q, k = self.rope(q, pos), self.rope(k, pos)
            self.k[li, :, self.n:self.n + T] = k
            self.v[li, :, self.n:self.n + T] = v
            K = self.k[li, :, :self.n + T].repeat_interleave(nh // kvh, 0)
            Vv = self.v[li, :, :self.n + T].repeat_interleave(nh // kvh, 0)
            s = (q @ K.transpose(1, 2)) / math.sqrt(hd)
            if T > 1:
                mask = torch.full((T, self.n + T), float("-inf")).triu(self.n + 1)
                s = s + mask
            a = torch.softmax(s, -1) @ Vv
            x = x + lin(a.transpose(0, 1).reshape(T, nh * hd), l["o"])
            h = rms(x, l["ln2"])
            x = x + lin(torch.nn.functional.silu(lin(h, l["gate"])) * lin(h, l["up"]), l["down"])
        self.n += T
        return lin(rms(x[-1:], m["norm"]), m["embed"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--decode", type=int, default=128)
    args = ap.parse_args()
    cfg = dict(hidden=576, ffn=1536, layers=30, heads=9, kv_heads=3, vocab=49152, theta=100000.0)
    model = build(cfg, torch.float32)
    ids = lambda n: torch.tensor([(i * 7919 + 13) % cfg["vocab"] for i in range(n)])
    out = {"torch": torch.__version__, "blas": "", "results": {}}
    try:
        out["blas"] = " ".join(sorted(set(re.findall(r"BLAS_INFO=\w+", torch.__config__.show()))))
    except Exception:
        pass
    core, real = blascore.check()
    out["blas_core"] = core
    if not real:
        sys.exit(f"torch_perf: OpenBLAS runs the generic core {core!r}; a ratio against it would flatter roe")
    with torch.inference_mode():
        for th in [int(t) for t in args.threads.split(",")]:
            torch.set_num_threads(th)
            r = {}
            for n in (128, 512):
                best = 0.0
                for _ in range(args.reps):
                    run = Runner(cfg, model, 1024, torch.float32)
                    t0 = time.perf_counter()
                    run.forward(ids(n))
                    best = max(best, n / (time.perf_counter() - t0))
                r[f"prefill{n}"] = best
            best = 0.0
            for _ in range(max(1, args.reps - 1)):
                run = Runner(cfg, model, 1024, torch.float32)
                logits = run.forward(ids(1))
                t0 = time.perf_counter()
                for _ in range(args.decode):
                    tok = int(logits.argmax())
                    logits = run.forward(torch.tensor([tok]))
                best = max(best, args.decode / (time.perf_counter() - t0))
            r["decode128"] = best
            out["results"][str(th)] = r
    print(json.dumps(out))


if __name__ == "__main__":
    main()
