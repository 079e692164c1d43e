"""Time per sample and NFE of `flowlik score` against flow_matching's compute_likelihood, measured in one run
on the same model, data, tolerance, batch size and thread count, and printed as a ratio. Also prints how far
apart the two are per sample.

    .venv/bin/python bench/compare_with_flow_matching.py            # the embedded digits example
    .venv/bin/python bench/compare_with_flow_matching.py --samples 32 --batch-size 8 --trace hutchinson

The data are dequantized and mapped to model space here, once, and handed to both as the same float array,
so both score exactly the same points (flowlik then reports them as continuous data).
"""
import argparse
import csv
import json
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from peer import flow_matching_log_likelihood  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]


def model_space(levels_data, levels, seed):
    """Uniform dequantization and the centered map, y = 2 (k + u) / K - 1."""
    u = np.random.default_rng(seed).random(levels_data.shape)
    return (2.0 * (levels_data + u) / levels - 1.0).astype(np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=ROOT / "examples/digits/model.pt", type=pathlib.Path)
    ap.add_argument("--data", default=ROOT / "examples/digits/test.npy", type=pathlib.Path)
    ap.add_argument("--levels", type=int, default=17)
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--rtol", type=float, default=1e-5)
    ap.add_argument("--atol", type=float, default=1e-5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--trace", choices=["exact", "hutchinson"], default="exact")
    ap.add_argument("--flowlik", type=pathlib.Path, default=ROOT / "build/flowlik")
    ap.add_argument("--json-out", type=pathlib.Path)
    args = ap.parse_args()

    raw = np.load(args.data)[: args.samples]
    y = model_space(raw.astype(np.float64), args.levels, seed=0)
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        np.save(tmp / "y.npy", y)
        cmd = [str(args.flowlik), "score", str(args.model), "--data", str(tmp / "y.npy"), "--rtol",
               str(args.rtol), "--atol", str(args.atol), "--batch-size", str(args.batch_size), "--threads",
               str(args.threads), "--trace", args.trace, "--per-sample", str(tmp / "s.csv"), "-o",
               str(tmp / "r.json"), "-q"]
        start = time.perf_counter()
        subprocess.run(cmd, check=True)
        flowlik_wall = time.perf_counter() - start
        report = json.loads((tmp / "r.json").read_text())
        with open(tmp / "s.csv") as f:  # the first line is the run's identity, a comment
            rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    flowlik_ll = np.array([float(r["log_likelihood"]) for r in rows])

    start = time.perf_counter()
    peer_ll, peer_nfe = flow_matching_log_likelihood(
        args.model, torch.from_numpy(y), atol=args.atol, rtol=args.rtol, exact=args.trace == "exact",
        batch_size=args.batch_size)
    peer_wall = time.perf_counter() - start
    peer_ll = peer_ll.numpy()

    n = len(y)
    result = {
        "model": str(args.model), "samples": n, "batch_size": args.batch_size, "threads": args.threads,
        "trace": args.trace, "rtol": args.rtol, "atol": args.atol,
        "flowlik": {"seconds_per_sample": flowlik_wall / n, "in_process_seconds_per_sample":
                    report["wall_time_s"] / n, "nfe_mean": report["metrics"]["nfe"]["mean"],
                    "mean_log_likelihood": float(flowlik_ll.mean())},
        "flow_matching": {"seconds_per_sample": peer_wall / n, "nfe_mean": float(np.mean(peer_nfe)),
                          "mean_log_likelihood": float(peer_ll.mean())},
        "speedup": peer_wall / flowlik_wall,
        "max_abs_diff_log_likelihood": float(np.max(np.abs(flowlik_ll - peer_ll))),
    }
    print(f"{n} samples, batch {args.batch_size}, {args.threads} threads, {args.trace} trace, "
          f"dopri5 rtol {args.rtol} atol {args.atol}")
    print(f"{'':16}{'s/sample':>10}{'NFE':>8}{'mean log p':>14}")
    print(f"{'flowlik':16}{flowlik_wall / n:10.4f}{result['flowlik']['nfe_mean']:8.1f}{flowlik_ll.mean():14.4f}")
    print(f"{'flow_matching':16}{peer_wall / n:10.4f}{result['flow_matching']['nfe_mean']:8.1f}"
          f"{peer_ll.mean():14.4f}")
    print(f"speed-up (flow_matching time / flowlik time, whole flowlik process included): "
          f"{result['speedup']:.2f}x")
    print(f"max |difference| in per-sample log-likelihood: {result['max_abs_diff_log_likelihood']:.2e} nats")
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
