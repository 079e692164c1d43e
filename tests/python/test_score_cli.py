"""`flowlik score` end to end: closed-form values, the report and CSV contents, and every input error."""
import hashlib
import json
import math

import numpy as np
import pytest

from conftest import run_flowlik, read_per_sample


def gaussian_params(fixtures):
    p = json.loads((fixtures / "params.json").read_text())["gaussian"]
    return np.array(p["means"][0]), np.array(p["scales"][0]), p["shape"]


def gaussian_log_density(x, mu, s):
    """log N(x; mu, diag(s^2)) per row: the exact log-likelihood of the Gaussian fixture's target."""
    z = (x - mu) / s
    return -0.5 * (z**2).sum(1) - np.log(s).sum() - 0.5 * len(mu) * math.log(2 * math.pi)


def read_csv(path):
    return read_per_sample(path)


@pytest.fixture
def gaussian_data(fixtures, tmp_path):
    mu, s, shape = gaussian_params(fixtures)
    rng = np.random.default_rng(0)
    x = mu + s * rng.standard_normal((24, mu.size))
    path = tmp_path / "gaussian.npy"
    np.save(path, x.reshape(24, *shape))
    return path, x, mu, s


def test_continuous_scores_match_the_closed_form(fixtures, gaussian_data, tmp_path):
    path, x, mu, s = gaussian_data
    report, per_sample = tmp_path / "r.json", tmp_path / "s.csv"
    run_flowlik("score", fixtures / "gaussian.pt", "--data", path, "--dtype", "float64",
                "--rtol", "1e-9", "--atol", "1e-9", "-o", report, "--per-sample", per_sample, "-q")
    exact = gaussian_log_density(x, mu, s)
    rows = read_csv(per_sample)
    assert [int(r["index"]) for r in rows] == list(range(24))
    got = np.array([float(r["log_likelihood"]) for r in rows])
    np.testing.assert_allclose(got, exact, atol=1e-6)
    d = mu.size
    np.testing.assert_allclose([float(r["bpd"]) for r in rows], -exact / (d * math.log(2)), atol=1e-6)
    assert {r["status"] for r in rows} == {"ok"}

    r = json.loads(report.read_text())
    m = r["metrics"]
    assert m["log_likelihood"]["mean"] == pytest.approx(exact.mean(), abs=1e-6)
    se = exact.std(ddof=1) / math.sqrt(24)
    assert m["log_likelihood"]["stderr"] == pytest.approx(se, rel=1e-6)
    assert m["bpd"]["mean"] == pytest.approx(-exact.mean() / (d * math.log(2)), abs=1e-6)
    lo, hi = m["bpd"]["ci95"]
    assert lo < m["bpd"]["mean"] < hi
    assert m["estimator_stderr"]["log_likelihood"] is None  # exact trace: no estimator error
    assert m["nfe"]["max"] >= m["nfe"]["mean"] > 0
    assert r["data"]["N"] == 24 and r["data"]["D"] == 6 and r["data"]["shape"] == [2, 3]
    assert r["data"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert r["model"]["sha256"] == hashlib.sha256((fixtures / "gaussian.pt").read_bytes()).hexdigest()
    assert r["options"]["solver"] == "dopri5" and r["options"]["rtol"] == 1e-9
    assert r["preprocessing"]["kind"] == "continuous"
    assert r["samples"] == {"total": 24, "ok": 24, "excluded": 0}
    assert r["tool"]["name"] == "flowlik" and r["wall_time_s"] > 0


def test_gauss_legendre_quadrature_matches_the_closed_form(fixtures, gaussian_data, tmp_path):
    # The state solved alone, the trace at three Gauss-Legendre points of each accepted step: the same
    # closed form, named in the report's options.
    path, x, mu, s = gaussian_data
    report, per_sample = tmp_path / "r.json", tmp_path / "s.csv"
    run_flowlik("score", fixtures / "gaussian.pt", "--data", path, "--dtype", "float64", "--rtol", "1e-9",
                "--atol", "1e-9", "--quadrature", "gauss-legendre", "-o", report, "--per-sample", per_sample,
                "-q")
    got = np.array([float(r["log_likelihood"]) for r in read_csv(per_sample)])
    np.testing.assert_allclose(got, gaussian_log_density(x, mu, s), atol=1e-6)
    assert json.loads(report.read_text())["options"]["quadrature"] == "gauss-legendre"


def test_gauss_legendre_quadrature_needs_dopri5(fixtures, gaussian_data):
    code, msg = error_of("score", fixtures / "gaussian.pt", "--data", gaussian_data[0], "--solver", "tsit5",
                         "--quadrature", "gauss-legendre")
    assert code == 2 and "--quadrature: gauss-legendre needs the dopri5 solver (its dense output), not tsit5" in msg


def test_discrete_data_carry_the_dequantization_offsets(fixtures, tmp_path):
    data = tmp_path / "levels.npy"
    np.save(data, np.random.default_rng(1).integers(0, 17, size=(10, 2, 3), dtype=np.uint8))
    out = tmp_path / "s.csv"
    run_flowlik("score", fixtures / "gaussian.pt", "--data", data, "--levels", "17", "--scale",
                "centered", "--per-sample", out, "-q")
    d = 6
    for row in read_csv(out):
        # shared/MATH.md section 6: L = D ln 2 for y = 2 x01 - 1; log P(k) >= log p(y) + L - D ln K.
        assert float(row["log_det"]) == pytest.approx(d * math.log(2), rel=1e-12)
        expected = float(row["model_log_likelihood"]) + d * math.log(2) - d * math.log(17)
        assert float(row["log_likelihood"]) == pytest.approx(expected, rel=1e-12)
        assert float(row["bpd"]) == pytest.approx(-expected / (d * math.log(2)), rel=1e-12)


def test_per_sample_values_do_not_depend_on_batch_size(fixtures, tmp_path):
    data = tmp_path / "levels.npy"
    np.save(data, np.random.default_rng(2).integers(0, 256, size=(13, 2), dtype=np.uint8))
    results = {}
    for batch in (1, 5, 13):
        out = tmp_path / f"b{batch}.csv"
        run_flowlik("score", fixtures / "mixture.pt", "--data", data, "--scale", "centered",
                    "--solver", "rk4", "--steps", "20", "--trace", "hutchinson", "--probes", "3",
                    "--batch-size", batch, "--per-sample", out, "-q")
        results[batch] = np.array([float(r["log_likelihood"]) for r in read_csv(out)])
    # Same dequantization noise and probes for each sample whatever the batch; the arithmetic differs
    # only in BLAS blocking, a few ulps.
    np.testing.assert_allclose(results[1], results[5], rtol=1e-6)
    np.testing.assert_allclose(results[1], results[13], rtol=1e-6)


def test_hutchinson_reports_its_own_standard_error(fixtures, gaussian_data, tmp_path):
    path, x, mu, s = gaussian_data
    report = tmp_path / "r.json"
    run_flowlik("score", fixtures / "gaussian.pt", "--data", path,
                "--trace", "hutchinson", "--noise", "gaussian", "--probes", "4", "-o", report, "-q")
    m = json.loads(report.read_text())["metrics"]
    assert m["estimator_stderr"]["log_likelihood"] > 0
    assert m["estimator_stderr"]["bpd"] == pytest.approx(
        m["estimator_stderr"]["log_likelihood"] / (6 * math.log(2)), rel=1e-9)


def test_a_failing_sample_is_marked_and_excluded(fixtures, tmp_path):
    data = tmp_path / "d.npy"
    np.save(data, np.array([[0.5, 0.1], [500.0, 0.0], [-0.3, 0.2]], dtype=np.float32))
    report, out = tmp_path / "r.json", tmp_path / "s.csv"
    proc = run_flowlik("score", fixtures / "nan_for_large_input.pt", "--data", data, "--max-nfe", "3000",
                       "-o", report, "--per-sample", out)
    rows = read_csv(out)
    assert [r["status"] for r in rows] == ["ok", "failed", "ok"]
    assert rows[1]["detail"] and rows[1]["log_likelihood"] == ""
    r = json.loads(report.read_text())
    assert r["samples"] == {"total": 3, "ok": 2, "excluded": 1}
    assert "1 excluded" in proc.stdout


def test_every_sample_failing_exits_6(fixtures, tmp_path):
    data = tmp_path / "d.npy"
    np.save(data, np.full((2, 2), 500.0, dtype=np.float32))
    out = tmp_path / "s.csv"
    proc = run_flowlik("score", fixtures / "throws_for_large_input.pt", "--data", data, "--per-sample",
                       out, check=False)
    assert proc.returncode == 6
    assert "all 2 samples failed" in proc.stderr
    assert [r["status"] for r in read_csv(out)] == ["failed", "failed"]  # results kept


def test_progress_lines_when_stderr_is_not_a_terminal(fixtures, gaussian_data):
    path = gaussian_data[0]
    proc = run_flowlik("score", fixtures / "gaussian.pt", "--data", path, "--solver", "euler",
                       "--steps", "5", "--batch-size", "4")
    assert "scored 24/24 samples" in proc.stderr
    assert "bpd" in proc.stdout
    quiet = run_flowlik("score", fixtures / "gaussian.pt", "--data", path, "--solver", "euler", "-q")
    assert quiet.stdout == "" and quiet.stderr == ""


def error_of(*args):
    proc = run_flowlik(*args, check=False)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return proc.returncode, lines[0]


@pytest.fixture
def uint8_data(tmp_path):
    path = tmp_path / "u8.npy"
    np.save(path, np.zeros((4, 2), dtype=np.uint8))
    return path


def test_discrete_data_without_a_map_are_refused(fixtures, uint8_data):
    code, msg = error_of("score", fixtures / "mixture.pt", "--data", uint8_data)
    assert code == 2
    assert "--scale" in msg and str(uint8_data) in msg and "discrete" in msg


def test_continuous_data_with_a_map_are_refused(fixtures, gaussian_data):
    code, msg = error_of("score", fixtures / "gaussian.pt", "--data", gaussian_data[0], "--scale", "unit")
    assert code == 2 and "--levels and --scale apply to discrete (uint8) data" in msg


def test_levels_below_the_data_are_refused(fixtures, tmp_path):
    path = tmp_path / "u8.npy"
    np.save(path, np.array([[3, 20]], dtype=np.uint8))
    code, msg = error_of("score", fixtures / "mixture.pt", "--data", path, "--levels", "17",
                         "--scale", "unit")
    assert code == 3 and "sample 0 has level 20, not below --levels 17" in msg


@pytest.mark.parametrize("option,value,expected", [
    ("--solver", "adams", "--solver: unknown solver 'adams' (valid: dopri5, tsit5, bosh3, rkf78, rk4, midpoint, euler)"),
    ("--trace", "skilling", "--trace: unknown trace estimator 'skilling' (valid: exact, hutchinson)"),
    ("--noise", "uniform", "--noise: unknown probe distribution 'uniform'"),
    ("--dtype", "float16", "--dtype: unknown dtype 'float16' (valid: float32, float64)"),
    ("--quadrature", "simpson", "--quadrature: unknown quadrature 'simpson' (valid: augmented, gauss-legendre)"),
    ("--scale", "minmax", "--scale: unknown map 'minmax'"),
    ("--levels", "300", "--levels: must be in [2, 256]"),
    ("--rtol", "-1", "--rtol"),
    ("--batch-size", "0", "--batch-size"),
])
def test_bad_options_are_named(fixtures, uint8_data, option, value, expected):
    args = ["score", fixtures / "mixture.pt", "--data", uint8_data, option, value]
    if option not in ("--scale",):
        args += ["--scale", "unit"]
    if option == "--noise":
        args += ["--trace", "hutchinson"]
    code, msg = error_of(*args)
    assert code == 2 and expected in msg


def test_a_file_that_is_not_a_model_exits_4(fixtures, gaussian_data):
    code, msg = error_of("score", fixtures / "not_a_model.pt", "--data", gaussian_data[0])
    assert code == 4 and "not_a_model.pt: cannot load as a TorchScript module" in msg


def test_a_model_breaking_the_contract_exits_4(fixtures, gaussian_data):
    code, msg = error_of("score", fixtures / "wrong_shape.pt", "--data", gaussian_data[0])
    assert code == 4 and "returns shape" in msg


def test_data_the_model_cannot_take_exit_3(fixtures, tmp_path):
    path = tmp_path / "images.npy"
    np.save(path, np.zeros((4, 8, 8), dtype=np.float32))
    code, msg = error_of("score", fixtures / "fixed_shape.pt", "--data", path)
    assert code == 3 and "forward fails on data of shape [8, 8]" in msg


def test_a_truncated_data_file_exits_3(fixtures, gaussian_data, tmp_path):
    bad = tmp_path / "cut.npy"
    bad.write_bytes(gaussian_data[0].read_bytes()[:200])
    code, msg = error_of("score", fixtures / "gaussian.pt", "--data", bad)
    assert code == 3 and "cut.npy: truncated" in msg


def test_a_missing_file_exits_2(fixtures):
    code, msg = error_of("score", fixtures / "gaussian.pt", "--data", "/no/such.npy")
    assert code == 2 and "/no/such.npy" in msg


def test_an_unwritable_report_fails_before_any_work(fixtures, gaussian_data):
    code, msg = error_of("score", fixtures / "gaussian.pt", "--data", gaussian_data[0], "-o",
                         "/no/such/dir/r.json")
    assert code == 5 and "/no/such/dir/r.json: cannot create report" in msg


def test_the_report_states_the_contract_and_where_it_came_from(fixtures, tmp_path):
    data = tmp_path / "d.npy"
    np.save(data, np.random.default_rng(3).normal(size=(5, 2)))
    report = tmp_path / "r.json"
    run_flowlik("score", fixtures / "vp_noise_embedded.pt", "--data", data, "--time-range", "0.01,1",
                "-o", report, "-q")
    c = json.loads(report.read_text())["model"]["contract"]
    assert c["parameterization"] == "noise" and c["schedule"] == "vp:0.1,20"
    assert c["sources"]["parameterization"] == "manifest (embedded)"
    assert c["sources"]["time_range"] == "option --time-range"
    assert c["time_range"] == [0.01, 1.0] and c["flow_time_integrated"] == [0.99, 0.0]


def test_a_contract_error_names_the_field(fixtures, tmp_path):
    data = tmp_path / "d.npy"
    np.save(data, np.zeros((2, 2)))
    code, msg = error_of("score", fixtures / "mixture.pt", "--data", data, "--parameterization", "noise")
    assert code == 2 and "schedule: required for parameterization 'noise'" in msg


def test_data_of_another_shape_than_declared_exit_3(fixtures, tmp_path):
    data = tmp_path / "d.npy"
    np.save(data, np.zeros((2, 3)))
    code, msg = error_of("score", fixtures / "vp_noise_embedded.pt", "--data", data)
    assert code == 3 and "per-sample shape [3], the model's contract declares [2]" in msg


def test_data_differing_only_in_dimensions_of_size_one_take_the_models_shape(fixtures, tmp_path):
    # Grey images [N, 8, 8] for a model of one channel [1, 8, 8]: the same values in the same order. The
    # embedded manifest declares [2]; [2, 1] and [1, 2] score as [2] does, [2, 2] is refused.
    values = np.random.default_rng(0).standard_normal((3, 2))
    scores = []
    for shape in [(3, 2), (3, 2, 1), (3, 1, 2)]:
        data, out = tmp_path / f"d{len(shape)}{shape[1]}.npy", tmp_path / f"s{len(shape)}{shape[1]}.csv"
        np.save(data, values.reshape(shape))
        run_flowlik("score", fixtures / "vp_noise_embedded.pt", "--data", data, "--per-sample", out, "-q")
        scores.append([r["log_likelihood"] for r in read_per_sample(out)])
    assert scores[0] == scores[1] == scores[2]
    data = tmp_path / "wide.npy"
    np.save(data, np.zeros((2, 2, 2)))
    code, msg = error_of("score", fixtures / "vp_noise_embedded.pt", "--data", data)
    assert code == 3 and "per-sample shape [2, 2], the model's contract declares [2]" in msg
