"""Agreement with Meta's flow_matching (ODESolver.compute_likelihood, torchdiffeq underneath) on the same
exported model (the embedded digits example) and the same model-space data, per sample."""
import importlib.metadata
import pathlib
import sys

import numpy as np
import torch

from conftest import ROOT, run_flowlik, read_per_sample

sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
import peer  # noqa: E402
from pt2_cache import cached_values  # noqa: E402

MODEL = ROOT / "examples" / "digits" / "model.pt"


def model_space_digits(n, dtype):
    k = np.load(ROOT / "examples" / "digits" / "test.npy")[:n].astype(np.float64)
    u = np.random.default_rng(0).random(k.shape)
    return (2 * (k + u) / 17 - 1).astype(dtype)


def flowlik_log_likelihood(tmp_path, y, *args):
    data, out = tmp_path / "y.npy", tmp_path / "s.csv"
    np.save(data, y)
    run_flowlik("score", MODEL, "--data", data, "--per-sample", out, "-q", *args)
    return np.array([float(r["log_likelihood"]) for r in read_per_sample(out)])


def flow_matching_log_likelihood(y, tolerance):
    """flow_matching's per-sample values for y at atol = rtol = tolerance, from the cache when it computed
    them before for the same model, data and versions (one thread: a minute and a half in float64 at 1e-8)."""
    parts = [MODEL.read_bytes(), y.tobytes(), str((y.dtype, tolerance)).encode(), torch.__version__.encode(),
             importlib.metadata.version("flow_matching").encode(), pathlib.Path(peer.__file__).read_bytes()]

    def compute():
        torch.set_num_threads(1)
        values, _ = peer.flow_matching_log_likelihood(MODEL, torch.from_numpy(y), atol=tolerance, rtol=tolerance)
        return values.tolist()

    return np.array(cached_values("flow-matching-digits", parts, compute))


def test_float64_tight_tolerance_agrees_closely(tmp_path):
    y = model_space_digits(3, np.float64)
    ours = flowlik_log_likelihood(tmp_path, y, "--dtype", "float64", "--rtol", "1e-8", "--atol", "1e-8")
    theirs = flow_matching_log_likelihood(y, 1e-8)
    # Both solve the same ODE to a tolerance of 1e-8 per step, with different error norms (max here, RMS
    # there) and step sequences: their values, ~ -111 nats, agree far inside 1e-4 nats when both are right,
    # while any error in the trace, the time direction or the prior would show as nats.
    np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=0)


def test_float32_default_tolerance_agrees_within_the_solver_error(tmp_path):
    y = model_space_digits(8, np.float32)
    ours = flowlik_log_likelihood(tmp_path, y)
    theirs = flow_matching_log_likelihood(y, 1e-5)
    # rtol = atol = 1e-5 per step over ~30-60 steps in float32 on |log p| ~ 110: the solvers' global errors
    # are of order 1e-3 relative; measured differences are ~2e-2 nats at most. 0.1 nats (1e-3 relative)
    # bounds that with room, and is still a hundredth of a bit per dimension.
    np.testing.assert_allclose(ours, theirs, atol=0.1, rtol=0)
    assert abs(ours.mean() - theirs.mean()) < 0.05
