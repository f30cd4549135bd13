#!/usr/bin/env python3
"""Time PyTorch (CPU) on the LoRA training step that `go run ./benchmarks/train`
timed in roe: the same weights, adapter, batch and AdamW, and write the table.

    torch_bench.py --roe DIR/roe.json --md OUT.md --json OUT.json

The Llama forward is written out in plain torch (no transformers): embedding,
RMSNorm, GQA attention with RoPE (HF rotate_half), SwiGLU, tied LM head; LoRA on
all seven projections as PEFT computes it: y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ, s = alpha/r.
Only A and B require gradients; torch.optim.AdamW updates them. The first
steps' losses are compared with roe's to check both compute the same step.
"""
import argparse
import sys
import json
import math
import os
import platform
import struct
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "peers"))
import blascore  # noqa: E402


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", info
        b, e = info["data_offsets"]
        out[name] = torch.frombuffer(bytearray(data[b:e]), dtype=torch.float32).reshape(info["shape"])
    return out


def rope_tables(c, T):
    hd = c["HeadDim"]
    inv = 1.0 / (c["RopeTheta"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    ang = torch.outer(torch.arange(T, dtype=torch.float64), inv)
    emb = torch.cat([ang, ang], dim=-1)
    return emb.cos().float(), emb.sin().float()


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


class LoRALlama:
    def __init__(self, c, w, lora, scale):
        self.c, self.w, self.scale = c, w, scale
        self.A, self.B = {}, {}
        for k, v in lora.items():
            mod = k[len("base_model.model."):].rsplit(".lora_", 1)[0]
            (self.A if ".lora_A." in k else self.B)[mod] = v.clone().requires_grad_(True)

    def params(self):
        return list(self.A.values()) + list(self.B.values())

    def lin(self, x, name):
        y = x @ self.w[name + ".weight"].t()
        if name in self.A:
            y = y + self.scale * ((x @ self.A[name].t()) @ self.B[name].t())
        return y

    def rms(self, x, name):
        var = x.pow(2).mean(-1, keepdim=True)
        return x * torch.rsqrt(var + self.c["RMSNormEps"]) * self.w[name]

    def loss(self, ids, cos, sin, mask):
        c = self.c
        Bsz, T = ids.shape
        nh, nkv, hd = c["NumHeads"], c["NumKVHeads"], c["HeadDim"]
        x = self.w["model.embed_tokens.weight"][ids]
        for l in range(c["NumLayers"]):
            p = f"model.layers.{l}."
            h = self.rms(x, p + "input_layernorm.weight")
            q = self.lin(h, p + "self_attn.q_proj").view(Bsz, T, nh, hd).transpose(1, 2)
            k = self.lin(h, p + "self_attn.k_proj").view(Bsz, T, nkv, hd).transpose(1, 2)
            v = self.lin(h, p + "self_attn.v_proj").view(Bsz, T, nkv, hd).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            rep = nh // nkv
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
            att = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
            att = att.masked_fill(mask, float("-inf")).softmax(-1)
            o = (att @ v).transpose(1, 2).reshape(Bsz, T, nh * hd)
            x = x + self.lin(o, p + "self_attn.o_proj")
            h = self.rms(x, p + "post_attention_layernorm.weight")
            g = self.lin(h, p + "mlp.gate_proj")
            u = self.lin(h, p + "mlp.up_proj")
            x = x + self.lin(F.silu(g) * u, p + "mlp.down_proj")
        x = self.rms(x, "model.norm.weight")
        head = self.w.get("lm_head.weight", self.w["model.embed_tokens.weight"])
        logits = x[:, :-1] @ head.t()
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))


