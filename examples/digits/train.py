#!/usr/bin/env python3
"""Train the embedded default example of flowlik: a small flow-matching model
on sklearn's 8x8 digits (17 grey levels), exported as TorchScript.

Usage (from the repository root):

    .venv/bin/python examples/digits/train.py

Writes, next to this script:
  model.pt          TorchScript velocity model, forward(x: [B,8,8], t: [B]) -> [B,8,8],
                    with an embedded "flowlik.json" manifest (extra file)
  test.npy          held-out test images, uint8 [360, 8, 8], values 0..16
  test_labels.npy   their labels, int64 [360]
  reference.json    bits/dim of the first 64 test images computed independently with
                    flow_matching's ODESolver.compute_likelihood (exact divergence, dopri5)

Conventions (the scorer reproduces them):
  dequantization  x01 = (k + u) / 17, u ~ U[0, 1)
  centered map    y = 2 * x01 - 1                (log|det| = D ln 2)
  path            x_t = t * y + (1 - t) * x0, x0 ~ N(0, I), target velocity y - x0
  time            t = 0 is the prior N(0, I), t = 1 is data
  bpd             (-log p(y) - D ln 2 + D ln 17) / (D ln 2), D = 64

Everything is deterministic: fixed seeds, a fixed step count, 2 CPU threads.
"""
import argparse
import copy
import json
import math
import os
import sys
import time
import types
import warnings

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

warnings.filterwarnings("ignore", category=FutureWarning, module="torch.jit")
HERE = os.path.dirname(os.path.abspath(__file__))
LEVELS = 17
SHAPE = (8, 8)
D = 64

MANIFEST = {
    "signature": "(x, t)",
    "time_input": "vector",
    "time": "flow",
    "parameterization": "velocity",
    "schedule": {"name": "linear", "sigma_min": 0.0},
    "time_range": [0.0, 1.0],
    "prior": {"name": "normal", "scale": 1.0},
    "shape": [8, 8],
    "data": {"levels": LEVELS, "scale": "centered"},
}


# --------------------------------------------------------------------------- model
class TimeEmbedding(nn.Module):
    """Sinusoidal features of t in [0, 1]: [sin(2 pi f t), cos(2 pi f t)] for
    geometrically spaced frequencies f in [1/2, max_freq]."""

    def __init__(self, dim: int = 32, max_freq: float = 64.0):
        super().__init__()
        half = dim // 2
        freqs = 2.0 * math.pi * torch.exp(
            torch.linspace(math.log(0.5), math.log(max_freq), half)
        )
        # A buffer, so that module.to(torch.float64) converts it too.
        self.register_buffer("freqs", freqs)

    def forward(self, t: Tensor) -> Tensor:
        a = t[:, None] * self.freqs[None, :]
        return torch.cat([torch.sin(a), torch.cos(a)], dim=1)


