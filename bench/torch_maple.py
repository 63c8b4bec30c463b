#!/usr/bin/env python3
"""PyTorch baseline for MaPLe on CLIP: the reference timings that the Rust
benchmarks are compared against, measured on the same machine in the same run.

It is a compact, self-contained fp32 MaPLe (CLIP ViT + deep coupled prompts),
numerically checked against the repository's golden fixtures in
tests/fixtures/maple-tiny (`--check-fixture`, default directory). The repository's
copy of the shared baseline: `cargo xtask bench --compare` runs this file. The workloads:

  train-step   one SGD step of the prompt learner: forward of all class prompts
               through the text encoder, forward of a batch of images through the
               vision encoder, cross-entropy, backward, optimizer step
  encode-images  prompted image features for a batch (eval, no grad)
  encode-text    prompted text features for all classes (eval, no grad)

Usage:
  python3 bench/torch_maple.py --check-fixture          # tests/fixtures/maple-tiny
  python3 bench/torch_maple.py --check-fixture DIR --precision fp16   # the reference's fp16 error (bf16: autocast)
  python3 torch_maple.py --model vit-b16 --workload train-step --classes 50 --batch 4
  python3 torch_maple.py --model vit-b16 --workload encode-images --batch 32
  python3 torch_maple.py --device cuda --precision fp16 --workload train-step   # on a GPU

Prints one JSON line: workload, shapes, threads, device, precision, median/min/max seconds
per iteration, the process CPU seconds of each iteration (`cpu_s`: all threads, so a
loaded machine shows up as wall time well above cpu_s / threads) and peak memory (CUDA:
max allocated; CPU: process max RSS).

Requires: torch, numpy, safetensors (pip install torch numpy safetensors).
"""
import argparse
import contextlib
import json
import math
import os
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

MODELS = {
    # name: (image, patch, vision width, vision layers, text width, text layers, embed dim)
    "vit-b16": (224, 16, 768, 12, 512, 12, 512),
    "vit-b32": (224, 32, 768, 12, 512, 12, 512),
    "vit-l14": (224, 14, 1024, 24, 768, 12, 768),
}
CONTEXT, VOCAB, SOT, EOT = 77, 49408, 49406, 49407
DEFAULT_FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "maple-tiny")


class Block(nn.Module):
    def __init__(self, width, mask=None):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, width // 64)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, width * 4))
        self.mlp.add_module("c_proj", nn.Linear(width * 4, width))
        self.ln_2 = nn.LayerNorm(width)
        if mask is None:
            self.mask = None
        else:  # a buffer, so that .to(device) and .half() move it with the model
            self.register_buffer("mask", mask, persistent=False)

    def forward(self, x):  # x: [L, N, D]
        h = self.ln_1(x)
        mask = None if self.mask is None else self.mask[: x.shape[0], : x.shape[0]]
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        h = self.mlp.c_fc(self.ln_2(x))
        return x + self.mlp.c_proj(h * torch.sigmoid(1.702 * h))


class Clip(nn.Module):
    def __init__(self, image, patch, vw, vl, tw, tl, embed):
        super().__init__()
        grid = image // patch
        self.visual = nn.Module()
        v = self.visual
        v.conv1 = nn.Conv2d(3, vw, patch, patch, bias=False)
        v.class_embedding = nn.Parameter(torch.randn(vw) * vw ** -0.5)
        v.positional_embedding = nn.Parameter(torch.randn(grid * grid + 1, vw) * vw ** -0.5)
        v.ln_pre = nn.LayerNorm(vw)
        v.transformer = nn.Module()
        v.transformer.resblocks = nn.ModuleList([Block(vw) for _ in range(vl)])
        v.ln_post = nn.LayerNorm(vw)
        v.proj = nn.Parameter(torch.randn(vw, embed) * vw ** -0.5)
        mask = torch.full((CONTEXT, CONTEXT), float("-inf")).triu_(1)
        self.token_embedding = nn.Embedding(VOCAB, tw)
        self.positional_embedding = nn.Parameter(torch.randn(CONTEXT, tw) * 0.01)
        self.transformer = nn.Module()
        self.transformer.resblocks = nn.ModuleList([Block(tw, mask) for _ in range(tl)])
        self.ln_final = nn.LayerNorm(tw)
        self.text_projection = nn.Parameter(torch.randn(tw, embed) * tw ** -0.5)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(100.0)))


class Maple(nn.Module):
    """MaPLe prompt learner: text prompts per depth, coupled to vision by linear maps."""

    def __init__(self, clip, n_ctx, depth, tw, vw):
        super().__init__()
        self.ctx = nn.Parameter(torch.randn(n_ctx, tw) * 0.02)
        self.proj = nn.Linear(tw, vw)
        self.compound_prompts_text = nn.ParameterList(
            [nn.Parameter(torch.randn(n_ctx, tw) * 0.02) for _ in range(depth - 1)])
        self.compound_prompt_projections = nn.ModuleList([nn.Linear(tw, vw) for _ in range(depth - 1)])


