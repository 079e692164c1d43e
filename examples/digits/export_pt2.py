#!/usr/bin/env python3
"""Regenerates model.pt2, the digits model as an AOTInductor package (float32 and float64, compiled for
x86-64-v3: any x86-64 CPU with AVX2, since the package is shipped), from model.pt.

Usage (from the repository root):

    .venv/bin/python examples/digits/export_pt2.py [--cache-dir DIR]

The weights and the manifest come from model.pt (its embedded flowlik.json); the network is train.py's
VelocityMLP. After the exporter's own checks, the package's velocity is compared with model.pt's on the
360 test images (dequantized at the middle of each level, mapped as the manifest says) at several times.
"""
import argparse
import importlib.util
import json
import logging
import os
import time
import warnings

import numpy as np
import torch

from flowlik_export import export
from flowlik_export.pt2 import load_function

HERE = os.path.dirname(os.path.abspath(__file__))
DTYPES = ("float32", "float64")
# Against model.pt on the test images: float64 is the same arithmetic up to summation order; in float32 the
# two differ by a few units in the last place of |v| <= 3 (2.0e-6 measured, and each is 2.4e-6 from float64).
ATOL = {"float32": 1e-5, "float64": 1e-6}


def load_torchscript(path):
    """model.pt and its manifest; torch.jit's deprecation warning on load is expected here."""
    extra = {"flowlik.json": ""}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=FutureWarning)
        module = torch.jit.load(path, _extra_files=extra)
    return module.eval(), json.loads(extra["flowlik.json"])


def velocity_mlp():
    """train.py's VelocityMLP, imported without running the script (nor keeping its warning filters)."""
    spec = importlib.util.spec_from_file_location("digits_train", os.path.join(HERE, "train.py"))
    train = importlib.util.module_from_spec(spec)
    with warnings.catch_warnings():
        spec.loader.exec_module(train)
    return train.VelocityMLP(width=256, depth=4, dropout=0.0)


def test_inputs(manifest):
    """The test images at the middle of each level, mapped to the model's space ("centered")."""
    levels = manifest["data"]["levels"]
    assert manifest["data"]["scale"] == "centered"
    k = torch.from_numpy(np.load(os.path.join(HERE, "test.npy")).astype(np.int64))
    return 2 * (k.double() + 0.5) / levels - 1  # [360, 8, 8]


def check_against_torchscript(path, scripted, x, atol):
    """The package's velocity against model.pt's on the test images at times across [0, 1]: the largest
    abs difference per dtype, checked against atol[dtype]."""
    worst = {}
    for dtype in DTYPES:
        velocity = load_function(path, "velocity", dtype)
        reference = scripted.to(getattr(torch, dtype))
        xd = x.to(getattr(torch, dtype)).reshape(x.shape[0], -1)
        worst[dtype] = 0.0
        block = int(velocity.get_metadata()["flowlik.block"])  # the compiled rows per call
        rows = -(-xd.shape[0] // block) * block
        padded = torch.cat([xd, xd[-1:].expand(rows - xd.shape[0], -1)])  # the last row repeated
        for t in (0.0, 0.1, 0.37, 0.5, 0.81, 1.0):
            tt = torch.full((block,), t, dtype=xd.dtype)
            with torch.no_grad():
                got = torch.cat([velocity.run([part, tt])[0] for part in padded.split(block)])[:xd.shape[0]]
                expected = reference(xd.reshape(x.shape), tt[:1].expand(xd.shape[0])).reshape(got.shape)
            worst[dtype] = max(worst[dtype], (got - expected).abs().max().item())
    scripted.float()
    for dtype, w in worst.items():
        if not w <= atol[dtype]:
            raise AssertionError(f"{path}: the {dtype} velocity differs from model.pt's by {w:.3g} "
                                 f"(allowed {atol[dtype]:g})")
    return worst


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", default=os.path.join(HERE, "model.pt"))
    ap.add_argument("--out", default=os.path.join(HERE, "model.pt2"))
    ap.add_argument("--cache-dir", default=None, help="reuse compiled functions from this folder")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    scripted, manifest = load_torchscript(args.source)
    model = velocity_mlp().eval()
    model.load_state_dict(scripted.state_dict())
    x = test_inputs(manifest)

    start = time.perf_counter()
    written = export(model, args.out, manifest, x[:64].float(), dtypes=DTYPES, cache_dir=args.cache_dir,
                     cpu="x86-64-v3")
    assert written == manifest, (written, manifest)
    print(f"exported {args.out} in {time.perf_counter() - start:.1f} s")
    worst = check_against_torchscript(args.out, scripted, x, ATOL)
    print("velocity vs model.pt on test.npy, max abs diff: "
          + ", ".join(f"{d} {w:.2g}" for d, w in worst.items()))


if __name__ == "__main__":
    main()
