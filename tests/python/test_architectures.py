"""The architectures people train (issue 18), exported with the plain call in both formats and scored with
both estimators, against an independent float64 reference (reference.py: torchdiffeq dopri5 at 1e-8 with the
exact divergence): torchcfm's attention UNet (unconditional and class-conditional), diffusers' UNet2DModel
with attention blocks as DDPM epsilon- and v-prediction, diffusers' DiT in flow time, and an EDM-style
preconditioned denoiser (data prediction in sigma time, VE prior). Random weights, 1x8x8 (the reference's
exact divergence costs D columns per step), built by tests/fixtures/architectures.py through the adapters.

Compiled packages are cached in tests/fixtures/pt2_cache.py's folder (by content), and so are the reference
values (by a hash of the model's weights, contract and data): a warm run compiles and integrates nothing
twice.
"""
import json
import os
import pathlib
import re
import sys
import warnings

import numpy as np
import pytest
import torch

from conftest import ROOT, read_per_sample, run_flowlik
import reference

sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
import architectures  # noqa: E402
from pt2_cache import cached_values, pt2_cache_dir  # noqa: E402
from flowlik_export import ExportError, export  # noqa: E402

SHAPE = (1, 8, 8)
SAMPLES = 2
CACHE = pt2_cache_dir()


def _reference_values(case, x, labels):
    """reference.log_likelihood per sample, from the cache when the same model, contract and data were
    integrated before."""
    parts = [json.dumps([case.contract, torch.__version__], sort_keys=True).encode(),
             *(value.detach().double().contiguous().numpy().tobytes() for value in case.module.state_dict().values()),
             x.numpy().tobytes(), b"" if labels is None else labels.numpy().tobytes()]
    return cached_values(case.name, parts, lambda: [
        reference.log_likelihood(case.module, case.contract, x[i], None if labels is None else labels[i:i + 1])
        for i in range(len(x))])


# CTest runs each architecture as a test of its own (FLOWLIK_ARCHITECTURES names it), so that two run side
# by side on two cores; unset, every one runs.
SELECTED = os.environ.get("FLOWLIK_ARCHITECTURES", ",".join(architectures.BUILDERS)).split(",")


def test_every_architecture_is_a_ctest_entry():
    cmake = (ROOT / "CMakeLists.txt").read_text()
    listed = re.search(r"set\(FLOWLIK_ARCHITECTURES ([^)]*)\)", cmake).group(1).split()
    assert sorted(listed) == sorted(architectures.BUILDERS), listed
    assert set(SELECTED) <= set(architectures.BUILDERS), SELECTED


def scored_data(case):
    """(x [SAMPLES, *SHAPE], labels [SAMPLES] or None): the points these tests score, seeded."""
    g = torch.Generator().manual_seed(7)
    x = torch.randn((SAMPLES, *SHAPE), generator=g) * (0.5 if case.contract.get("prior") == "standard" else 1.0)
    labels = None if case.num_classes is None else torch.randint(0, case.num_classes, (SAMPLES,), generator=g)
    return x, labels


