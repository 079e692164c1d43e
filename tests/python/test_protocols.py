"""Published evaluation protocols as presets, and truncated-normal dequantization (issue 22), against the
closed form of a Gaussian mixture on the linear path: at flow time t the model's density is
p_t = sum_k w_k N(t mu_k, t^2 s_k^2 + (1 - t)^2), so the bound each protocol defines,

    draw m:  b(u_m) = log p_t(y(u_m)) + log|det dy/dx01| - log q(u_m) - D ln K,   x01 = (k + u_m) / K,

has an expectation over the noise q computed here by quadrature, and the bin probability it bounds,
log P(k) = log of p_t's mass on the bin, by normal distribution functions. Each protocol's own options run
(its solver, tolerances and Hutchinson probe); what the test adds is the data and the model's declarations."""
import json
import math

import numpy as np
import pytest
from numpy.polynomial.legendre import leggauss
from scipy.special import erf, logsumexp
from scipy.stats import norm

from conftest import read_per_sample, run_flowlik

LEVELS = 16
D = 2
MODEL = "path_linear_velocity_flow.pt"  # velocity on x_t = t x1 + (1 - t) x0, flow time
DECLARED = ["--levels", str(LEVELS), "--schedule", "linear:0", "--batch-size", "256"]


def mixture(fixtures):
    p = json.loads((fixtures / "params.json").read_text())["mixture"]
    return np.array(p["weights"]), np.array(p["means"]), np.array(p["scales"])


def log_p(y, t, w, mu, sd):
    """log p_t(y) of the mixture on the linear path, y [..., D]."""
    var = (t * sd) ** 2 + (1 - t) ** 2  # [C, D]
    z = y[..., None, :] - t * mu  # [..., C, D]
    log_n = -0.5 * (np.log(2 * np.pi * var) + z * z / var).sum(-1)
    return logsumexp(np.log(w) + log_n, axis=-1)


def to_model(k, u, scale):
    """y and log|det dy/dx01| of x01 = (k + u) / K under the map."""
    x01 = (k + u) / LEVELS
    if scale == "centered":
        return 2 * x01 - 1, np.full(x01.shape[:-1], D * math.log(2))
    lam = float(scale.split(":")[1])
    s = lam + (1 - 2 * lam) * x01
    return np.log(s) - np.log1p(-s), (math.log1p(-2 * lam) - np.log(s) - np.log1p(-s)).sum(-1)


def noise_rule(sigma, n=40):
    """Nodes u in [0, 1] and weights of the noise's law, and log q at the nodes, per dimension: uniform by
    Gauss-Legendre on [0, 1]; the truncated normal u = 0.5 + sigma e, |e| <= 0.5 / sigma, by Gauss-Legendre
    on e weighted by its density."""
    x, wx = leggauss(n)
    if sigma is None:
        return (x + 1) / 2, wx / 2, np.zeros(n)
    tau = 0.5 / sigma
    e = tau * x
    density = norm.pdf(e) / erf(tau / math.sqrt(2))  # of e on [-tau, tau]
    return 0.5 + sigma * e, wx * tau * density, np.log(density / sigma)


def expected_bound(k, t, params, scale, sigma=None):
    """E_q[b(u)] per sample, k [N, D]: a tensor grid of the per-dimension rule over the D = 2 dimensions."""
    u1, w1, lq1 = noise_rule(sigma)
    u = np.stack(np.meshgrid(u1, u1, indexing="ij"), -1).reshape(-1, D)  # [G, D]
    weights = np.outer(w1, w1).reshape(-1)
    log_q = (lq1[:, None] + lq1[None, :]).reshape(-1)
    out = []
    for row in k:
        y, log_det = to_model(row.astype(float), u, scale)
        b = log_p(y, t, *params) + log_det - log_q - D * math.log(LEVELS)
        out.append(np.dot(weights, b))
    return np.array(out)


