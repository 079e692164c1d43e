"""--quadrature gauss-legendre against the default (augmented) on the architectures people train (issue 18):
each model of tests/fixtures/architectures.py at 1x8x8 (random weights, the architecture tests' models and
data: 2 samples, a package with a block of 2 rows, float32), scored by flowlik with the exact trace, dopri5,
one thread, at each tolerance; the error is against the architecture tests' independent float64 reference
(tests/python/reference.py at 1e-8, cached by content as the tests cache it). The time is the whole
process's user CPU seconds (one run each; nothing else should run on the machine meanwhile).

    .venv/bin/python bench/quadrature_architectures.py [--models diffusers_unet_epsilon,edm_denoiser]
"""
import argparse
import os
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
sys.path.insert(0, str(ROOT / "tests" / "python"))
import architectures  # noqa: E402
from pt2_cache import pt2_cache_dir  # noqa: E402
from test_architectures import SAMPLES, SHAPE, _reference_values, scored_data  # noqa: E402
from flowlik_export import export  # noqa: E402

BIN = ROOT / "build" / "flowlik"


def score(model, data, quadrature, tolerance, work):
    """(user CPU seconds, per-sample log-likelihoods, per-sample NFE) of one flowlik process."""
    per_sample = work / "s.csv"
    command = [str(BIN), "score", str(model), "--data", str(data), "--threads", "1", "--trace", "exact",
               "--quadrature", quadrature, "--rtol", str(tolerance), "--atol", str(tolerance), "-q",
               "--per-sample", str(per_sample), "-o", str(work / "r.json")]
    before = os.times()
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    after = os.times()
    rows = np.genfromtxt(per_sample, delimiter=",", names=True, dtype=None, encoding="utf-8")
    return (after.children_user - before.children_user, rows["log_likelihood"].astype(float),
            rows["nfe"].astype(int))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="diffusers_unet_epsilon,edm_denoiser")
    ap.add_argument("--tolerances", default="1e-5,1e-6")
    args = ap.parse_args()
    print("| model | quadrature | rtol = atol | CPU s | NFE per sample | error per sample (nats) |")
    print("|---|---|---|---|---|---|")
    for name in args.models.split(","):
        case = architectures.BUILDERS[name](shape=SHAPE)
        x, labels = scored_data(case)
        if labels is not None:
            raise SystemExit(f"{name}: a class-conditional model; this benchmark passes no labels")
        expected = np.array(_reference_values(case, x.double(), labels))
        with tempfile.TemporaryDirectory() as tmp:
            work = pathlib.Path(tmp)
            export(case.module, work / "model.pt2", case.contract, x, cache_dir=str(pt2_cache_dir()), probes=(8,),
                   block=SAMPLES)
            np.save(work / "x.npy", x.numpy())
            for quadrature in ("augmented", "gauss-legendre"):
                for tolerance in map(float, args.tolerances.split(",")):
                    seconds, got, nfe = score(work / "model.pt2", work / "x.npy", quadrature, tolerance, work)
                    errors = ", ".join(f"{e:.1e}" for e in np.abs(got - expected))
                    print(f"| {name} | {quadrature} | {tolerance:g} | {seconds:.1f} | "
                          f"{', '.join(map(str, nfe))} | {errors} |", flush=True)


if __name__ == "__main__":
    main()
