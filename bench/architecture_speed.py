"""The architectures people train (issue 18), in one run: each exported as a .pt2 package and as a TorchScript
trace, then flowlik on both, per function evaluation (Hutchinson with 1 and 8 probes, and the exact trace) and
per score (SAMPLES samples, dopri5 at rtol = atol = 1e-5, Hutchinson with 1 probe, the whole process). Random
weights at 1x16x16 (tests/fixtures/architectures.py: the time does not depend on training).

Milliseconds per evaluation come from two fixed-step Euler runs of different lengths (their in-process
times' difference over the difference of evaluations), so loading and warm-up cancel. Every run is a
separate process with the same thread count; nothing else should run on the machine meanwhile.

    .venv/bin/python bench/architecture_speed.py --threads 1 [--json-out bench/architecture_speed.json]
    .venv/bin/python bench/architecture_speed.py --export-time [--cifar]   # item 3: export time and memory

--export-time exports torchcfm's UNet at 1x32x32 with about 2 M parameters (float32, an empty compile
cache) in a process of its own, and reports its wall time, the time of each phase and the peak resident
memory; --cifar adds the configuration torchcfm trains on CIFAR-10 (num_channels 128, about 36 M parameters).
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
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
sys.path.insert(0, str(ROOT / "bench"))
import architectures  # noqa: E402
from pt2_cache import pt2_cache_dir  # noqa: E402
from formats import run_measured  # noqa: E402

CACHE = ROOT / "build" / "bench-models" / "architectures"
SHAPE = (1, 16, 16)
# (short, long) Euler steps per estimator: the difference is the evaluations timed.
STEPS = {"hutchinson-1": (4, 16), "hutchinson-8": (2, 8), "exact": (1, 3)}
# Samples scored: a whole number of blocks for both formats (a package's block and a TorchScript module's
# are powers of two up to 32), so that neither computes padding rows the other does not. (With 4 samples the
# DiT's package, of blocks of 8, computed twice the rows of the TorchScript module: 0.57x at K = 1 where 32
# samples gave 1.18x, in one run on 2026-12-03.)
SAMPLES = 32


def exported(name):
    """(case, .pt2, .pt) of one architecture, exported once into CACHE."""
    from flowlik_export import export

    case = architectures.BUILDERS[name](shape=SHAPE)
    folder = CACHE / name
    folder.mkdir(parents=True, exist_ok=True)
    pt2, pt = folder / "model.pt2", folder / "model.pt"
    x = torch.randn((SAMPLES, *SHAPE), generator=torch.Generator().manual_seed(0)) * 0.5
    if not pt2.exists():
        start = time.perf_counter()
        export(case.module, pt2, case.contract, x[:4], num_classes=case.num_classes,
               cache_dir=str(pt2_cache_dir()))
        print(f"{name}: pt2 exported in {time.perf_counter() - start:.1f} s", flush=True)
    if not pt.exists():
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.trace's deprecation, once per model
            export(case.module, pt, case.contract, x[:4], format="torchscript", method="trace",
                   num_classes=case.num_classes)
    np.save(folder / "x.npy", x.numpy())
    if case.num_classes is not None:
        np.save(folder / "labels.npy", np.arange(SAMPLES) % case.num_classes)
    return case, pt2, pt


def flowlik(model, folder, threads, estimator, extra, env, tmp):
    report = tmp / "r.json"
    cmd = [ROOT / "build" / "flowlik", "score", model, "--data", folder / "x.npy", "--threads", threads,
           "-o", report, "-q", *extra]
    if (folder / "labels.npy").exists():
        cmd += ["--labels", folder / "labels.npy"]
    if estimator == "exact":
        cmd += ["--trace", "exact"]
    else:
        cmd += ["--trace", "hutchinson", "--probes", estimator.split("-")[1]]
    seconds, mb, _ = run_measured(cmd, env)
    return seconds, mb, json.loads(report.read_text())


def speed(names, threads, env):
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        for name in names:
            case, pt2, pt = exported(name)
            folder = pt2.parent
            row = {"model": name, "parameters": sum(p.numel() for p in case.module.parameters()),
                   "threads": threads}
            for estimator, (short, long) in STEPS.items():
                for fmt, model in (("pt2", pt2), ("torchscript", pt)):
                    _, _, a = flowlik(model, folder, threads, estimator, ["--solver", "euler", "--steps", short],
                                      env, tmp)
                    _, _, b = flowlik(model, folder, threads, estimator, ["--solver", "euler", "--steps", long],
                                      env, tmp)
                    row[f"{fmt} {estimator} ms/eval"] = 1e3 * (b["wall_time_s"] - a["wall_time_s"]) / (long - short)
            for fmt, model in (("pt2", pt2), ("torchscript", pt)):
                seconds, mb, r = flowlik(model, folder, threads, "hutchinson-1", [], env, tmp)
                row[f"{fmt} score s"] = seconds
                row[f"{fmt} score nfe"] = r["metrics"]["nfe"]["mean"]
                row[f"{fmt} peak MB"] = mb
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\nthreads {threads}; ms per evaluation of the {SAMPLES} samples (whole blocks); a score of "
          f"{SAMPLES} samples "
          f"(dopri5 1e-5, Hutchinson K = 1, whole process)")
    print(f"{'model':30}{'estimator':15}{'pt2 ms':>10}{'ts ms':>10}{'ratio':>8}")
    for row in rows:
        for estimator in STEPS:
            p, t = row[f"pt2 {estimator} ms/eval"], row[f"torchscript {estimator} ms/eval"]
            print(f"{row['model']:30}{estimator:15}{p:10.2f}{t:10.2f}{t / p:8.2f}")
        p, t = row["pt2 score s"], row["torchscript score s"]
        print(f"{row['model']:30}{'score (s)':15}{p:10.2f}{t:10.2f}{t / p:8.2f}   NFE {row['pt2 score nfe']:.0f} / "
              f"{row['torchscript score nfe']:.0f}")
    return rows


EXPORT = """
import json, logging, sys, time, torch
from torchcfm.models.unet.unet import UNetModelWrapper
from flowlik_export import export, from_torchcfm
times = {{}}
class Phases(logging.Handler):
    def emit(self, record):
        times.setdefault("log", []).append([round(time.perf_counter() - start, 1), record.getMessage()])