def log_bin_probability(k, t, params, scale):
    """log P(k): p_t's mass on the bin's box in y (the maps are increasing per dimension)."""
    w, mu, sd = params
    lo, _ = to_model(k.astype(float), np.zeros_like(k, dtype=float), scale)
    hi, _ = to_model(k.astype(float), np.ones_like(k, dtype=float), scale)
    s = np.sqrt((t * sd) ** 2 + (1 - t) ** 2)
    out = []
    for a, b in zip(lo, hi):
        mass = np.prod(norm.cdf((b - t * mu) / s) - norm.cdf((a - t * mu) / s), axis=1)
        out.append(math.log(float(np.dot(w, mass))))
    return np.array(out)


@pytest.fixture
def bins(tmp_path):
    """40 samples of 2 levels in [0, 16), all over the centered square [-1, 1]^2."""
    k = np.random.default_rng(22).integers(0, LEVELS, size=(40, D)).astype(np.uint8)
    path = tmp_path / "k.npy"
    np.save(path, k)
    return path, k


def score(fixtures, data, tmp_path, *options, name="run"):
    csv, report = tmp_path / f"{name}.csv", tmp_path / f"{name}.json"
    run_flowlik("score", fixtures / MODEL, "--data", data, *DECLARED, *options, "--per-sample", csv,
                "-o", report, "-q")
    rows = read_per_sample(csv)
    assert all(r["status"] == "ok" for r in rows)
    return rows, json.loads(report.read_text())


def values(rows, column="log_likelihood"):
    return np.array([float(r[column]) for r in rows])


def draws(rows):
    return np.array([[float(v) for v in r["draws"].split(";")] for r in rows])


def assert_unbiased(got, expected, what):
    """The mean of got - expected is 0 within 4 standard errors of the mean."""
    r = got - expected
    se = r.std(ddof=1) / math.sqrt(len(r))
    assert abs(r.mean()) < 4 * se + 1e-4, (what, r.mean(), se)


def reported_sigma(report):
    """SIGMA of "truncated-normal:SIGMA: ..." in the report's preprocessing."""
    text = report["preprocessing"]["dequantization"]
    assert text.startswith("truncated-normal:"), text
    return float(text.split(":")[1])


def assert_settings(report, name, expected):
    protocol = report["protocol"]
    assert protocol["name"] == name and protocol["source"]
    got = {s["option"]: s["value"] for s in protocol["settings"] if s["applied"]}
    for option, value in expected.items():
        assert got[option] == value, (option, got)


def test_score_sde_is_the_mean_of_five_passes_from_eps(fixtures, bins, tmp_path):
    """score_sde: uniform noise, [-1, 1] data, from eps = 1e-5, RK45-class at 1e-5, one Rademacher probe, the
    test set 5 times with new noise, the mean of the passes."""
    data, k = bins
    rows, report = score(fixtures, data, tmp_path, "--protocol", "score-sde")
    assert_settings(report, "score-sde", {"--dequant-draws": "5", "--dequant-bound": "mean", "--rtol": "1e-5",
                                          "--noise": "rademacher", "--time-eps": "1e-5"})
    assert report["options"]["trace"] == "hutchinson" and report["options"]["probes"] == 1
    assert report["options"]["rtol"] == 1e-5 and report["options"]["solver"] == "dopri5"
    assert report["options"]["flow_time_range"] == [0.0, pytest.approx(1 - 1e-5, abs=1e-15)]
    assert report["preprocessing"]["draws"] == 5 and report["preprocessing"]["bound"].startswith("mean")
    d = draws(rows)
    np.testing.assert_allclose(values(rows), d.mean(1), rtol=0, atol=1e-9)
    expected = expected_bound(k, 1 - 1e-5, mixture(fixtures), "centered")
    assert_unbiased(values(rows), expected, "score-sde")


