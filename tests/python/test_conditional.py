"""Class-conditional models: labels from a .npy file, scored as log p(x | y) against the closed form."""
import json
import math

import numpy as np
import pytest

from conftest import run_flowlik, read_per_sample


def test_scores_log_p_x_given_y_exactly(fixtures, tmp_path):
    p = json.loads((fixtures / "params.json").read_text())["conditional"]
    mu, s = np.array(p["means"]), np.array(p["scales"])
    rng = np.random.default_rng(11)
    y = rng.integers(0, 3, size=15)
    x = mu[y] + s[y] * rng.standard_normal((15, 2))
    data, labels, out, report = tmp_path / "x.npy", tmp_path / "y.npy", tmp_path / "s.csv", tmp_path / "r.json"
    np.save(data, x)
    np.save(labels, y.astype(np.int64))
    run_flowlik("score", fixtures / "conditional.pt", "--data", data, "--labels", labels, "--dtype", "float64",
                "--rtol", "1e-9", "--atol", "1e-9", "--trace", "hutchinson", "--probes", "3", "--batch-size", "4",
                "--per-sample", out, "-o", report, "-q")
    z = (x - mu[y]) / s[y]
    exact = -0.5 * (z**2).sum(1) - np.log(s[y]).sum(1) - math.log(2 * math.pi)
    got = np.array([float(r["log_likelihood"]) for r in read_per_sample(out)])
    # The conditional fields are diagonal Gaussians, so Rademacher probes are exact (see the trace tests),
    # and the check is as tight as the solver.
    np.testing.assert_allclose(got, exact, atol=1e-6)
    r = json.loads(report.read_text())
    assert r["model"]["contract"]["conditioning"] == "label"
    assert r["model"]["contract"]["sources"]["conditioning"] == "manifest (embedded)"
    assert r["data"]["labels"] == str(labels)


def test_label_errors_are_named(fixtures, tmp_path):
    data, labels = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(data, np.zeros((4, 2)))
    np.save(labels, np.zeros(3, dtype=np.int64))
    proc = run_flowlik("score", fixtures / "conditional.pt", "--data", data, check=False)
    assert proc.returncode == 2 and "--labels" in proc.stderr and "class-conditional" in proc.stderr
    proc = run_flowlik("score", fixtures / "conditional.pt", "--data", data, "--labels", labels, check=False)
    assert proc.returncode == 3 and "labels must have shape (4,), one per sample, found (3)" in proc.stderr
    np.save(labels, np.zeros(4, dtype=np.int64))
    proc = run_flowlik("score", fixtures / "gaussian.pt", "--data", tmp_path / "x.npy", "--labels", labels,
                       check=False)
    assert proc.returncode == 2 and "is not class-conditional" in proc.stderr
    np.save(labels, np.zeros(4, dtype=np.float32))
    proc = run_flowlik("score", fixtures / "conditional.pt", "--data", data, "--labels", labels, check=False)
    assert proc.returncode == 3 and "labels must be integers" in proc.stderr
    proc = run_flowlik("score", fixtures / "conditional.pt", "--data", data, "--conditioning", "none",
                       check=False)
    assert proc.returncode == 4 and "forward takes 3 arguments, expected 2" in proc.stderr


def test_int64_data_are_refused(fixtures, tmp_path):
    data = tmp_path / "x.npy"
    np.save(data, np.zeros((4, 2), dtype=np.int64))
    proc = run_flowlik("score", fixtures / "mixture.pt", "--data", data, check=False)
    assert proc.returncode == 3 and "int64 data are not scored" in proc.stderr


def test_inspect_runs_a_conditional_model(fixtures):
    out = json.loads(run_flowlik("inspect", fixtures / "conditional.pt", "--json").stdout)
    assert out["contract"]["conditioning"] == "label" and out["smoke"]["one_sample"]["status"] == "ok"