def bench(r, min_time):
    d = r["dir"]
    c = json.load(open(os.path.join(d, "config.json")))
    w = read_safetensors(os.path.join(d, "model.safetensors"))
    lora = read_safetensors(os.path.join(d, "adapter", "adapter_model.safetensors"))
    ids = torch.tensor(json.load(open(os.path.join(d, "batch.json"))), dtype=torch.long)
    m = LoRALlama(c, w, lora, r["alpha"] / r["rank"])
    T = ids.shape[1]
    cos, sin = rope_tables(c, T)
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    opt = torch.optim.AdamW(m.params(), lr=r["lr"], weight_decay=r["weight_decay"])

    def step():
        opt.zero_grad(set_to_none=True)
        loss = m.loss(ids, cos, sin, mask)
        loss.backward()
        opt.step()
        return loss.item()

    losses = [step() for _ in range(3)]
    times = []
    start = time.perf_counter()
    while len(times) < 5 or (time.perf_counter() - start < min_time and len(times) < 2000):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    times.sort()
    return {"losses": losses, "best_step_s": times[0], "median_step_s": times[len(times) // 2],
            "steps": len(times), "tokens_per_s": ids.numel() / times[0]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--roe", required=True)
    ap.add_argument("--md", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--time", type=float, default=10.0)
    a = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    core, real = blascore.check()
    if not real:
        sys.exit(f"torch_bench: OpenBLAS runs the generic core {core!r}; a ratio against it would flatter roe")
    roe = json.load(open(a.roe))
    rows, out = [], []
    for r in roe["results"]:
        t = bench(r, a.time)
        dl = max(abs(x - y) for x, y in zip(r["losses"], t["losses"]))
        ratio = r["tokens_per_s"] / t["tokens_per_s"]
        med_ratio = t["median_step_s"] / r["median_step_s"]
        out.append({"name": r["name"], "roe": r, "torch": t, "speedup_best": ratio, "speedup_median": med_ratio,
                    "max_loss_diff": dl})
        rows.append(f"| {r['name']} | {r['seqs']}×{r['seq_len']} | {r['trainable_params']:,} | "
                    f"{r['tokens_per_s']:,.0f} | {t['tokens_per_s']:,.0f} | **{ratio:.2f}×** | "
                    f"{r['median_step_s']*1000:.1f} / {t['median_step_s']*1000:.1f} | {med_ratio:.2f}× | "
                    f"{r['losses'][0]:.5f} / {t['losses'][0]:.5f} | {dl:.1e} |")
    cpu = "?"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    md = [
        "# LoRA training throughput: roe vs PyTorch (CPU)",
        "",
        f"Commit: `{roe['commit']}`.",
        "",
        f"CPU: {cpu}, {os.cpu_count()} cores; roe {roe['go']} GOMAXPROCS={roe['gomaxprocs']} kernels {roe['kernels']}; "
        f"PyTorch {torch.__version__} (Debian python3-torch), {torch.get_num_threads()} threads, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, OpenBLAS-openmp (core {core}) via LD_LIBRARY_PATH; "
        f"Python {platform.python_version()}. Load average at the end: {open('/proc/loadavg').read().strip()}.",
        "",
        "One training step = forward + causal-LM loss over every position + backward + AdamW (weight decay 0.01), "
        "LoRA rank 16 (alpha 32) on all seven projections of every layer, base frozen, float32. Both run the same "
        "weights, adapter and token batch (written by roe as safetensors/JSON, read by torch); the first 3 steps' "
        "losses are compared (last column) to show both compute the same step. tokens/s = batch tokens / best step "
        "time; speedup = roe tokens/s ÷ PyTorch tokens/s (> 1: roe faster); the median column compares median "
        "step times. PyTorch runs the model as plain eager tensor ops (no transformers; torch 1.13 has no fused "
        "attention).",
        "",
        "| model | batch | trainable | roe tok/s | PyTorch tok/s | speedup (best) | median step ms roe / torch | speedup (median) | first loss roe / torch | max Δloss (3 steps) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ] + rows + [
        "",
        "Targets: ≥ 2× on stories260K, not slower than PyTorch on the SmolLM2-135M shape.",
        "",
    ]
    open(a.md, "w").write("\n".join(md))
    json.dump({"commit": roe["commit"], "torch": torch.__version__, "blas_core": core, "results": out}, open(a.json, "w"), indent=2)
    print("\n".join(md))


if __name__ == "__main__":
    main()
