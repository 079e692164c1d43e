"""`flowlik score --check-solve N`: the solve's own error, measured against a float64 re-solve, checked against
the closed form of the Gaussian fixture, and its gate."""
import json
import math

import numpy as np
import pytest

from conftest import read_per_sample, run_flowlik
from test_score_cli import gaussian_data, gaussian_log_density  # noqa: F401 (fixture)


def test_the_measured_solve_error_is_the_error_against_the_closed_form(fixtures, gaussian_data, tmp_path):  # noqa: F811
    # A coarse Euler solve has a large error; the exact log-density says how large, sample by sample. The
    # float64 dopri5 reference at 1e-7 is within 1e-5 of the closed form, so the reported error must equal the
    # closed-form error of the same samples to that.
    path, x, mu, s = gaussian_data
    report, per_sample = tmp_path / "r.json", tmp_path / "s.csv"
    markdown, html = tmp_path / "r.md", tmp_path / "r.html"
    proc = run_flowlik("score", fixtures / "gaussian.pt", "--data", path, "--solver", "euler", "--steps", "6",
                       "--check-solve", "5", "-o", report, "--per-sample", per_sample, "--markdown", markdown,
                       "--html", html)
    check = json.loads(report.read_text())["check_solve"]
    assert check["samples"] == 5 and check["samples_requested"] == 5
    assert check["reference"] == {"solver": "dopri5", "rtol": 1e-7, "atol": 1e-7, "error_norm": "rms",
                                  "dtype": "float64"}
    rows = {int(r["index"]): float(r["log_likelihood"]) for r in read_per_sample(per_sample)}
    errors = np.array([rows[i] - e for i, e in enumerate(gaussian_log_density(x, mu, s))])
    # Which 5 of the 24 were re-solved is the seeded pick; the mean and max over the picked ones must match.
    picked = [i for i in range(24) if i in _picked(24, 5, seed=0)]
    assert check["mean_abs_error_nats"] == pytest.approx(np.abs(errors[picked]).mean(), abs=1e-4)
    assert check["max_abs_error_nats"] == pytest.approx(np.abs(errors[picked]).max(), abs=1e-4)
    assert check["mean_error_nats"] == pytest.approx(errors[picked].mean(), abs=1e-4)
    assert check["mean_bpd_effect"] == pytest.approx(-errors[picked].mean() / (6 * math.log(2)), abs=1e-4)
    assert check["mean_abs_error_nats"] > 1e-3  # six Euler steps are visibly wrong
    line = f"{check['mean_abs_error_nats']:.3g} nats mean |error|"
    assert f"solve      {line}" in proc.stdout
    assert f"Solve error of 0: {line}" in markdown.read_text()
    assert f"Solve error of 0: {line}" in html.read_text()


def _picked(size, n, seed):
    offset = seed % size
    return sorted({(offset + i * size // n) % size for i in range(n)})


def test_a_tight_solve_measures_a_small_error(fixtures, gaussian_data, tmp_path):  # noqa: F811
    path, *_ = gaussian_data
    report = tmp_path / "r.json"
    run_flowlik("score", fixtures / "gaussian.pt", "--data", path, "--rtol", "1e-8", "--atol", "1e-8",
                "--check-solve", "24", "-o", report, "-q")
    check = json.loads(report.read_text())["check_solve"]
    assert check["samples"] == 24
    assert check["reference"]["solver"] == "dopri5" and check["reference"]["rtol"] == pytest.approx(1e-10)
    # float32 run against the float64 reference: the float32 arithmetic dominates, a few 1e-6 nats.
    assert check["max_abs_error_nats"] < 1e-4


def test_the_solve_error_gate_fails_with_exit_7_after_writing(fixtures, gaussian_data, tmp_path):  # noqa: F811
    path, *_ = gaussian_data
    report, junit = tmp_path / "r.json", tmp_path / "j.xml"
    proc = run_flowlik("score", fixtures / "gaussian.pt", "--data", path, "--solver", "euler", "--steps", "6",
                       "--check-solve", "4", "--max-solve-error", "1e-6", "-o", report, "--junit", junit, "-q",
                       check=False)
    assert proc.returncode == 7
    assert "gate solve error: FAILED" in proc.stderr
    r = json.loads(report.read_text())
    assert r["gates"][0]["passed"] is False and "check_solve" in r
    assert "solve error" in junit.read_text()
    ok = run_flowlik("score", fixtures / "gaussian.pt", "--data", path, "--solver", "euler", "--steps", "6",
                     "--check-solve", "4", "--max-solve-error", "1", "-q", check=False)
    assert ok.returncode == 0, ok.stderr


def test_the_gate_needs_check_solve(fixtures, gaussian_data):  # noqa: F811
    path, *_ = gaussian_data
    proc = run_flowlik("score", fixtures / "gaussian.pt", "--data", path, "--max-solve-error", "0.1", "-q",
                       check=False)
    assert proc.returncode == 2 and "--max-solve-error" in proc.stderr and "--check-solve" in proc.stderr
