"""Small runs and the block (issue 18 item 8): the embedded digits UNet (torchcfm's UNetModelWrapper, trained,
examples/digits/unet_weights.pt) exported twice in this run, with one block of 16 rows (the rule before small
blocks existed) and with the exporter's default (16 rows, and 2 for small runs), and each scored by flowlik on
the first N test digits, Hutchinson with K probes, dopri5 at 1e-5, float32, one thread. The time is the
flowlik process's user CPU seconds, loading included (one run each; nothing else should run meanwhile); the
ratio is the one-block package's time over the default's, in the same run. With --fresh-cache each export
compiles everything, with an empty cache of its own (otherwise compiled functions come from the tests' cache).

    .venv/bin/python bench/small_runs.py [--sizes 1,2,4,8,16] [--probes 1,8] [--fresh-cache]
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "digits"
sys.path.insert(0, str(DIGITS))
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
import train_unet  # noqa: E402
from pt2_cache import pt2_cache_dir  # noqa: E402
from train import LEVELS, dequantize_center, load_split  # noqa: E402

from flowlik_export import export, from_torchcfm  # noqa: E402

BIN = ROOT / "build" / "flowlik"


def export_both(work, fresh):
    """{name: (path, export seconds)} of the one-block and the default package; fresh: each with an empty
    cache of its own, else with the tests' cache."""
    torch.set_num_threads(1)
    ema = train_unet.build().eval()
    ema.load_state_dict(torch.load(DIGITS / "unet_weights.pt", weights_only=True))
    module, contract = from_torchcfm(ema, contract={"data": {"levels": LEVELS, "scale": "centered"}})
    _, te_x, _, _ = load_split()
    example = dequantize_center(torch.from_numpy(te_x[:16].astype(np.int64))[:, None],
                                torch.Generator().manual_seed(0))
    out = {}
    for name, block in (("one block (16)", 16), ("default", None)):
        path = work / f"{'one' if block else 'default'}.pt2"
        cache_dir = str(work / f"cache-{path.stem}") if fresh else str(pt2_cache_dir())
        start = time.perf_counter()
        export(module, path, contract, example, block=block, cache_dir=cache_dir)
        out[name] = (path, time.perf_counter() - start)
    return out


def score(model, data, probes, work):
    """(user CPU seconds, rows per call, mean NFE) of one flowlik process."""
    report = work / "r.json"
    command = [str(BIN), "score", str(model), "--data", str(data), "--threads", "1", "--trace", "hutchinson",
               "--probes", str(probes), "-q", "-o", str(report)]
    before = os.times()
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    after = os.times()
    r = json.loads(report.read_text())
    return after.children_user - before.children_user, r["options"]["rows_per_call"], r["metrics"]["nfe"]["mean"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1,2,4,8,16")
    ap.add_argument("--probes", default="1,8")
    ap.add_argument("--fresh-cache", action="store_true", help="compile every function (an empty cache)")
    args = ap.parse_args()
    test = np.load(DIGITS / "test.npy")
    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(tmp)
        packages = export_both(work, args.fresh_cache)
        print("| package | export s | package MB |")
        print("|---|---|---|")
        for name, (path, seconds) in packages.items():
            print(f"| {name} | {seconds:.1f} | {path.stat().st_size / 1e6:.1f} |", flush=True)
        print()
        print("| N | K | one block: CPU s (rows per call) | default: CPU s (rows per call) | ratio | NFE mean |")
        print("|---|---|---|---|---|---|")
        for n in map(int, args.sizes.split(",")):
            data = work / f"x{n}.npy"
            np.save(data, test[:n])
            for k in map(int, args.probes.split(",")):
                (one_s, one_rows, nfe), (default_s, default_rows, _) = (
                    score(packages[name][0], data, k, work) for name in ("one block (16)", "default"))
                print(f"| {n} | {k} | {one_s:.2f} ({one_rows}) | {default_s:.2f} ({default_rows}) | "
                      f"{one_s / default_s:.2f} | {nfe:.0f} |", flush=True)


if __name__ == "__main__":
    main()