def encode_text(clip, pl, tokens):
    """tokens: [C, 77] ids with the n_ctx placeholder positions right after SOT."""
    n_ctx = pl.ctx.shape[0]
    emb = clip.token_embedding(tokens)
    ctx = pl.ctx.unsqueeze(0).expand(tokens.shape[0], -1, -1)
    x = torch.cat([emb[:, :1], ctx, emb[:, 1 + n_ctx:]], dim=1) + clip.positional_embedding
    x = x.permute(1, 0, 2)
    for i, blk in enumerate(clip.transformer.resblocks):
        if 1 <= i <= len(pl.compound_prompts_text):
            deep = pl.compound_prompts_text[i - 1].unsqueeze(1).expand(-1, x.shape[1], -1)
            x = torch.cat([x[:1], deep, x[1 + n_ctx:]], dim=0)
        x = blk(x)
    x = clip.ln_final(x.permute(1, 0, 2))
    return x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)] @ clip.text_projection


def encode_image(clip, pl, images):
    v = clip.visual
    n_ctx = pl.ctx.shape[0]
    x = v.conv1(images).flatten(2).permute(0, 2, 1)
    cls = v.class_embedding.expand(x.shape[0], 1, -1)
    x = torch.cat([cls, x], dim=1) + v.positional_embedding
    shared = pl.proj(pl.ctx).unsqueeze(0).expand(x.shape[0], -1, -1)
    x = v.ln_pre(torch.cat([x, shared], dim=1)).permute(1, 0, 2)
    for i, blk in enumerate(v.transformer.resblocks):
        if 1 <= i <= len(pl.compound_prompts_text):
            deep = pl.compound_prompt_projections[i - 1](pl.compound_prompts_text[i - 1])
            x = torch.cat([x[:-n_ctx], deep.unsqueeze(1).expand(-1, x.shape[1], -1)], dim=0)
        x = blk(x)
    return v.ln_post(x[0]) @ v.proj


def logits(clip, pl, tokens, images):
    t = F.normalize(encode_text(clip, pl, tokens), dim=-1)
    i = F.normalize(encode_image(clip, pl, images), dim=-1)
    return clip.logit_scale.exp() * i @ t.t()


def fake_tokens(classes, n_ctx, seed=0):
    g = torch.Generator().manual_seed(seed)
    toks = torch.zeros(classes, CONTEXT, dtype=torch.long)
    for c in range(classes):
        n = int(torch.randint(1, 6, (1,), generator=g))  # class name length in tokens
        body = torch.randint(1, 49000, (n_ctx + n + 1,), generator=g)
        row = torch.cat([torch.tensor([SOT]), body, torch.tensor([EOT])])
        toks[c, : len(row)] = row
    return toks


def check_fixture(path, precision="fp32"):
    from safetensors.torch import load_file
    cfg = json.load(open(f"{path}/config.json"))
    m = cfg["model"]
    clip = Clip(m["image_resolution"], m["patch_size"], m["vision_width"], m["vision_layers"],
                m["text_width"], m["text_layers"], m["embed_dim"])
    sd = {k: v.float() for k, v in load_file(f"{path}/clip.safetensors").items()}
    missing, unexpected = clip.load_state_dict(sd, strict=False)
    assert not missing, missing
    init = load_file(f"{path}/maple_init.safetensors")
    n_ctx, depth = init["prompt_learner.ctx"].shape[0], len(
        [k for k in init if k.startswith("prompt_learner.compound_prompts_text.")]) + 1
    pl = Maple(clip, n_ctx, depth, m["text_width"], m["vision_width"])
    pl.load_state_dict({k[len("prompt_learner."):]: v for k, v in init.items()
                        if k.startswith("prompt_learner.") and "token" not in k and "name_lens" not in k}, strict=True)
    fwd = load_file(f"{path}/forward.safetensors")
    tokens = init["prompt_learner.tokenized_prompts"].long()
    images = fwd["input.images"]
    if precision == "fp16":  # the reference's default PREC: whole model and prompts in half
        clip, pl, images = clip.half(), pl.half(), images.half()
    # bf16 (not a reference PREC): autocast around fp32 weights and prompts, as the bench does.
    autocast = (torch.autocast(images.device.type, dtype=torch.bfloat16)
                if precision == "bf16" else contextlib.nullcontext())
    with torch.no_grad(), autocast:
        got = logits(clip, pl, tokens, images).float()
    want = fwd["maple.logits"] if "maple.logits" in fwd else fwd["logits"]
    err = (got - want).abs().max().item()
    # Three SGD steps on the same batch, as the fixture's train_step records them.
    ts = load_file(f"{path}/train_step.safetensors")
    opt = torch.optim.SGD(pl.parameters(), lr=cfg["optim"]["LR"], momentum=0.9, weight_decay=5e-4)
    # Gradients are compared relative to the largest gradient of their step (fp32 BLAS builds
    # differ by ~2e-5 of it), parameters absolutely.
    grad_err = param_err = 0.0
    for s in (1, 2, 3):
        with autocast:  # autocast computes cross_entropy in fp32; fp16 keeps the reference's half loss
            loss = F.cross_entropy(logits(clip, pl, tokens, images), fwd["input.labels"].long())
        opt.zero_grad()
        loss.backward()
        gmax = max(ts[f"step{s}.grad.prompt_learner.{n}"].abs().max().item() for n, _ in pl.named_parameters())
        for name, p in pl.named_parameters():
            d = (p.grad.float() - ts[f"step{s}.grad.prompt_learner.{name}"]).abs().max().item()
            grad_err = max(grad_err, d / gmax)
        opt.step()
        for name, p in pl.named_parameters():
            param_err = max(param_err, (p.detach().float() - ts[f"step{s}.param.prompt_learner.{name}"]).abs().max().item())
    # fp32 must match the fixture; fp16/bf16 only report the reference's own half-precision
    # error (the bound a mixed-precision implementation should stay within).
    ok = err < 1e-4 and grad_err < 1e-4 and param_err < 1e-5 if precision == "fp32" else None
    print(json.dumps({"check": "maple vs fixture", "precision": precision, "logits_max_abs_err": err,
                      "grads_max_err_of_max": grad_err, "params_max_abs_err": param_err, "ok": ok}))
    return ok


