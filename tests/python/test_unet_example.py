"""The embedded attention-UNet example (examples/digits/unet.pt2: torchcfm's UNetModelWrapper trained on the
digits by train_unet.py, exported through from_torchcfm): it scores the digits' [N, 8, 8] images with its
[1, 8, 8] contract, agrees per sample with an independent float64 reference (reference.py) on the eager
model with the shipped weights, and models the digits better than the uniform baseline."""
import json
import pathlib
import sys

import numpy as np
import torch

from conftest import ROOT, read_per_sample, run_flowlik
import reference

DIGITS = ROOT / "examples" / "digits"
sys.path.insert(0, str(DIGITS))
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
from pt2_cache import cached_values  # noqa: E402


def eager_unet():
    from train_unet import CONFIG, build
    from flowlik_export import from_torchcfm

    unet = build()
    unet.load_state_dict(torch.load(DIGITS / "unet_weights.pt", weights_only=True))
    module, contract = from_torchcfm(unet.eval())
    manifest = json.loads(torch._C._aoti.AOTIModelPackageLoader.load_metadata_from_package(
        str(DIGITS / "unet.pt2"), "velocity_float32")["flowlik.json"])
    assert manifest["shape"] == list(CONFIG["dim"])
    return module, manifest


def test_the_unet_agrees_with_the_independent_reference(tmp_path):
    module, manifest = eager_unet()
    k = np.load(DIGITS / "test.npy")[:2].astype(np.float64)
    u = np.random.default_rng(0).random(k.shape)
    y = (2 * (k + u) / 17 - 1).astype(np.float32)  # model space, dequantized once: continuous data
    np.save(tmp_path / "y.npy", y)
    run_flowlik("score", DIGITS / "unet.pt2", "--data", tmp_path / "y.npy", "--trace", "exact", "--rtol",
                "1e-6", "--atol", "1e-6", "--per-sample", tmp_path / "s.csv", "-q", "--threads", "1")
    got = np.array([float(r["log_likelihood"]) for r in read_per_sample(tmp_path / "s.csv")])
    parts = [(DIGITS / "unet_weights.pt").read_bytes(), y.tobytes(), torch.__version__.encode()]
    values = cached_values("digits-unet", parts, lambda: [
        reference.log_likelihood(module, manifest, torch.from_numpy(y[i]).reshape(1, 8, 8)) for i in range(len(y))])
    # float32 package at 1e-6 against float64 at 1e-8.
    assert np.abs(got - np.array(values)).max() <= 0.01, (got, values)


def test_the_unet_models_the_digits(tmp_path):
    report = tmp_path / "r.json"
    np.save(tmp_path / "first48.npy", np.load(DIGITS / "test.npy")[:48])
    # Hutchinson with one probe: the exact trace costs this UNet 35 times as much (64 VJPs per evaluation).
    run_flowlik("score", DIGITS / "unet.pt2", "--data", tmp_path / "first48.npy", "--trace", "hutchinson",
                "-o", report, "-q")
    r = json.loads(report.read_text())
    bpd = r["metrics"]["bpd"]["mean"]
    assert r["model"]["format"] == "aoti-package"
    assert bpd < np.log2(17) - 1.0, bpd  # the uniform distribution over 17 levels: 4.09 bpd