logging.getLogger("flowlik_export").addHandler(Phases())
logging.getLogger("flowlik_export").setLevel(logging.INFO)
torch.manual_seed(0)
unet = UNetModelWrapper(**{config})
module, contract = from_torchcfm(unet)
start = time.perf_counter()
export(module, {path!r}, contract, torch.randn(2, 3, 32, 32) if {config}["dim"][0] == 3 else torch.randn(2, 1, 32, 32),
       cache_dir=None)
times["seconds"] = time.perf_counter() - start
times["parameters"] = sum(p.numel() for p in unet.parameters())
print(json.dumps(times))
"""

CONFIGS = {
    # About 2 M parameters at 1x32x32, attention at 16x16.
    "torchcfm UNet 1x32x32 (~2 M)": dict(dim=(1, 32, 32), num_channels=32, num_res_blocks=2,
                                         channel_mult=(1, 2, 2), attention_resolutions="16", num_heads=2,
                                         num_head_channels=32, dropout=0.0),
    # torchcfm's examples/images/cifar10 training configuration.
    "torchcfm UNet CIFAR-10 (~36 M)": dict(dim=(3, 32, 32), num_channels=128, num_res_blocks=2,
                                           channel_mult=(1, 2, 2, 2), attention_resolutions="16", num_heads=4,
                                           num_head_channels=64, dropout=0.1),
}


def export_time(cifar, env):
    rows = []
    for name, config in CONFIGS.items():
        if "CIFAR" in name and not cifar:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            # An empty AOTInductor cache too: nothing compiled before counts.
            env_cold = {**env, "TORCHINDUCTOR_CACHE_DIR": os.path.join(tmp, "inductor")}
            code = EXPORT.format(config=repr(config), path=os.path.join(tmp, "m.pt2"))
            seconds, mb, out = run_measured([sys.executable, "-c", code], env_cold)
            result = json.loads(out.strip().splitlines()[-1])
            row = {"model": name, "parameters": result["parameters"], "export_s": result["seconds"],
                   "process_s": seconds, "peak_mb": mb, "log": result.get("log", [])}
            rows.append(row)
            print(json.dumps(row), flush=True)
    for row in rows:
        print(f"{row['model']}: {row['parameters'] / 1e6:.2f} M parameters, float32 export {row['export_s']:.1f} s "
              f"(process {row['process_s']:.1f} s), peak {row['peak_mb']:.0f} MB")
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", default=",".join(architectures.BUILDERS))
    ap.add_argument("--export-time", action="store_true")
    ap.add_argument("--cifar", action="store_true")
    ap.add_argument("--json-out", type=pathlib.Path)
    args = ap.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    if args.export_time:
        rows = export_time(args.cifar, env)
    else:
        rows = speed(args.models.split(","), args.threads, env)
    if args.json_out:
        args.json_out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