def bench(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = torch.device(args.device)
    image, patch, vw, vl, tw, tl, embed = MODELS[args.model]
    clip = Clip(image, patch, vw, vl, tw, tl, embed).eval()
    for p in clip.parameters():
        p.requires_grad_(False)
    pl = Maple(clip, args.n_ctx, args.depth, tw, vw)
    tokens = fake_tokens(args.classes, args.n_ctx)
    images = torch.randn(args.batch, 3, image, image)
    labels = torch.randint(0, args.classes, (args.batch,))
    # Precision: fp32; fp16 = the reference's default PREC "fp16" (whole model and prompts
    # in half, plain SGD, no loss scaling); bf16 = autocast around the forward pass.
    clip, pl = clip.to(dev), pl.to(dev)
    tokens, images, labels = tokens.to(dev), images.to(dev), labels.to(dev)
    if args.precision == "fp16":
        clip, pl, images = clip.half(), pl.half(), images.half()
    opt = torch.optim.SGD(pl.parameters(), lr=0.0035, momentum=0.9, weight_decay=5e-4)
    autocast = (torch.autocast(device_type=dev.type, dtype=torch.bfloat16)
                if args.precision == "bf16" else contextlib.nullcontext())

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def step():
        if args.workload == "train-step":
            with autocast:
                out = logits(clip, pl, tokens, images)
            loss = F.cross_entropy(out.float(), labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
        elif args.workload == "encode-images":
            with torch.no_grad(), autocast:
                encode_image(clip, pl, images)
        elif args.workload == "encode-text":
            with torch.no_grad(), autocast:
                encode_text(clip, pl, tokens)

    for _ in range(args.warmup):
        step()
    sync()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    times, cpu = [], []
    for _ in range(args.iters):
        t, c = time.perf_counter(), time.process_time()
        step()
        sync()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    peak = (torch.cuda.max_memory_allocated(dev) if dev.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    print(json.dumps({
        "impl": "pytorch", "torch": torch.__version__, "model": args.model, "workload": args.workload,
        "batch": args.batch, "classes": args.classes, "n_ctx": args.n_ctx, "depth": args.depth,
        "threads": args.threads, "device": args.device, "precision": args.precision,
        "iters": args.iters, "median_s": statistics.median(times),
        "min_s": min(times), "max_s": max(times), "times_s": times, "cpu_s": cpu,
        "peak_bytes": peak, "peak_kind": "cuda_max_allocated" if dev.type == "cuda" else "process_max_rss"}))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check-fixture", metavar="DIR", nargs="?", const=DEFAULT_FIXTURE,
                    help="check against the golden fixtures in DIR (default: tests/fixtures/maple-tiny)")
    ap.add_argument("--model", default="vit-b16", choices=sorted(MODELS))
    ap.add_argument("--workload", default="train-step", choices=["train-step", "encode-images", "encode-text"])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--classes", type=int, default=50)
    ap.add_argument("--n-ctx", type=int, default=2)
    ap.add_argument("--depth", type=int, default=9)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"],
                    help="fp16: whole model in half as the reference's default PREC; bf16: autocast")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--iters", type=int, default=3)
    a = ap.parse_args()
    if a.check_fixture:
        ok = check_fixture(a.check_fixture, a.precision)
        raise SystemExit(0 if ok in (True, None) else 1)
    bench(a)
