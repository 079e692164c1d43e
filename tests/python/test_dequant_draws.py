"""Bits/dim as papers compute them (issue 9): M dequantization draws combined as the importance-weighted
bound, checked against the exact bin probabilities of a Gaussian mixture; error bars by source; budget
advice."""
import json
import math

import numpy as np
import pytest
from scipy.stats import norm

from conftest import read_per_sample, run_flowlik

LEVELS = 16
LAMBDA = 1e-6


def mixture(fixtures):
    p = json.loads((fixtures / "params.json").read_text())["mixture"]
    return np.array(p["weights"]), np.array(p["means"]), np.array(p["scales"])


def logit_edges(k):
    """The y-interval of bin k under the logit map y = logit(lam + (1 - 2 lam) (k + u) / K), u in [0, 1)."""
    s = lambda v: LAMBDA + (1 - 2 * LAMBDA) * v / LEVELS  # noqa: E731
    lo, hi = s(k), s(k + 1)
    return np.log(lo) - np.log1p(-lo), np.log(hi) - np.log1p(-hi)


def exact_log_bin_probability(k, w, mu, sd):
    """log P(k) of the mixture's bins: a mixture of diagonal Gaussians puts on a box the sum over
    components of the product over dimensions of normal CDF differences."""
    lo, hi = logit_edges(k)  # [D] each
    per_component = np.prod(norm.cdf((hi - mu) / sd) - norm.cdf((lo - mu) / sd), axis=1)  # [C]
    return math.log(float(np.dot(w, per_component)))


@pytest.fixture
def binned(fixtures, tmp_path):
    """Integer data drawn from the mixture's own bins, and each bin's exact log-probability."""
    w, mu, sd = mixture(fixtures)
    rng = np.random.default_rng(5)
    comp = rng.choice(len(w), size=40, p=w)
    y = mu[comp] + sd[comp] * rng.standard_normal((40, mu.shape[1]))
    x01 = 1 / (1 + np.exp(-y))
    k = np.clip(np.floor((x01 - LAMBDA) / (1 - 2 * LAMBDA) * LEVELS), 0, LEVELS - 1).astype(np.uint8)
    path = tmp_path / "k.npy"
    np.save(path, k)
    return path, np.array([exact_log_bin_probability(row, w, mu, sd) for row in k])


def score_draws(fixtures, data, tmp_path, m, *extra):
    out, report = tmp_path / f"m{m}.csv", tmp_path / f"m{m}.json"
    run_flowlik("score", fixtures / "mixture.pt", "--data", data, "--levels", str(LEVELS), "--scale",
                f"logit:{LAMBDA}", "--dtype", "float64", "--rtol", "1e-8", "--atol", "1e-8",
                "--dequant-draws", str(m), "--per-sample", out, "-o", report, "-q", *extra)
    return read_per_sample(out), json.loads(report.read_text())


def test_the_bound_rises_with_draws_toward_the_exact_bin_probability(fixtures, binned, tmp_path):
    data, exact = binned
    means, errors = {}, {}
    for m in (1, 4, 16):
        rows, report = score_draws(fixtures, data, tmp_path, m)
        ll = np.array([float(r["log_likelihood"]) for r in rows])
        means[m] = ll.mean()
        errors[m] = report["metrics"]["log_likelihood"]["stderr"]
        assert report["preprocessing"]["draws"] == m
        assert ("importance-weighted" in report["preprocessing"]["bound"]) == (m > 1)
        if m > 1:
            draws = [[float(v) for v in r["draws"].split(";")] for r in rows]
            assert all(len(d) == m for d in draws)
            # The bound is the logmeanexp of the per-draw values (shared/MATH.md section 6).
            np.testing.assert_allclose(ll, [np.log(np.mean(np.exp(d))) for d in draws], atol=1e-12)
        # A lower bound on average: below the exact log P(k) within the standard error of the gap.
        gap = exact - ll
        assert gap.mean() > -2 * gap.std(ddof=1) / math.sqrt(len(gap)), (m, gap.mean())
    # Draws 0..3 are among draws 0..15 (keyed by draw): the bound rises with M, toward log P(k).
    assert means[1] < means[4] < means[16] < exact.mean() + 2 * errors[16]
    assert exact.mean() - means[16] < exact.mean() - means[1]


def test_one_draw_is_the_run_it_always_was(fixtures, binned, tmp_path):
    data, _ = binned
    rows1, _ = score_draws(fixtures, data, tmp_path, 1)
    out = tmp_path / "plain.csv"
    run_flowlik("score", fixtures / "mixture.pt", "--data", data, "--levels", str(LEVELS), "--scale",
                f"logit:{LAMBDA}", "--dtype", "float64", "--rtol", "1e-8", "--atol", "1e-8", "--per-sample", out,
                "-q")
    assert [r["log_likelihood"] for r in read_per_sample(out)] == [r["log_likelihood"] for r in rows1]
    assert all(r["draws"] == "" for r in rows1)