def test_flow_matching_is_the_importance_weighted_bound_of_fifty_draws(fixtures, bins, tmp_path):
    """Flow Matching (appendix E.2, table 4): dopri5 at 1e-5, Hutchinson, K = 50 uniform draws combined as
    logmeanexp. Each draw is unbiased for the one-draw bound; with the exact trace in place of the protocol's
    probe, the logmeanexp lies above the one-draw expectation and below the exact bin probability. With the
    protocol's one probe per draw it does not: the logmeanexp of noisy estimates is biased upward (by about
    half their variance, here several nats), which the report says."""
    data, k = bins
    params = mixture(fixtures)
    one_draw = expected_bound(k, 1.0, params, "centered")
    exact = log_bin_probability(k, 1.0, params, "centered")
    rows, report = score(fixtures, data, tmp_path, "--protocol", "flow-matching")
    assert_settings(report, "flow-matching", {"--dequant-draws": "50", "--dequant-bound": "importance-weighted",
                                              "--error-norm": "mixed", "--trace": "hutchinson"})
    assert "biased upward" in report["preprocessing"]["caveat"]
    d = draws(rows)
    assert d.shape == (40, 50)
    np.testing.assert_allclose(values(rows), logsumexp(d, axis=1) - math.log(50), rtol=0, atol=1e-9)
    assert_unbiased(d.mean(1), one_draw, "flow-matching draws")

    rows, report = score(fixtures, data, tmp_path, "--protocol", "flow-matching", "--trace", "exact",
                         name="exact")
    assert "caveat" not in report["preprocessing"]
    ll = values(rows)
    se = (ll - exact).std(ddof=1) / math.sqrt(len(ll))
    assert (ll - exact).mean() < 4 * se  # a lower bound on log P(k)
    assert (ll - one_draw).mean() > 0  # tighter than one draw's expectation
    assert (exact - ll).mean() < (exact - one_draw).mean() / 4


def test_ffjord_is_one_draw_through_the_logit_map(fixtures, bins, tmp_path):
    """FFJORD: logit map with lambda = 1e-6, one uniform draw, dopri5 at 1e-5, one Rademacher probe."""
    data, k = bins
    rows, report = score(fixtures, data, tmp_path, "--protocol", "ffjord")
    assert_settings(report, "ffjord", {"--scale": "logit:1e-6", "--dequant-draws": "1"})
    assert report["preprocessing"]["scale"] == "logit:1e-06"
    expected = expected_bound(k, 1.0, mixture(fixtures), "logit:1e-6")
    assert_unbiased(values(rows), expected, "ffjord")


def test_i_dode_takes_its_noise_from_the_schedule_at_the_data_end(fixtures, bins, tmp_path):
    """i-DODE: the truncated normal with the model's own noise at its data end, sigma_t / alpha_t in bins of
    2 / K: at t = 0.99 on the linear path, 16 * 0.01 / (2 * 0.99) bins; 5 draws, their mean."""
    data, k = bins
    rows, report = score(fixtures, data, tmp_path, "--protocol", "i-dode", "--time-range", "0,0.99")
    sigma = LEVELS * 0.01 / (2 * 0.99)
    assert reported_sigma(report) == pytest.approx(sigma, rel=1e-12)
    assert "from the schedule" in report["preprocessing"]["sources"]["dequantization"]
    assert_settings(report, "i-dode", {"--dequantization": "truncated-normal", "--dequant-bound": "mean"})
    np.testing.assert_allclose(values(rows), draws(rows).mean(1), rtol=0, atol=1e-9)
    expected = expected_bound(k, 0.99, mixture(fixtures), "centered", sigma=sigma)
    assert_unbiased(values(rows), expected, "i-dode")


def test_options_given_win_over_the_protocol_and_the_report_says_so(fixtures, bins, tmp_path):
    data, _ = bins
    _, report = score(fixtures, data, tmp_path, "--protocol", "score-sde", "--dequant-draws", "2",
                      "--time-range", "0,0.999")
    settings = {s["option"]: s for s in report["protocol"]["settings"]}
    assert not settings["--dequant-draws"]["applied"]
    assert settings["--dequant-draws"]["replaced_by"] == "option --dequant-draws"
    assert settings["--time-eps"]["replaced_by"] == "option --time-range"
    assert report["preprocessing"]["draws"] == 2
    assert report["options"]["flow_time_range"] == [0.0, 0.999]


