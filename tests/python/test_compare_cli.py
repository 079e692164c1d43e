"""`flowlik compare` and the regression gates: paired differences against closed forms, common random
numbers, exit codes, JUnit XML and Markdown."""
import json
import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from conftest import run_flowlik


def gaussian(fixtures, name):
    p = json.loads((fixtures / "params.json").read_text())[name]
    return np.array(p["means"][0]), np.array(p["scales"][0])


def log_normal(x, mu, s):
    z = (x - mu) / s
    return -0.5 * (z**2).sum(1) - np.log(s).sum() - 0.5 * len(mu) * math.log(2 * math.pi)


@pytest.fixture
def continuous(fixtures, tmp_path):
    mu, s = gaussian(fixtures, "gaussian")
    x = mu + s * np.random.default_rng(5).standard_normal((30, 6))
    path = tmp_path / "x.npy"
    np.save(path, x.reshape(30, 2, 3))
    return path, x


def test_paired_difference_matches_the_closed_form(fixtures, continuous, tmp_path):
    path, x = continuous
    report = tmp_path / "c.json"
    run_flowlik("compare", fixtures / "gaussian.pt", fixtures / "gaussian_b.pt", "--data", path, "--dtype",
                "float64", "--rtol", "1e-9", "--atol", "1e-9", "-o", report, "-q")
    r = json.loads(report.read_text())
    diff = log_normal(x, *gaussian(fixtures, "gaussian_b")) - log_normal(x, *gaussian(fixtures, "gaussian"))
    p = r["paired"][0]
    assert (p["a"], p["b"]) == (0, 1)
    assert p["log_likelihood_diff"]["mean"] == pytest.approx(diff.mean(), abs=1e-6)
    assert p["log_likelihood_diff"]["stderr"] == pytest.approx(diff.std(ddof=1) / math.sqrt(30), rel=1e-4)
    d = 6 * math.log(2)
    assert p["bpd_diff"]["mean"] == pytest.approx(-diff.mean() / d, abs=1e-6)
    assert len(r["models"]) == 2 and r["models"][1]["model"]["path"].endswith("gaussian_b.pt")


def test_common_random_numbers_make_a_model_equal_to_itself(fixtures, tmp_path):
    data = tmp_path / "u8.npy"
    np.save(data, np.random.default_rng(6).integers(0, 256, size=(20, 2), dtype=np.uint8))
    report = tmp_path / "c.json"
    run_flowlik("compare", fixtures / "mixture.pt", fixtures / "mixture.pt", "--data", data, "--scale",
                "centered", "--trace", "hutchinson", "--solver", "rk4", "--steps", "20", "-o", report, "-q")
    r = json.loads(report.read_text())
    # Each model alone has spread from the data, the noise and the probes; the paired difference has
    # none, because every sample saw the same noise and probes under both.
    assert r["models"][0]["metrics"]["bpd"]["stderr"] > 0.01
    assert r["paired"][0]["bpd_diff"]["mean"] == 0.0
    assert r["paired"][0]["bpd_diff"]["stderr"] == 0.0


@pytest.mark.parametrize("limit,rule,code", [
    ("10", "mean", 0),
    ("-10", "mean", 7),
    ("-10", "significant", 7),
])
def test_gate_exit_codes_and_ci_outputs(fixtures, continuous, tmp_path, limit, rule, code):
    path, _ = continuous
    junit, md = tmp_path / "j.xml", tmp_path / "s.md"
    proc = run_flowlik("compare", fixtures / "gaussian.pt", fixtures / "gaussian_b.pt", "--data", path,
                       "--max-regression", limit, "--gate-rule", rule, "--junit", junit, "--markdown", md,
                       "-q", check=False)
    assert proc.returncode == code, proc.stderr
    suites = ET.parse(junit).getroot()
    assert suites.tag == "testsuites" and suites.get("tests") == "1"
    case = suites.find("testsuite/testcase")
    assert case.get("classname") == "flowlik.regression" and "gaussian_b.pt" in case.get("name")
    assert (case.find("failure") is not None) == (code == 7)
    assert suites.get("failures") == ("1" if code == 7 else "0")
    text = md.read_text()
    assert "| # | model | bpd |" in text and "Δ bpd" in text
    assert ("❌" in text) == (code == 7)


def test_a_regression_within_its_noise_passes_the_significance_rule(fixtures, continuous, tmp_path):
    path, x = continuous
    report = tmp_path / "c.json"
    run_flowlik("compare", fixtures / "gaussian.pt", fixtures / "gaussian_b.pt", "--data", path, "-o", report,
                "-q")
    p = json.loads(report.read_text())["paired"][0]["bpd_diff"]
    # A limit just under the mean regression but above its lower bound: the mean rule fails, the
    # significance rule passes.
    limit = p["mean"] - 0.5 * (p["mean"] - p["ci95"][0])
    assert p["ci95"][0] < limit < p["mean"]
    for rule, code in (("mean", 7), ("significant", 0)):
        proc = run_flowlik("compare", fixtures / "gaussian.pt", fixtures / "gaussian_b.pt", "--data", path,
                           "--max-regression", repr(limit), "--gate-rule", rule, "-q", check=False)
        assert proc.returncode == code, (rule, proc.stderr)


def test_score_against_a_baseline_report(fixtures, continuous, tmp_path):
    path, _ = continuous
    base = tmp_path / "base.json"
    run_flowlik("score", fixtures / "gaussian.pt", "--data", path, "-o", base, "-q")
    same = run_flowlik("score", fixtures / "gaussian.pt", "--data", path, "--baseline", base,
                       "--max-regression", "0", "-q", check=False)
    assert same.returncode == 0 and "passed" in same.stderr
    report = tmp_path / "r.json"
    worse = run_flowlik("score", fixtures / "gaussian_b.pt", "--data", path, "--baseline", base,
                        "--max-regression", "-5", "-o", report, "-q", check=False)
    assert worse.returncode == 7 and "FAILED" in worse.stderr
    assert json.loads(report.read_text())["gates"][0]["passed"] is False  # results written all the same
    other = tmp_path / "other.npy"
    np.save(other, np.zeros((3, 2, 3)))
    proc = run_flowlik("score", fixtures / "gaussian.pt", "--data", other, "--baseline", base,
                       "--max-regression", "0", "-q", check=False)
    assert proc.returncode == 3 and "baseline was measured on other data" in proc.stderr
    half = run_flowlik("score", fixtures / "gaussian.pt", "--data", path, "--max-regression", "0", "-q",
                       check=False)
    assert half.returncode == 2 and "--baseline" in half.stderr
