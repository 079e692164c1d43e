"""`flowlik sample` and `score --round-trip` (issue 22): the flow run forward from the prior, on the
Gaussian-mixture field whose density at the data end is known in closed form. The log-density reported for
each generated point equals the mixture's density there, and scoring the generated points backward with
`score` gives the same values to the solve's tolerance: the forward/backward agreement the peers ask for."""
import json
import math
import shutil

import numpy as np
import pytest
from scipy.special import logsumexp

from conftest import read_per_sample, run_flowlik

TIGHT = ["--dtype", "float64", "--rtol", "1e-9", "--atol", "1e-9"]


@pytest.fixture
def mixture_model(fixtures, tmp_path):
    """mixture.pt with a manifest beside it declaring the shape of one sample, which sampling needs."""
    model = tmp_path / "mixture.pt"
    shutil.copy(fixtures / "mixture.pt", model)
    (tmp_path / "mixture.pt.json").write_text(json.dumps({"shape": [2]}))
    return model


def mixture_log_density(fixtures, x):
    p = json.loads((fixtures / "params.json").read_text())["mixture"]
    w, mu, sd = np.array(p["weights"]), np.array(p["means"]), np.array(p["scales"])
    z = (x[:, None, :] - mu) / sd
    log_n = -0.5 * (z * z).sum(-1) - np.log(sd).sum(-1) - x.shape[1] / 2 * math.log(2 * math.pi)
    return logsumexp(np.log(w) + log_n, axis=1)


def sample(model, tmp_path, n, *options, name="s"):
    out = {k: tmp_path / f"{name}{suffix}" for k, suffix in
           [("samples", ".npy"), ("csv", ".csv"), ("report", ".json")]}
    run_flowlik("sample", model, "-n", n, "--samples", out["samples"], "--per-sample", out["csv"],
                "-o", out["report"], "-q", *options)
    return (np.load(out["samples"]), read_per_sample(out["csv"]), json.loads(out["report"].read_text()))


def column(rows, name):
    return np.array([float(r[name]) for r in rows])


def test_each_generated_point_has_the_mixtures_density(fixtures, mixture_model, tmp_path):
    x, rows, report = sample(mixture_model, tmp_path, 64, *TIGHT)
    assert x.shape == (64, 2) and x.dtype == np.float32
    assert [int(r["index"]) for r in rows] == list(range(64))
    assert all(r["status"] == "ok" for r in rows)
    ll = column(rows, "log_likelihood")
    np.testing.assert_allclose(ll, mixture_log_density(fixtures, x.astype(np.float64)), atol=1e-5)
    np.testing.assert_allclose(column(rows, "bpd"), -ll / (2 * math.log(2)), rtol=1e-12)
    assert report["tool"]["command"] == "sample" and report["generated"]["N"] == 64
    assert report["metrics"]["log_likelihood"]["mean"] == pytest.approx(ll.mean(), rel=1e-12)
    # The points are the mixture's: its components' means are far apart, so the samples gather around them.
    assert np.abs(x).max() < 10 and x[:, 0].std() > 1


def test_scoring_the_generated_points_backward_gives_the_same_values(fixtures, mixture_model, tmp_path):
    x, rows, _ = sample(mixture_model, tmp_path, 32, *TIGHT)
    data = tmp_path / "generated.npy"
    np.save(data, x.astype(np.float64))
    back = tmp_path / "back.csv"
    run_flowlik("score", mixture_model, "--data", data, *TIGHT, "--per-sample", back, "-q")
    np.testing.assert_allclose(column(read_per_sample(back), "log_likelihood"), column(rows, "log_likelihood"),
                               atol=1e-5)


def test_hutchinson_forward_is_unbiased_and_reports_its_own_error(fixtures, mixture_model, tmp_path):
    # Gaussian probes: in D = 2 the four Rademacher probes of a sample are often all alike (+-(1, 1) or
    # +-(1, -1)), which gives a spread of exactly 0.
    x, rows, _ = sample(mixture_model, tmp_path, 64, "--trace", "hutchinson", "--probes", "4", "--noise",
                        "gaussian", *TIGHT)
    ll = column(rows, "log_likelihood")
    se = column(rows, "estimator_stderr")
    assert np.all(se > 0)
    residual = ll - mixture_log_density(fixtures, x.astype(np.float64))
    assert abs(residual.mean()) < 4 * math.sqrt((se ** 2).sum()) / len(se) + 1e-5