class VelocityMLP(nn.Module):
    """v(x, t) for x of shape [B, 8, 8] and t of shape [B] (a 0-dim t is broadcast)."""

    def __init__(self, width: int = 256, depth: int = 4, temb: int = 32,
                 dropout: float = 0.0):
        super().__init__()
        self.temb = TimeEmbedding(temb)
        layers = [nn.Linear(D + temb, width), nn.SiLU()]
        for _ in range(depth - 1):
            if dropout > 0:
                layers += [nn.Dropout(dropout)]
            layers += [nn.Linear(width, width), nn.SiLU()]
        layers += [nn.Linear(width, D)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        b = x.shape[0]
        if t.dim() == 0:
            t = t.expand(b)
        h = torch.cat([x.reshape(b, 64), self.temb(t.to(x.dtype))], dim=1)
        return self.net(h).reshape(b, 8, 8)


# --------------------------------------------------------------------------- data
def load_split():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    imgs = d.images.astype(np.int64)  # float64 0..16 -> int
    assert imgs.shape == (1797, 8, 8) and imgs.min() == 0 and imgs.max() == 16
    tr_x, te_x, tr_y, te_y = train_test_split(
        imgs, d.target, test_size=360, random_state=0, stratify=d.target
    )
    return tr_x, te_x, tr_y.astype(np.int64), te_y.astype(np.int64)


def dequantize_center(k: Tensor, gen: torch.Generator, dtype=torch.float32) -> Tensor:
    u = torch.rand(k.shape, generator=gen, dtype=dtype)
    x01 = (k.to(dtype) + u) / LEVELS
    return 2.0 * x01 - 1.0


# --------------------------------------------------------------------------- likelihood
def _import_ode_solver():
    # flow_matching.solver's __init__ imports tqdm (for its discrete/Riemannian
    # solvers, unused here); stub it if it is not installed.
    try:
        import tqdm  # noqa: F401
    except ImportError:
        stub = types.ModuleType("tqdm")
        stub.tqdm = lambda it=None, *a, **k: it
        sys.modules["tqdm"] = stub
    from flow_matching.solver import ODESolver

    return ODESolver


class FlatWrapper(nn.Module):
    """Adapter for flow_matching: x as [B, 64] (its exact divergence indexes
    ut[:, i]) and a possibly 0-dim t (torchdiffeq passes a scalar)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        b = x.shape[0]
        t = t.to(x.dtype)
        if t.dim() == 0:
            t = t.expand(b)
        return self.inner(x.reshape(b, 8, 8), t).reshape(b, D)


def std_normal_logp(z: Tensor) -> Tensor:
    return -0.5 * (z**2).sum(dim=1) - 0.5 * z.shape[1] * math.log(2 * math.pi)


def bpd_exact(model, k_imgs: np.ndarray, seed: int, atol=1e-5, rtol=1e-5,
              dtype=torch.float64, chunk: int = 64):
    """Per-image bits/dim via flow_matching's exact-divergence likelihood."""
    ODESolver = _import_ode_solver()
    m = FlatWrapper(copy.deepcopy(model)).to(dtype).eval()
    for p in m.parameters():
        p.requires_grad_(False)
    solver = ODESolver(velocity_model=m)
    gen = torch.Generator().manual_seed(seed)
    k = torch.from_numpy(np.asarray(k_imgs, dtype=np.int64)).reshape(-1, D)
    y = dequantize_center(k, gen, dtype=dtype)
    out = []
    for s in range(0, y.shape[0], chunk):
        _, loglik = solver.compute_likelihood(
            x_1=y[s : s + chunk],
            log_p0=std_normal_logp,
            step_size=None,
            method="dopri5",
            atol=atol,
            rtol=rtol,
            time_grid=torch.tensor([1.0, 0.0], dtype=dtype),
            exact_divergence=True,
        )
        out.append(loglik)
    loglik = torch.cat(out).double()
    bpd = (-loglik - D * math.log(2.0) + D * math.log(LEVELS)) / (D * math.log(2.0))
    return bpd.numpy()


# --------------------------------------------------------------------------- training
def ema_step(ema, model, step: int, ema_decay: float):
    """ema <- d ema + (1 - d) model, with the decay warmed up over the first steps."""
    with torch.no_grad():
        d = min(ema_decay, (1.0 + step) / (10.0 + step))
        for pe, pm in zip(ema.parameters(), model.parameters()):
            pe.mul_(d).add_(pm, alpha=1.0 - d)


def train(tr_x: np.ndarray, steps: int, seed: int, width: int, depth: int,
          lr: float, batch: int, ema_decay: float, log_every: int, eval_fn=None,
          wd: float = 0.0, dropout: float = 0.0):
    torch.manual_seed(seed)
    model = VelocityMLP(width, depth, dropout=dropout)
    ema = VelocityMLP(width, depth, dropout=dropout).eval()
    ema.load_state_dict(model.state_dict())
    for p in ema.parameters():
        p.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
    warmup = 500
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: min(1.0, (s + 1) / warmup)
        * 0.5 * (1.0 + math.cos(math.pi * min(s, steps) / steps)),
    )
    gen = torch.Generator().manual_seed(seed + 1)
    data = torch.from_numpy(tr_x.reshape(-1, D).astype(np.int64))
    n = data.shape[0]
    perm = torch.randperm(n, generator=gen)
    pos = 0
    t0 = time.time()
    run = 0.0
    for step in range(1, steps + 1):
        # Epoch-wise shuffling without replacement; fresh dequantization noise
        # every time an image is drawn.
        if pos + batch > n:
            perm = torch.randperm(n, generator=gen)
            pos = 0
        k = data[perm[pos : pos + batch]]
        pos += batch
        y = dequantize_center(k, gen)
        x0 = torch.randn(y.shape, generator=gen)
        t = torch.rand(y.shape[0], generator=gen)
        xt = t[:, None] * y + (1.0 - t[:, None]) * x0
        v = model(xt.reshape(-1, 8, 8), t).reshape(-1, D)
        loss = ((v - (y - x0)) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        ema_step(ema, model, step, ema_decay)
        run = 0.98 * run + 0.02 * loss.item() if step > 1 else loss.item()
        if step % log_every == 0 or step == steps:
            msg = (f"step {step:6d}/{steps}  loss {run:.4f}  "
                   f"lr {sched.get_last_lr()[0]:.2e}  {time.time() - t0:6.1f}s")
            if eval_fn is not None:
                msg += "  " + eval_fn(model, ema)
            print(msg, flush=True)
    return model, ema, time.time() - t0


# --------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--wd", type=float, default=0.0, help="AdamW weight decay")
    ap.add_argument("--dropout", type=float, default=0.1,
                    help="dropout between hidden layers, training only (the exported "
                         "module has no dropout layers)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=HERE)
    ap.add_argument("--dev-val", type=int, default=0,
                    help="development only: hold out this many training images as a "
                         "validation set, report their bpd while training, write nothing")
    args = ap.parse_args()

    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    tr_x, te_x, tr_y, te_y = load_split()
    print(f"train {tr_x.shape}  test {te_x.shape}")

    if args.dev_val:
        rng = np.random.RandomState(123)
        idx = rng.permutation(len(tr_x))
        va_x, tr_x = tr_x[idx[: args.dev_val]], tr_x[idx[args.dev_val :]]

        def eval_fn(model, ema):
            b = bpd_exact(ema, va_x[:64], seed=7, atol=1e-4, rtol=1e-4,
                          dtype=torch.float32)
            return f"val bpd (ema) {b.mean():.3f}"

        train(tr_x, args.steps, args.seed, args.width, args.depth, args.lr,
              args.batch, args.ema, log_every=max(1, args.steps // 6), eval_fn=eval_fn,
              wd=args.wd, dropout=args.dropout)
        return

    model, ema, secs = train(tr_x, args.steps, args.seed, args.width, args.depth,
                             args.lr, args.batch, args.ema,
                             log_every=max(1, args.steps // 20),
                             wd=args.wd, dropout=args.dropout)
    print(f"trained {args.steps} steps in {secs:.1f}s")
    # Export the EMA weights, in a copy of the network without dropout layers
    # (dropout is the identity at evaluation anyway; this keeps the exported
    # graph free of train/eval-dependent ops).
    final = VelocityMLP(args.width, args.depth, dropout=0.0).eval()
    src = [m for m in ema.net if isinstance(m, nn.Linear)]
    dst = [m for m in final.net if isinstance(m, nn.Linear)]
    assert len(src) == len(dst)
    with torch.no_grad():
        for a, b in zip(src, dst):
            b.weight.copy_(a.weight)
            b.bias.copy_(a.bias)
        final.temb.freqs.copy_(ema.temb.freqs)
        g0 = torch.Generator().manual_seed(99)
        xx, tt = torch.randn(5, 8, 8, generator=g0), torch.rand(5, generator=g0)
        assert torch.equal(final(xx, tt), ema.eval()(xx, tt))
    for p in final.parameters():
        p.requires_grad_(False)

    # ---- export
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "model.pt")
    scripted = torch.jit.script(final)
    torch.jit.save(scripted, path,
                   _extra_files={"flowlik.json": json.dumps(MANIFEST, indent=2)})

    # ---- reload and check
    extra = {"flowlik.json": ""}
    loaded = torch.jit.load(path, _extra_files=extra)
    assert json.loads(extra["flowlik.json"]) == MANIFEST
    g = torch.Generator().manual_seed(1234)
    for b in (1, 7):
        x = torch.randn(b, 8, 8, generator=g)
        t = torch.rand(b, generator=g)
        with torch.no_grad():
            diff = (loaded(x, t) - final(x, t)).abs().max().item()
        print(f"reload check B={b}: max |diff| = {diff:.3e}")
        assert diff < 1e-5, diff
    loaded64 = torch.jit.load(path).to(torch.float64)
    with torch.no_grad():
        x = torch.randn(3, 8, 8, generator=g, dtype=torch.float64)
        t = torch.rand(3, generator=g, dtype=torch.float64)
        v = loaded64(x, t)
        assert v.dtype == torch.float64 and v.shape == (3, 8, 8)
        diff = (v - final.double()(x, t)).abs().max().item()
        final.float()
    print(f"float64 check: max |diff| = {diff:.3e}")
    assert diff < 1e-10, diff

    # ---- test data
    np.save(os.path.join(args.out, "test.npy"),
            np.ascontiguousarray(te_x.astype(np.uint8)))
    np.save(os.path.join(args.out, "test_labels.npy"), te_y.astype(np.int64))

    # ---- independent reference with flow_matching
    n_ref, ref_seed, tol = 64, 0, 1e-5
    t1 = time.time()
    bpd = bpd_exact(loaded, te_x[:n_ref], seed=ref_seed, atol=tol, rtol=tol,
                    dtype=torch.float64)
    mean, se = float(bpd.mean()), float(bpd.std(ddof=1) / math.sqrt(len(bpd)))
    print(f"reference: test bpd over first {n_ref} images = {mean:.4f} +- {se:.4f} "
          f"(s.e.)  [{time.time() - t1:.1f}s]")
    ref = {
        "bpd_mean": mean,
        "bpd_stderr": se,
        "num_samples": n_ref,
        "images": f"test.npy[0:{n_ref}]",
        "dequant_seed": ref_seed,
        "dequant_rng": "torch.Generator().manual_seed(seed); "
                       "u = torch.rand([n, 64], dtype=float64); y = 2*(k+u)/17 - 1",
        "solver": "flow_matching ODESolver.compute_likelihood, exact_divergence=True, "
                  "method=dopri5, time_grid=[1.0, 0.0], float64",
        "atol": tol,
        "rtol": tol,
        "levels": LEVELS,
        "dim": D,
        "bpd_formula": "(-loglik - D ln 2 + D ln 17) / (D ln 2)",
        "bpd_per_image": [float(b) for b in bpd],
        "train_config": {k: getattr(args, k) for k in
                         ("steps", "width", "depth", "lr", "batch", "ema", "wd",
                          "dropout", "seed")},
        "train_seconds": round(secs, 1),
    }
    with open(os.path.join(args.out, "reference.json"), "w") as f:
        json.dump(ref, f, indent=2)
        f.write("\n")


STEPS = 60000

if __name__ == "__main__":
    main()
