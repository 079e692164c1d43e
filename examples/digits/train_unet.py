#!/usr/bin/env python3
"""Train the embedded attention-UNet example: torchcfm's UNetModelWrapper (residual blocks, attention at
4x4, class-free) on the same 8x8 digits as the MLP, with the same conditional flow-matching objective, and
export it through flowlik_export.from_torchcfm as an AOTInductor package.

Usage (from the repository root):

    .venv/bin/python examples/digits/train_unet.py [--steps 3000] [--threads 2]
    .venv/bin/python examples/digits/train_unet.py --export-only   # unet.pt2 again from unet_weights.pt

Writes, next to this script:
  unet.pt2     the package (float32, compiled for x86-64-v3: any x86-64 CPU with AVX2), forward(t, x [B, 1, 8, 8]) as torchcfm calls it, contract from
               from_torchcfm plus the data's levels and scale; flowlik scores test.npy ([N, 8, 8]) with it
               (data differing only in dimensions of size 1 take the model's shape)
  unet_weights.pt  the EMA weights (torch.save of the state dict) for UNetModelWrapper(**CONFIG): the eager
               model the test's independent reference integrates
  unet.json    the training run's settings, time and loss

Conventions as train.py: x01 = (k + u) / 17, y = 2 x01 - 1, x_t = t y + (1 - t) x0, target y - x0, EMA weights
exported. Deterministic for a given --threads: fixed seeds.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from train import LEVELS, dequantize_center, ema_step, load_split  # noqa: E402

CONFIG = dict(dim=(1, 8, 8), num_channels=32, num_res_blocks=1, channel_mult=(1, 2),
              attention_resolutions="4", num_heads=2, num_head_channels=16, dropout=0.1)


def build():
    from torchcfm.models.unet.unet import UNetModelWrapper

    return UNetModelWrapper(**CONFIG)


def train(tr_x, steps, seed, lr, batch, ema_decay):
    torch.manual_seed(seed)
    model = build()
    ema = build().eval()
    ema.load_state_dict(model.state_dict())
    for p in ema.parameters():
        p.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    warmup = 200
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1.0 + math.cos(math.pi * min(s, steps) / steps)))
    gen = torch.Generator().manual_seed(seed + 1)
    data = torch.from_numpy(tr_x.astype(np.int64))[:, None]  # [N, 1, 8, 8]
    n = data.shape[0]
    perm, pos, run, start = torch.randperm(n, generator=gen), 0, 0.0, time.time()
    for step in range(1, steps + 1):
        if pos + batch > n:
            perm, pos = torch.randperm(n, generator=gen), 0
        y = dequantize_center(data[perm[pos:pos + batch]], gen)
        pos += batch
        x0 = torch.randn(y.shape, generator=gen)
        t = torch.rand(y.shape[0], generator=gen)
        xt = t[:, None, None, None] * y + (1 - t[:, None, None, None]) * x0
        loss = ((model(t, xt) - (y - x0)) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        ema_step(ema, model, step, ema_decay)
        run = 0.98 * run + 0.02 * loss.item() if step > 1 else loss.item()
        if step % max(1, steps // 20) == 0 or step == steps:
            print(f"step {step:6d}/{steps}  loss {run:.4f}  {time.time() - start:6.1f}s", flush=True)
    return ema, time.time() - start, run


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache-dir", default=None, help="reuse compiled functions from this folder")
    ap.add_argument("--export-only", action="store_true",
                    help="export unet.pt2 from unet_weights.pt without training (unet.json is kept)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from flowlik_export import export, from_torchcfm

    tr_x, te_x, _, _ = load_split()
    if args.export_only:
        ema = build().eval()
        ema.load_state_dict(torch.load(os.path.join(HERE, "unet_weights.pt"), weights_only=True))
    else:
        ema, seconds, loss = train(tr_x, args.steps, args.seed, args.lr, args.batch, args.ema)
        torch.save(ema.state_dict(), os.path.join(HERE, "unet_weights.pt"))
    module, contract = from_torchcfm(ema, contract={"data": {"levels": LEVELS, "scale": "centered"}})
    example = dequantize_center(torch.from_numpy(te_x[:16].astype(np.int64))[:, None],
                                torch.Generator().manual_seed(0))
    start = time.perf_counter()
    # For every x86-64 CPU with AVX2, not only for this machine's instructions: the package is shipped.
    export(module, os.path.join(HERE, "unet.pt2"), contract, example, cache_dir=args.cache_dir, cpu="x86-64-v3")
    print(f"exported unet.pt2 in {time.perf_counter() - start:.1f} s")
    if args.export_only:
        return
    with open(os.path.join(HERE, "unet.json"), "w") as out:
        json.dump({"config": {k: list(v) if isinstance(v, tuple) else v for k, v in CONFIG.items()},
                   "parameters": sum(p.numel() for p in ema.parameters()),
                   **{k: getattr(args, k) for k in ("steps", "lr", "batch", "ema", "seed", "threads")},
                   "train_seconds": round(seconds, 1), "final_loss": round(loss, 4)}, out, indent=2)
        out.write("\n")


if __name__ == "__main__":
    main()