def test_shards_draw_the_same_points_as_one_run(mixture_model, tmp_path):
    whole, rows, _ = sample(mixture_model, tmp_path, 10, "--solver", "tsit5", name="whole")
    parts = [sample(mixture_model, tmp_path, 10, "--solver", "tsit5", "--shard", f"{i}/2", name=f"p{i}")
             for i in range(2)]
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), whole)
    assert [r["log_likelihood"] for p in parts for r in p[1]] == [r["log_likelihood"] for r in rows]
    assert parts[1][2]["shard"]["first"] == 5
    # merge joins scored shards; a sample run's shards are joined by concatenating their files.
    proc = run_flowlik("merge", tmp_path / "p0.json", tmp_path / "p1.json", "-o", tmp_path / "m.json", check=False)
    assert proc.returncode == 3 and "a report of flowlik sample" in proc.stderr


def test_fixed_step_solvers_and_the_data_space_output(mixture_model, tmp_path):
    levels = tmp_path / "levels.npy"
    x, _, report = sample(mixture_model, tmp_path, 16, "--solver", "rk4", "--steps", "50", "--scale", "centered",
                          "--levels", "16", "--data-samples", levels)
    k = np.load(levels)
    assert k.dtype == np.uint8 and k.shape == (16, 2)
    np.testing.assert_array_equal(k, np.clip(np.floor((x.astype(np.float64) + 1) / 2 * 16), 0, 15))
    assert report["data_map"]["scale"] == "centered" and report["data_map"]["levels"] == 16


def test_a_conditional_model_generates_each_class_with_its_density(fixtures, tmp_path):
    """conditional.pt: class y is N(mu_y, diag(s_y^2)); --labels gives each sample's class, and its
    log-likelihood is log p(x | y) of that Gaussian at the generated point."""
    p = json.loads((fixtures / "params.json").read_text())["conditional"]
    mu, sd = np.array(p["means"]), np.array(p["scales"])
    y = np.array([0, 1, 2, 2, 1, 0, 1, 2], dtype=np.int64)
    labels = tmp_path / "y.npy"
    np.save(labels, y)
    x, rows, report = sample(fixtures / "conditional.pt", tmp_path, 8, "--labels", labels, *TIGHT)
    z = (x.astype(np.float64) - mu[y]) / sd[y]
    expected = (-0.5 * z * z - np.log(sd[y]) - 0.5 * math.log(2 * math.pi)).sum(1)
    np.testing.assert_allclose(column(rows, "log_likelihood"), expected, atol=1e-5)
    assert report["generated"]["labels"].endswith("y.npy")
    proc = run_flowlik("sample", fixtures / "conditional.pt", "-n", "5", "--labels", labels, "-q", "-o",
                       tmp_path / "r.json", check=False)
    assert proc.returncode == 3 and "y.npy" in proc.stderr


def test_models_that_cannot_be_sampled_are_refused(fixtures, tmp_path):
    proc = run_flowlik("sample", fixtures / "mixture.pt", "-n", "3", "-o", tmp_path / "r.json", check=False)
    assert proc.returncode == 4 and "declares no 'shape'" in proc.stderr
    proc = run_flowlik("sample", fixtures / "conditional.pt", "-n", "3", "-o", tmp_path / "r.json", check=False)
    assert proc.returncode == 2 and "--labels: " in proc.stderr and "class-conditional" in proc.stderr
    proc = run_flowlik("sample", fixtures / "vp_noise_embedded.pt", "-n", "3", "--data-samples",
                       tmp_path / "k.npy", check=False)
    assert proc.returncode == 2 and "--data-samples" in proc.stderr and "--scale" in proc.stderr


def test_round_trip_reports_the_reconstruction_error_of_the_solve(fixtures, tmp_path):
    rng = np.random.default_rng(3)
    data = tmp_path / "x.npy"
    np.save(data, rng.standard_normal((12, 2)) * 1.5)
    tight, loose = tmp_path / "tight.json", tmp_path / "loose.json"
    run_flowlik("score", fixtures / "mixture.pt", "--data", data, *TIGHT, "--round-trip", "-q", "-o", tight)
    run_flowlik("score", fixtures / "mixture.pt", "--data", data, "--solver", "euler", "--steps", "8",
                "--round-trip", "-q", "-o", loose)
    t, lo = json.loads(tight.read_text())["round_trip"], json.loads(loose.read_text())["round_trip"]
    assert t["samples"] == 12 and t["failed"] == 0
    # The flow contracts toward the mixture's narrow components, so an error in x0 of the tolerance's
    # size comes back larger: 1.6e-6 at rtol 1e-9.
    assert 0 <= t["mean_abs_error"] <= t["max_abs_error"] < 1e-5
    # Eight Euler steps each way do not retrace their path: the check sees the solve's error.
    assert lo["max_abs_error"] > 1e-2


def test_outputs_sample_does_not_write_are_refused(mixture_model, tmp_path):
    for option in ["--html", "--history", "--data", "--protocol"]:
        proc = run_flowlik("sample", mixture_model, "-n", "2", option, tmp_path / "x", check=False)
        assert proc.returncode == 2 and option in proc.stderr, option