def test_error_bars_are_split_by_source(fixtures, binned, tmp_path):
    data, _ = binned
    _, report = score_draws(fixtures, data, tmp_path, 4, "--trace", "hutchinson", "--probes", "3",
                            "--solver", "rk4", "--steps", "20")
    parts = report["metrics"]["stderr_by_source"]["bpd"]
    assert parts["dequantization"] > 0 and parts["estimator"] > 0 and parts["data"] > 0
    assert parts["total"] == pytest.approx(report["metrics"]["bpd"]["stderr"])
    assert parts["total"] ** 2 == pytest.approx(
        parts["data"] ** 2 + parts["dequantization"] ** 2 + parts["estimator"] ** 2, rel=1e-9)
    _, exact = score_draws(fixtures, data, tmp_path, 1)
    p1 = exact["metrics"]["stderr_by_source"]["bpd"]
    # data = sqrt(total^2 - 0 - 0): equal to rounding.
    assert p1["dequantization"] is None and p1["estimator"] is None
    assert p1["data"] == pytest.approx(p1["total"], rel=1e-14)


def test_compare_splits_the_paired_error(fixtures, binned, tmp_path):
    data, _ = binned
    out = tmp_path / "c.json"
    run_flowlik("compare", fixtures / "mixture.pt", fixtures / "mixture.pt", "--data", data, "--levels",
                str(LEVELS), "--scale", "logit", "--dequant-draws", "3", "--solver", "rk4", "--steps", "10",
                "-q", "-o", out)
    parts = json.loads(out.read_text())["paired"][0]["bpd_diff_stderr_by_source"]
    # A model against itself with common random numbers: every part is exactly zero.
    assert parts["total"] == 0 and parts["dequantization"] == 0 and parts["data"] == 0


def test_draws_on_continuous_data_are_refused(fixtures, tmp_path):
    data = tmp_path / "x.npy"
    np.save(data, np.zeros((3, 2)))
    proc = run_flowlik("score", fixtures / "mixture.pt", "--data", data, "--dequant-draws", "4", check=False)
    assert proc.returncode == 2 and "--dequant-draws" in proc.stderr


def test_budget_advice_is_reported_and_does_not_change_the_run(fixtures, binned, tmp_path):
    data, _ = binned
    common = ["--levels", str(LEVELS), "--scale", "logit", "--solver", "rk4", "--steps", "10",
              "--trace", "hutchinson", "-q"]
    plain, advised = tmp_path / "p.json", tmp_path / "a.json"
    run_flowlik("score", fixtures / "mixture.pt", "--data", data, *common, "-o", plain)
    run_flowlik("score", fixtures / "mixture.pt", "--data", data, *common, "--target-stderr", "0.2", "-o", advised)
    a, p = json.loads(advised.read_text()), json.loads(plain.read_text())
    assert a["metrics"] == p["metrics"]  # the run itself is unchanged
    advice = a["budget_advice"]
    assert advice["pilot"]["draws"] == 2 and advice["pilot"]["probes"] == 2
    got = advice["advice"]
    assert got["samples"] >= 2 and got["draws"] >= 1 and got["probes"] >= 1
    # The advice reaches the target by the variance model it states.
    v = advice["per_sample_variance_bpd2"]
    reached = (v["data"] + v["one_draw"] / got["draws"] + v["one_probe"] / (got["draws"] * got["probes"])) / got["samples"]
    assert math.sqrt(reached) <= 0.2 + 1e-12
    tiny = run_flowlik("score", fixtures / "mixture.pt", "--data", data, *common, "--target-stderr", "1e-6",
                       "-o", tmp_path / "t.json")
    assert json.loads((tmp_path / "t.json").read_text())["budget_advice"]["advice"] is None
    assert tiny.returncode == 0


@pytest.mark.parametrize("solver, per_draw", [(["--solver", "euler", "--steps", "2"], 2),
                                              (["--solver", "rk4", "--steps", "3"], 12)])
def test_fixed_step_nfe_counts_every_draws_evaluations(fixtures, binned, tmp_path, solver, per_draw):
    """NFE is every evaluation spent on the sample (docs/reference.md): M draws cost M times one draw's, as
    the adaptive solvers count them (issue 19: euler gave 2/2/2 for M = 1/2/4)."""
    data, _ = binned
    for m in (1, 2, 4):
        rows, report = score_draws(fixtures, data, tmp_path, m, *solver)
        assert {int(r["nfe"]) for r in rows} == {per_draw * m}
        assert report["metrics"]["nfe"]["mean"] == per_draw * m
