"""The model formats side by side, in one run: flowlik on an AOTInductor package (.pt2) and on the TorchScript
export of the same network, and flow_matching's compute_likelihood on the TorchScript module, with the exact
trace and Hutchinson's, on the embedded digits model (D = 64) and on a small convolutional UNet at 3x32x32
(D = 3072, random weights: the timing does not depend on training).

For each: milliseconds per function evaluation of a batch (from two fixed-step Euler runs of different
lengths, so start-up, loading and warm-up cancel), seconds per sample of a whole `score` at the default
dopri5 tolerance (the whole process), NFE, and peak resident memory of the process. Every run is a separate
process with the same thread count; nothing else should run on the machine meanwhile.

    .venv/bin/python bench/formats.py --threads 1 [--json-out bench/formats.json]
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
sys.path.insert(0, str(ROOT / "python"))
CACHE = ROOT / "build" / "bench-models"


class SmallUNet(torch.nn.Module):
    """Two resolutions, skip connection, time embedding: the shape of a diffusion UNet, at toy width."""

    def __init__(self, width=32):
        super().__init__()
        act = torch.nn.SiLU()
        self.t = torch.nn.Sequential(torch.nn.Linear(1, width), act, torch.nn.Linear(width, width))
        self.inp = torch.nn.Conv2d(3, width, 3, padding=1)
        self.down = torch.nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        self.mid = torch.nn.Conv2d(2 * width, 2 * width, 3, padding=1)
        self.up = torch.nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1)
        self.out = torch.nn.Conv2d(2 * width, 3, 3, padding=1)
        self.act = act

    def forward(self, x, t):
        h0 = self.act(self.inp(x) + self.t(t.reshape(-1, 1))[:, :, None, None])
        h1 = self.act(self.down(h0))
        h1 = self.act(self.mid(h1))
        h2 = self.act(self.up(h1))
        return self.out(torch.cat([h0, h2], 1))


def unet_models():
    """The UNet exported both ways, once (the .pt2 compiles for about a minute)."""
    from flowlik_export import export

    CACHE.mkdir(parents=True, exist_ok=True)
    pt, pt2 = CACHE / "unet.pt", CACHE / "unet.pt2"
    torch.manual_seed(0)
    net = SmallUNet().eval()
    example = torch.randn(2, 3, 32, 32)
    if not pt.exists():
        export(net, pt, {"shape": [3, 32, 32]}, example, format="torchscript", method="trace")
    if not pt2.exists():
        try:
            export(net, pt2, {"shape": [3, 32, 32]}, example, format="pt2", dtypes=("float32",))
        except Exception as e:  # measured and reported, not hidden: the UNet row says why it has no .pt2
            return pt, None, str(e).splitlines()[0]
    return pt, pt2, None


def run_measured(cmd, env):
    """Runs cmd under GNU time; returns (seconds, peak resident MB) of that process alone. (A child forked
    from this Python process would report this process's own resident size as its peak: Linux carries the
    high-water mark through fork and exec; time's own child starts from time's small footprint.)"""
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", *map(str, cmd)], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed: {proc.stderr}")
    return seconds, int(proc.stderr.strip().splitlines()[-1]) / 1024.0, proc.stdout


def flowlik(model, data, tmp, threads, trace, batch, extra, env):
    report = tmp / "r.json"
    cmd = [str(ROOT / "build/flowlik"), "score", str(model), "--data", str(data), "--threads", str(threads),
           "--trace", trace, "--batch-size", str(batch), "-o", str(report), "-q", *extra]
    seconds, mb, _ = run_measured(cmd, env)
    r = json.loads(report.read_text())
    return seconds, mb, r


PEER = """
import json, sys, time, numpy as np, torch
sys.path.insert(0, {bench!r})
from peer import flow_matching_log_likelihood
torch.set_num_threads({threads})
y = torch.from_numpy(np.load({data!r}))
start = time.perf_counter()
ll, nfe = flow_matching_log_likelihood({model!r}, y, exact={exact}, batch_size={batch}, method={method!r},
                                       step_size={step})