@pytest.fixture(scope="module", params=SELECTED)
def exported(request, tmp_path_factory):
    case = architectures.BUILDERS[request.param](shape=SHAPE)
    out = tmp_path_factory.mktemp(case.name)
    x, labels = scored_data(case)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # The functions these tests call: the velocity, and the VJP for 8 probes (Hutchinson's 8 and the
        # exact trace's groups of 8); K = 1 would double the compile time for nothing tested here. The
        # default blocks (pt2.choose_blocks: 16 rows and a small block of 2 for these networks, 32 and 4
        # for the DiT): the SAMPLES rows scored here are a small run, which calls the small block
        # (checked below); in the large one they cost 5x the time of the exact trace (measured on
        # diffusers_unet_epsilon: 196 s against 38 s).
        export(case.module, out / "model.pt2", case.contract, x, num_classes=case.num_classes,
               cache_dir=str(CACHE), probes=(8,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.trace's own deprecation
        export(case.module, out / "model.pt", case.contract, x, format="torchscript", method="trace",
               num_classes=case.num_classes)
    np.save(out / "x.npy", x.numpy())
    if labels is not None:
        np.save(out / "labels.npy", labels.numpy())
    expected = _reference_values(case, x.double(), labels)
    return case, out, expected, caught


def test_the_export_costs_no_hidden_slowdown(exported):
    case, _, _, caught = exported
    from flowlik_export.pt2 import SlowdownWarning
    assert [str(w.message) for w in caught if issubclass(w.category, SlowdownWarning)] == []
    # Nor a torch warning of a slow vmap path anywhere in the export (the package's check included).
    assert [str(w.message) for w in caught if "performance drop" in str(w.message)] == []


def score(case, out, tmp_path, model, *args):
    """flowlik's per-sample log-likelihoods and estimator standard errors for x.npy."""
    args = ["score", out / model, "--data", out / "x.npy", "--threads", "1", "--per-sample", tmp_path / "s.csv",
            "-o", tmp_path / "r.json", "-q", *args]
    if case.num_classes is not None:
        args += ["--labels", out / "labels.npy"]
    run_flowlik(*args)
    rows = read_per_sample(tmp_path / "s.csv")
    return (np.array([float(r["log_likelihood"]) for r in rows]),
            np.array([float(r["estimator_stderr"] or "nan") for r in rows]))  # empty for the exact trace


# Float32 packages and modules against the float64 reference at 1e-8: the float32 network and dopri5 at
# flowlik's default 1e-5 leave a few 1e-3 nats; a wrong conversion, time direction, prior or trace shows as
# nats. Hutchinson (Rademacher probes: the package's compiled 8, the TorchScript module's 4, which runs its
# forward and VJP on each row repeated once per probe) within 5 of its own standard errors of the
# reference, plus that. The TorchScript module's exact trace (a VJP per dimension by autograd, minutes per
# adaptive solve here) is held to the package's on the same fixed steps instead, below.
@pytest.mark.parametrize("model, trace", [("model.pt2", "exact"), ("model.pt2", "hutchinson"),
                                          ("model.pt", "hutchinson")])
def test_scores_agree_with_the_independent_reference(exported, tmp_path, model, trace):
    case, out, expected, _ = exported
    probes = "8" if model.endswith(".pt2") else "4"
    extra = ["--probes", probes, "--noise", "rademacher"] if trace == "hutchinson" else []
    got, stderr = score(case, out, tmp_path, model, "--trace", trace, *extra)
    tolerance = 0.02 + (5 * stderr if trace == "hutchinson" else 0)
    assert (np.abs(got - expected) <= tolerance).all(), (case.name, got, expected, tolerance)
    if model.endswith(".pt2"):
        # A call of the large block is costly here, so the package has a small one, which a run of
        # SAMPLES rows calls (run_block: the smallest, as none is filled more than half by 2 rows but 2).
        from flowlik_export import pt2

        blocks = [int(b) for b in pt2.load_function(out / model, "vjp", "float32", 8).get_metadata()
                  ["flowlik.blocks"].split(",")]
        assert len(blocks) == 2, (case.name, blocks)
        assert json.loads((tmp_path / "r.json").read_text())["options"]["rows_per_call"] == blocks[1]


def test_both_formats_give_the_same_exact_trace_on_the_same_steps(exported, tmp_path):
    # RK4 on 3 fixed steps (12 evaluations): the same evaluation points in both formats, so the values
    # differ only by the float32 network's rounding in each (measured: ~1e-5 nats on the digits MLP).
    case, out, _, _ = exported
    fixed = ["--trace", "exact", "--solver", "rk4", "--steps", "3"]
    package, _ = score(case, out, tmp_path, "model.pt2", *fixed)
    module, _ = score(case, out, tmp_path, "model.pt", *fixed)
    assert np.abs(package - module).max() <= 1e-3, (case.name, package, module)


@pytest.mark.skipif("torchcfm_unet" not in SELECTED, reason="run with the torchcfm_unet entry")
def test_a_model_that_hard_codes_float32_is_named_when_float64_is_asked(tmp_path):
    case = architectures.torchcfm_unet(shape=SHAPE)
    with pytest.raises(ExportError) as error:
        export(case.module, tmp_path / "m.pt2", case.contract, torch.randn(2, *SHAPE), dtypes=("float64",))
    message = str(error.value)
    assert message.startswith("dtypes: the model does not run in float64 ("), message
    assert "unet.py" in message and "fixed dtype" in message, message
    assert not (tmp_path / "m.pt2").exists()