def test_a_protocol_on_continuous_data_or_an_unknown_one_is_refused(fixtures, tmp_path):
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((3, 2), dtype=np.float32))
    proc = run_flowlik("score", fixtures / MODEL, "--data", x, "--protocol", "ffjord", check=False)
    assert proc.returncode == 2
    assert "--protocol: ffjord defines a bound on the probability of discrete (uint8) data" in proc.stderr
    proc = run_flowlik("score", fixtures / MODEL, "--data", x, "--protocol", "vdm", check=False)
    assert proc.returncode == 2 and "--protocol" in proc.stderr and "score-sde" in proc.stderr


def test_a_protocol_whose_map_is_not_the_models_is_refused(fixtures, bins, tmp_path):
    """The manifest's map is the one the model was trained on: a protocol does not replace it silently."""
    data, _ = bins
    model = tmp_path / "centered.pt"
    model.write_bytes((fixtures / MODEL).read_bytes())
    (tmp_path / "centered.pt.json").write_text(json.dumps({"data": {"scale": "centered"}}))
    proc = run_flowlik("score", model, "--data", data, "--levels", "16", "--protocol", "ffjord", check=False)
    assert proc.returncode == 2
    assert "--protocol: ffjord maps the data with scale logit:1e-06" in proc.stderr
    assert "declares scale centered" in proc.stderr
    # Naming the map settles it, and a protocol with the manifest's own map runs.
    run_flowlik("score", model, "--data", data, "--levels", "16", "--protocol", "ffjord", "--scale", "centered",
                "--solver", "rk4", "--steps", "4", "-q")
    run_flowlik("score", model, "--data", data, "--levels", "16", "--protocol", "score-sde", "--solver", "rk4",
                "--steps", "4", "-q")


@pytest.mark.parametrize("sigma", [0.15, 0.3])
def test_truncated_normal_bound_is_below_the_bin_probability_and_tightens_with_draws(
        fixtures, bins, tmp_path, sigma):
    """--dequantization truncated-normal:SIGMA: one draw is unbiased for E_q[b]; the importance-weighted bound
    never exceeds log P(k) on average and rises toward it with M (draws 0..3 are among draws 0..15)."""
    data, k = bins
    params = mixture(fixtures)
    exact = log_bin_probability(k, 1.0, params, "centered")
    common = ["--scale", "centered", "--dequantization", f"truncated-normal:{sigma}", "--dtype", "float64",
              "--rtol", "1e-8", "--atol", "1e-8"]
    means, errors = {}, {}
    for m in (1, 4, 16):
        rows, report = score(fixtures, data, tmp_path, *common, "--dequant-draws", str(m), name=f"m{m}")
        assert reported_sigma(report) == sigma
        ll = values(rows)
        means[m] = ll.mean()
        errors[m] = ll.std(ddof=1) / math.sqrt(len(ll))
        gap = exact - ll
        assert gap.mean() > -4 * gap.std(ddof=1) / math.sqrt(len(gap)), (m, gap.mean())
        if m == 1:
            assert_unbiased(ll, expected_bound(k, 1.0, params, "centered", sigma=sigma), "one draw")
    assert means[1] < means[4] < means[16] < exact.mean() + 2 * errors[16]
    assert exact.mean() - means[16] < exact.mean() - means[1]


def test_truncated_normal_from_a_schedule_without_noise_at_the_data_end_is_refused(fixtures, bins):
    data, _ = bins
    proc = run_flowlik("score", fixtures / MODEL, "--data", data, *DECLARED, "--scale", "centered",
                       "--dequantization", "truncated-normal", check=False)
    assert proc.returncode == 2
    assert "--dequantization" in proc.stderr and "give truncated-normal:SIGMA" in proc.stderr