print(json.dumps({{"seconds": time.perf_counter() - start, "nfe": float(np.mean(nfe))}}))
"""


def flow_matching(model, data, threads, exact, batch, method, step, env):
    """flow_matching in a process of its own; returns ({seconds, nfe} measured inside, peak resident MB)."""
    code = PEER.format(bench=str(ROOT / "bench"), threads=threads, data=str(data), model=str(model),
                       exact=exact, batch=batch, method=method, step=step)
    _, mb, out = run_measured([sys.executable, "-c", code], env)
    return json.loads(out.strip().splitlines()[-1]), mb


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json-out", type=pathlib.Path)
    args = ap.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}

    unet_pt, unet_pt2, unet_failure = unet_models()
    everything = np.load(ROOT / "examples/digits/test.npy").astype(np.float64)
    u = np.random.default_rng(0).random(everything.shape)
    # Model space, dequantized once, as flow_matching needs it: the first 16 images for the per-evaluation
    # timings and the 16-sample score, all 360 for a whole score of the embedded test set, where start-up (about
    # 0.2 s, the same for both formats) no longer weighs on the ratio.
    everything = (2.0 * (everything + u) / 17 - 1.0).astype(np.float32)
    digits = everything[:16]
    cases = [
        # name, .pt, .pt2, data, batch, Euler steps (short, long) by trace: the difference of the two runs'
        # in-process times over the difference of their evaluations is the cost of one. The UNet's exact trace
        # takes seconds per evaluation, so one more is enough; its Hutchinson evaluation takes milliseconds,
        # and one more would drown in the first call's warm-up (a negative time was measured that way).
        ("digits (D = 64)", ROOT / "examples/digits/model.pt", ROOT / "examples/digits/model.pt2",
         digits, 16, {"exact": (10, 60), "hutchinson": (10, 60)}),
        ("UNet 3x32x32 (D = 3072)", unet_pt, unet_pt2,
         np.random.default_rng(1).standard_normal((1, 3, 32, 32)).astype(np.float32), 1,
         {"exact": (1, 2), "hutchinson": (5, 25)}),
    ]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        all_data = tmp / "all.npy"
        np.save(all_data, everything)
        for name, pt, pt2, y, batch, steps in cases:
            data = tmp / "y.npy"
            np.save(data, y)
            n = len(y)
            batches = -(-n // batch)
            for trace in ("exact", "hutchinson"):
                short, long = steps[trace]
                row = {"model": name, "trace": trace, "threads": args.threads, "batch": batch, "samples": n}
                for fmt, model in (("pt2", pt2), ("torchscript", pt)):
                    if model is None:
                        row[fmt] = {"skipped": f"export failed: {unet_failure}"}
                        continue
                    # In-process times (the report's wall_time_s): start-up and loading are not in them.
                    _, _, ra = flowlik(model, data, tmp, args.threads, trace, batch,
                                       ["--solver", "euler", "--steps", str(short)], env)
                    _, _, rb = flowlik(model, data, tmp, args.threads, trace, batch,
                                       ["--solver", "euler", "--steps", str(long)], env)
                    ms = 1e3 * (rb["wall_time_s"] - ra["wall_time_s"]) / ((long - short) * batches)
                    entry = {"ms_per_evaluation": ms}
                    if name.startswith("digits"):
                        seconds, mb, r = flowlik(model, data, tmp, args.threads, trace, batch, [], env)
                        entry.update(seconds_per_sample=seconds / n, nfe=r["metrics"]["nfe"]["mean"],
                                     peak_mb=mb, mean_log_likelihood=r["metrics"]["log_likelihood"]["mean"])
                        seconds, mb, r = flowlik(model, all_data, tmp, args.threads, trace, batch, [], env)
                        entry["all"] = {"samples": len(everything), "seconds_per_sample": seconds / len(everything),
                                        "nfe": r["metrics"]["nfe"]["mean"], "peak_mb": mb}
                    else:
                        # A whole adaptive solve of the UNet's exact trace takes minutes; memory from the
                        # longer Euler run, which evaluates the same chunks.
                        _, mb, _ = flowlik(model, data, tmp, args.threads, trace, batch,
                                           ["--solver", "euler", "--steps", str(long)], env)
                        entry["peak_mb"] = mb
                    row[fmt] = entry
                # flow_matching on the TorchScript module: per evaluation from two Euler runs as above.
                if not (name.startswith("UNet") and trace == "exact"):
                    a, _ = flow_matching(pt, data, args.threads, trace == "exact", batch, "euler", 1.0 / short, env)
                    b, _ = flow_matching(pt, data, args.threads, trace == "exact", batch, "euler", 1.0 / long, env)
                    entry = {"ms_per_evaluation": 1e3 * (b["seconds"] - a["seconds"]) / ((long - short) * batches)}
                    if name.startswith("digits"):
                        r, mb = flow_matching(pt, data, args.threads, trace == "exact", batch, "dopri5", None, env)
                        entry.update(seconds_per_sample=r["seconds"] / n, nfe=r["nfe"], peak_mb=mb)
                        r, mb = flow_matching(pt, all_data, args.threads, trace == "exact", batch, "dopri5", None,
                                              env)
                        entry["all"] = {"samples": len(everything), "seconds_per_sample": r["seconds"] / len(everything),
                                        "nfe": r["nfe"], "peak_mb": mb}
                    row["flow_matching"] = entry
                else:
                    row["flow_matching"] = {"skipped": "3072 separate autograd calls per evaluation: minutes"}
                results.append(row)
                print(json.dumps(row), flush=True)

    print(f"\nthreads {args.threads}; ms per evaluation of one batch; s/sample of a whole dopri5 score (rtol = atol "
          f"= 1e-5, whole process)")
    print(f"{'model':26}{'trace':12}{'format':15}{'ms/eval':>10}{'s/sample':>10}{'NFE':>8}{'peak MB':>9}")
    for row in results:
        for fmt in ("pt2", "torchscript", "flow_matching"):
            e = row[fmt]
            if "skipped" in e:
                print(f"{row['model']:26}{row['trace']:12}{fmt:15}  skipped: {e['skipped']}")
                continue
            sps = f"{e['seconds_per_sample']:10.4f}" if "seconds_per_sample" in e else f"{'':>10}"
            nfe = f"{e['nfe']:8.1f}" if "nfe" in e else f"{'':>8}"
            mb = f"{e['peak_mb']:9.0f}" if "peak_mb" in e else f"{'':>9}"
            print(f"{row['model']:26}{row['trace']:12}{fmt:15}{e['ms_per_evaluation']:10.2f}{sps}{nfe}{mb}")
        ts, p2 = row["torchscript"], row["pt2"]
        if "skipped" in p2:
            continue
        line = f"  pt2 vs torchscript: {ts['ms_per_evaluation'] / p2['ms_per_evaluation']:.2f}x per evaluation"
        if "seconds_per_sample" in p2:
            line += f", {ts['seconds_per_sample'] / p2['seconds_per_sample']:.2f}x per sample"
        fm = row["flow_matching"]
        if "seconds_per_sample" in fm:
            line += f"; vs flow_matching {fm['seconds_per_sample'] / p2['seconds_per_sample']:.2f}x per sample"
        print(line)
        if "all" in p2:
            a2, ats, afm = p2["all"], ts["all"], fm["all"]
            print(f"  all {a2['samples']} images, s/sample: pt2 {a2['seconds_per_sample']:.4f}, torchscript "
                  f"{ats['seconds_per_sample']:.4f} (whole process), flow_matching {afm['seconds_per_sample']:.4f} (in process); "
                  f"pt2 vs torchscript {ats['seconds_per_sample'] / a2['seconds_per_sample']:.2f}x, vs flow_matching "
                  f"{afm['seconds_per_sample'] / a2['seconds_per_sample']:.2f}x; NFE {a2['nfe']:.1f} / "
                  f"{ats['nfe']:.1f} / {afm['nfe']:.1f}")
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
