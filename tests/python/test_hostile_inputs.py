"""What a hostile user found (issue 12), one test per finding: nothing lost, nothing silently wrong, no crash
or hang, and the right outcome for a legitimate but unusual model."""
import json
import math
import os
import shutil
import time

import numpy as np
import pytest
import torch

import subprocess

from conftest import BIN, ROOT, read_per_sample, run_flowlik, run_identity

FAST = ["--solver", "rk4", "--steps", "4", "-q"]


@pytest.fixture
def gaussian(fixtures, tmp_path):
    """A copy of the Gaussian fixture and continuous data for it, in a folder of the test's own."""
    model = tmp_path / "model.pt"
    shutil.copy(fixtures / "gaussian.pt", model)
    data = tmp_path / "d.npy"
    np.save(data, np.random.default_rng(1).standard_normal((6, 2, 3)))
    return model, data


def digest(path):
    return path.read_bytes()


# --- data loss -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("option", ["-o", "--per-sample", "--html", "--junit", "--markdown", "--history"])
@pytest.mark.parametrize("victim", ["data", "model"])
def test_an_output_naming_an_input_is_refused_and_the_input_kept(gaussian, option, victim):
    model, data = gaussian
    target = data if victim == "data" else model
    before = digest(target)
    proc = run_flowlik("score", model, "--data", data, *FAST, option, target, check=False)
    assert proc.returncode == 2, proc.stderr
    assert option in proc.stderr and "would be destroyed" in proc.stderr
    assert digest(target) == before


def test_a_link_to_an_input_is_the_input(gaussian, tmp_path):
    model, data = gaussian
    hard, soft = tmp_path / "hard.npy", tmp_path / "soft.json"
    os.link(data, hard)
    os.symlink(data, soft)
    before = digest(data)
    for link in (hard, soft):
        proc = run_flowlik("score", model, "--data", data, *FAST, "-o", link, check=False)
        assert proc.returncode == 2 and "-o" in proc.stderr
    assert digest(data) == before


def test_one_file_for_two_outputs_is_refused(gaussian, tmp_path):
    model, data = gaussian
    x = tmp_path / "x"
    proc = run_flowlik("score", model, "--data", data, *FAST, "-o", x, "--per-sample", x, check=False)
    assert proc.returncode == 2 and "--per-sample" in proc.stderr and "-o" in proc.stderr
    assert not x.exists()


def test_baseline_and_output_the_same_file_is_refused(gaussian, tmp_path):
    model, data = gaussian
    base = tmp_path / "base.json"
    run_flowlik("score", model, "--data", data, *FAST, "-o", base)
    before = digest(base)
    proc = run_flowlik("score", model, "--data", data, *FAST, "--baseline", base, "--max-regression", "0.1",
                       "-o", base, check=False)
    assert proc.returncode == 2 and "--baseline" in proc.stderr
    assert digest(base) == before


def test_compare_refuses_to_write_over_a_model(fixtures, gaussian, tmp_path):
    model, data = gaussian
    other = tmp_path / "b.pt"
    shutil.copy(fixtures / "gaussian_b.pt", other)
    before = digest(other)
    proc = run_flowlik("compare", model, other, "--data", data, *FAST, "-o", other, check=False)
    assert proc.returncode == 2 and "would be destroyed" in proc.stderr
    assert digest(other) == before


def test_merge_refuses_to_write_over_its_inputs(gaussian, tmp_path):
    model, data = gaussian
    reports = []
    for i in range(2):
        reports.append(tmp_path / f"s{i}.json")
        run_flowlik("score", model, "--data", data, *FAST, "--shard", f"{i}/2", "-o", reports[-1],
                    "--per-sample", tmp_path / f"s{i}.csv")
    before = [digest(r) for r in reports] + [digest(tmp_path / "s0.csv")]
    proc = run_flowlik("merge", *reports, "-o", reports[0], check=False)
    assert proc.returncode == 2 and "would be destroyed" in proc.stderr
    proc = run_flowlik("merge", *reports, "-o", tmp_path / "m.json", "--per-sample", tmp_path / "s0.csv",
                       check=False)
    assert proc.returncode == 2 and "--per-sample" in proc.stderr
    assert [digest(r) for r in reports] + [digest(tmp_path / "s0.csv")] == before


def test_a_run_that_fails_late_leaves_the_earlier_report_whole(fixtures, gaussian, tmp_path):
    model, data = gaussian
    report = tmp_path / "r.json"
    run_flowlik("score", model, "--data", data, *FAST, "-o", report)
    before = digest(report)
    # A baseline of other data is found out only after scoring, when the gate is computed.
    other = tmp_path / "other.npy"
    np.save(other, np.zeros((3, 2, 3)))
    base = tmp_path / "base.json"
    run_flowlik("score", model, "--data", other, *FAST, "-o", base)
    proc = run_flowlik("score", model, "--data", data, *FAST, "--baseline", base, "--max-regression", "0.1",
                       "-o", report, check=False)
    assert proc.returncode == 3 and "other data" in proc.stderr
    assert digest(report) == before
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]  # no temporary file left behind


def test_a_journal_killed_before_its_first_row_is_resumed(gaussian, tmp_path):
    model, data = gaussian
    per_sample = tmp_path / "s.csv"
    journal = tmp_path / "s.csv.partial"
    run_flowlik("score", model, "--data", data, *FAST, "--per-sample", per_sample)
    complete = per_sample.read_text()
    # The journal of that run: its identity line, then the rows.
    journal_text = f"# flowlik-run {json.dumps(run_identity(per_sample))}\n{complete}"
    per_sample.unlink()
    for cut in ("", "".join(journal_text.splitlines(keepends=True)[:2]),
                journal_text.splitlines()[0][:9]):
        journal.write_text(cut)  # empty, identity and header only, or cut inside the identity
        run_flowlik("score", model, "--data", data, *FAST, "--per-sample", per_sample, "--resume")
        assert per_sample.read_text() == complete and not journal.exists()
        per_sample.unlink()


# --- silently wrong ------------------------------------------------------------------------------------

@pytest.mark.parametrize("change, key", [
    (["--seed", "1"], "options.seed"),
    (["--trace", "hutchinson"], "options.trace"),
    (["--scale-model"], "model_sha256"),
    (["--other-data"], "data_sha256"),
])
def test_resume_refuses_rows_of_another_run(fixtures, gaussian, tmp_path, change, key):
    model, data = gaussian
    per_sample = tmp_path / "s.csv"
    run_flowlik("score", model, "--data", data, *FAST, "--per-sample", per_sample)
    args = ["score", model, "--data", data, *FAST]
    if change == ["--scale-model"]:
        other = tmp_path / "other.pt"
        shutil.copy(fixtures / "gaussian_b.pt", other)
        args[1] = other
    elif change == ["--other-data"]:
        other = tmp_path / "other.npy"
        np.save(other, np.zeros((6, 2, 3)))
        args[3] = other
    else:
        args += change
    before = digest(per_sample)
    proc = run_flowlik(*args, "--per-sample", per_sample, "--resume", check=False)
    assert proc.returncode == 2, proc.stderr
    assert "another run" in proc.stderr and f"'{key}'" in proc.stderr
    assert digest(per_sample) == before
    # The finished file is checked where it is: no copy of it is left beside it, none is named.
    assert not (tmp_path / "s.csv.partial").exists() and ".partial" not in proc.stderr


def test_resume_accepts_another_batch_size_thread_count_and_max_rows(gaussian, tmp_path):
    model, data = gaussian
    per_sample = tmp_path / "s.csv"
    run_flowlik("score", model, "--data", data, *FAST, "--per-sample", per_sample)
    assert run_identity(per_sample)["options"]["solver"] == "rk4"
    run_flowlik("score", model, "--data", data, *FAST, "--per-sample", per_sample, "--resume",
                "--batch-size", "2", "--threads", "1", "--max-rows", "7")


def test_the_per_sample_csv_reads_correctly_with_every_readers_defaults(gaussian, tmp_path):
    """Issue 19: with the identity as its first line pandas gave 38 columns of JSON fragments, DictReader
    wrong keys, genfromtxt raised and SQLite imported 0 rows. The identity now lives in FILE.csv.run.json."""
    import csv
    import sqlite3

    import pandas
    model, data = gaussian
    per_sample = tmp_path / "s.csv"
    run_flowlik("score", model, "--data", data, *FAST, "--per-sample", per_sample)
    columns = ["index", "log_likelihood", "bpd", "nfe", "status", "model_log_likelihood", "log_det",
               "prior_log_density", "estimator_stderr", "dequant_stderr", "draws", "detail"]
    frame = pandas.read_csv(per_sample)
    assert list(frame.columns) == columns and list(frame["index"]) == list(range(6))
    with open(per_sample, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == columns and [int(r["index"]) for r in rows] == list(range(6))
    array = np.genfromtxt(per_sample, delimiter=",", names=True, dtype=None, encoding="utf-8")
    assert list(array["index"]) == list(range(6))
    np.testing.assert_allclose(array["log_likelihood"], frame["log_likelihood"])
    database = tmp_path / "s.db"
    subprocess.run(["sqlite3", database, f".import --csv {per_sample} s"], check=True)
    assert sqlite3.connect(database).execute("select count(*), min(\"index\") from s").fetchone() == (6, "0")
    identity = run_identity(per_sample)
    assert identity["options"]["solver"] == "rk4" and identity["model_sha256"]


def test_resume_refuses_a_finished_file_its_identity_does_not_describe(gaussian, tmp_path):
    model, data = gaussian
    per_sample = tmp_path / "s.csv"
    run_flowlik("score", model, "--data", data, *FAST, "--per-sample", per_sample)
    edited = per_sample.read_text().replace(",ok,", ",failed,", 1)
    per_sample.write_text(edited)
    proc = run_flowlik("score", model, "--data", data, *FAST, "--per-sample", per_sample, "--resume",
                       check=False)
    assert proc.returncode == 3, proc.stderr
    assert "s.csv.run.json: describes other rows than" in proc.stderr
    assert per_sample.read_text() == edited


def test_two_runs_on_one_per_sample_file_never_mix_their_rows(tmp_path):
    """Two --resume runs of one journal started together: one writes the file, the other is refused
    (issue 19: 6 of 6 trials left duplicate rows before the journal was locked)."""
    digits = ROOT / "examples" / "digits"
    data = tmp_path / "d.npy"
    np.save(data, np.load(digits / "test.npy")[:96])
    per_sample = tmp_path / "s.csv"
    args = [str(BIN), "score", str(digits / "model.pt2"), "--data", str(data), "--threads", "1", "-q",
            "--per-sample", str(per_sample), "--resume"]
    first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (tmp_path / "s.csv.partial").exists() or \
            (tmp_path / "s.csv.partial").stat().st_size == 0:
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.05)
    second = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert second.returncode == 5, second.stderr
    assert "another flowlik run is writing this per-sample file" in second.stderr
    assert first.wait(timeout=300) == 0, first.stderr.read()
    rows = read_per_sample(per_sample)
    assert sorted(int(r["index"]) for r in rows) == list(range(96))
    assert not (tmp_path / "s.csv.partial").exists()


def test_compare_refuses_models_that_see_the_data_differently(fixtures, tmp_path):
    data = tmp_path / "k.npy"
    np.save(data, np.random.default_rng(3).integers(0, 17, size=(5, 2), dtype=np.uint8))
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    for path, manifest in ((a, {"data": {"levels": 17, "scale": "centered"}}),
                           (b, {"data": {"levels": 256, "scale": "unit"}})):
        shutil.copy(fixtures / "mixture.pt", path)
        path.with_name(path.name + ".json").write_text(json.dumps(manifest))
    proc = run_flowlik("compare", a, b, "--data", data, *FAST, check=False)
    assert proc.returncode == 2 and "levels" in proc.stderr and "different data" in proc.stderr


@pytest.mark.parametrize("option, value", [
    ("--seed", "-1"), ("--seed", "18446744073709551616"), ("--batch-size", "1e20"),
    ("--batch-size", "0"), ("--rtol", "nan"), ("--atol", "nan"), ("--rtol", "inf"), ("--threads", "100000"),
    ("--threads", "-1"), ("--probes", "1.5"), ("--max-nfe", "99999999999999999999"),
])
def test_out_of_range_numbers_are_usage_errors(gaussian, option, value):
    model, data = gaussian
    proc = run_flowlik("score", model, "--data", data, *FAST, f"{option}={value}", check=False)
    assert proc.returncode == 2 and option in proc.stderr, proc.stderr


def test_a_not_finite_regression_limit_is_a_usage_error(gaussian, tmp_path):
    model, data = gaussian
    base = tmp_path / "base.json"
    run_flowlik("score", model, "--data", data, *FAST, "-o", base)
    proc = run_flowlik("score", model, "--data", data, *FAST, "--baseline", base, "--max-regression=nan",
                       check=False)
    assert proc.returncode == 2 and "--max-regression" in proc.stderr


# --- crashes and hangs ---------------------------------------------------------------------------------

def test_a_deeply_nested_side_manifest_is_refused(gaussian):
    model, data = gaussian
    model.with_name(model.name + ".json").write_text("[" * 300000 + "]" * 300000)
    proc = run_flowlik("score", model, "--data", data, *FAST, check=False)
    assert proc.returncode == 4 and "deeper" in proc.stderr


def test_a_fifo_or_directory_as_side_manifest_is_refused_at_once(gaussian):
    model, data = gaussian
    side = model.with_name(model.name + ".json")
    os.mkfifo(side)
    start = time.monotonic()
    proc = run_flowlik("score", model, "--data", data, *FAST, check=False, timeout=60)
    assert proc.returncode == 4 and "not a regular file" in proc.stderr
    assert time.monotonic() - start < 60
    side.unlink()
    side.mkdir()
    proc = run_flowlik("score", model, "--data", data, *FAST, check=False)
    assert proc.returncode == 4 and "not a regular file" in proc.stderr


def test_a_huge_manifest_value_gives_a_short_message(gaussian):
    model, data = gaussian
    model.with_name(model.name + ".json").write_text(json.dumps({"schedule": "x" * 900_000}))
    proc = run_flowlik("score", model, "--data", data, *FAST, check=False)
    assert proc.returncode == 4
    assert proc.stderr.count("\n") == 1 and len(proc.stderr.rstrip("\n")) <= 1000  # the cap, whole line


def test_threads_at_the_limit_runs(gaussian):
    model, data = gaussian
    run_flowlik("score", model, "--data", data, *FAST, "--threads", "2")


@pytest.fixture
def shard_reports(gaussian, tmp_path):
    model, data = gaussian
    reports = []
    for i in range(2):
        reports.append(tmp_path / f"s{i}.json")
        run_flowlik("score", model, "--data", data, *FAST, "--shard", f"{i}/2", "-o", reports[-1],
                    "--per-sample", tmp_path / f"s{i}.csv")
    return reports


@pytest.mark.parametrize("edit, key", [
    (lambda r: r["shard"].pop("count"), "shard.count"),
    (lambda r: r["shard"].update(count="2"), "shard.count"),
    (lambda r: r["data"].update(N=[6]), "data.N"),
    (lambda r: r.update(shard=[]), "'shard'"),
    (lambda r: r.pop("wall_time_s"), "wall_time_s"),
    (lambda r: r.update(per_sample=7), "per_sample"),
])
def test_merge_names_a_missing_or_mistyped_key(shard_reports, tmp_path, edit, key):
    r = json.loads(shard_reports[1].read_text())
    edit(r)
    shard_reports[1].write_text(json.dumps(r))
    proc = run_flowlik("merge", *shard_reports, "-o", tmp_path / "m.json", check=False)
    assert proc.returncode == 3, proc.stderr
    assert key in proc.stderr and "internal" not in proc.stderr


@pytest.mark.parametrize("shard", [{"index": 0, "count": 2**62, "first": 0, "end": 3},
                                   {"index": 1, "count": 2, "first": -5, "end": 2**62},
                                   {"index": 1, "count": 2, "first": 3, "end": 2}])
def test_merge_refuses_absurd_shard_ranges(shard_reports, tmp_path, shard):
    r = json.loads(shard_reports[1].read_text())
    r["shard"].update(shard)
    shard_reports[1].write_text(json.dumps(r))
    proc = run_flowlik("merge", *shard_reports, "-o", tmp_path / "m.json", check=False)
    assert proc.returncode == 3 and "internal" not in proc.stderr and "memory" not in proc.stderr


def test_inspect_answers_in_seconds_on_a_convolutional_model(tmp_path):
    class Conv(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Conv2d(4, 32, 3, padding=1)
            self.b = torch.nn.Conv2d(32, 32, 3, padding=1)
            self.c = torch.nn.Conv2d(32, 3, 3, padding=1)

        def forward(self, x, t):
            h = torch.cat([x, t.view(-1, 1, 1, 1).expand(-1, 1, 32, 32)], 1)
            return self.c(torch.nn.functional.silu(self.b(torch.nn.functional.silu(self.a(h)))))

    model = tmp_path / "conv.pt"
    torch.jit.save(torch.jit.trace(Conv().eval(), (torch.randn(2, 3, 32, 32), torch.rand(2))), model)
    start = time.monotonic()
    proc = run_flowlik("inspect", model, "--shape", "3,32,32", "--json", check=False, timeout=120)
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    cost = json.loads(proc.stdout)["cost"]
    assert elapsed < 90
    assert cost["exact_ms_per_evaluation"] > cost["hutchinson_ms_per_evaluation"] > 0
    assert cost["score_seconds_per_sample"]["exact"] > 0
    assert cost["exact_peak_memory_bytes"] > 0
    assert cost["exact_measured_rows"] == 64
    # Issue 19: the exact trace's default rows follow the machine, so its estimated peak stays within the
    # memory available (a 3x32x32 UNet was estimated at 73.7 GB on this 24 GB machine at 16384 rows).
    available = next(int(line.split()[1]) * 1024 for line in open("/proc/meminfo")
                     if line.startswith("MemAvailable:"))
    assert 1 <= cost["exact_max_rows"] <= 16384
    assert cost["exact_peak_memory_bytes"] < available
    assert "half of the memory available" in cost["exact_max_rows_how"]


def test_the_exact_trace_rows_follow_the_memory_budget_and_change_no_result(gaussian, tmp_path):
    """--max-rows auto (the default) sizes the exact trace's calls from --memory; any number of rows
    gives the same values, since each row is one sample's own vector-Jacobian product."""
    model, data = gaussian
    reports = {}
    for name, option in (("tiny", ["--memory", "0.001"]), ("fixed", ["--max-rows", "16384"]),
                         ("default", [])):
        out, report = tmp_path / f"{name}.csv", tmp_path / f"{name}.json"
        run_flowlik("score", model, "--data", data, *FAST, *option, "--per-sample", out, "-o", report)
        reports[name] = (json.loads(report.read_text()), read_per_sample(out))
    tiny, fixed, default = (reports[k][0] for k in ("tiny", "fixed", "default"))
    assert tiny["options"]["max_rows"] == 1  # 1 kB of budget fits less than one measured row
    assert "--memory" in tiny["exact_trace_rows"] and "exact_trace_rows" not in fixed
    assert fixed["options"]["max_rows"] == 16384
    assert "half of the memory available" in default["exact_trace_rows"]
    values = {k: [r["log_likelihood"] for r in reports[k][1]] for k in reports}
    assert values["tiny"] == values["fixed"] == values["default"]


# --- right model, wrong outcome ------------------------------------------------------------------------

def test_a_constant_velocity_scores_as_a_translation(tmp_path):
    class Constant(torch.nn.Module):
        def forward(self, x, t):
            return torch.full_like(x, 0.75)

    model = tmp_path / "constant.pt"
    torch.jit.save(torch.jit.script(Constant()), model)
    x = np.random.default_rng(2).standard_normal((5, 3))
    data = tmp_path / "x.npy"
    np.save(data, x)
    # dx/dt = 0.75 from t = 0 to 1: x0 = x1 - 0.75, divergence 0, so log p1(x1) = log N(x1 - 0.75; 0, I).
    z = x - 0.75
    exact = -0.5 * (z**2).sum(1) - 1.5 * math.log(2 * math.pi)
    for trace in ("exact", "hutchinson"):
        out = tmp_path / f"{trace}.csv"
        run_flowlik("score", model, "--data", data, "--dtype", "float64", "--trace", trace, "-q",
                    "--per-sample", out)
        rows = read_per_sample(out)
        assert [r["status"] for r in rows] == ["ok"] * 5
        np.testing.assert_allclose([float(r["log_likelihood"]) for r in rows], exact, atol=1e-9)


def test_an_empty_shard_writes_a_report_and_merges(gaussian, tmp_path):
    model, _ = gaussian
    one = tmp_path / "one.npy"
    np.save(one, np.zeros((1, 2, 3)))
    reports = []
    for i in range(2):
        reports.append(tmp_path / f"e{i}.json")
        run_flowlik("score", model, "--data", one, *FAST, "--shard", f"{i}/2", "-o", reports[-1],
                    "--per-sample", tmp_path / f"e{i}.csv")
    assert json.loads(reports[0].read_text())["samples"]["total"] == 0
    run_flowlik("merge", *reports, "-o", tmp_path / "m.json")
    assert json.loads((tmp_path / "m.json").read_text())["samples"] == {"total": 1, "ok": 1, "excluded": 0}


def test_a_shard_whose_samples_all_fail_writes_its_report(fixtures, tmp_path):
    data = tmp_path / "d.npy"
    np.save(data, np.array([[0.1, 0.2], [0.3, 0.1], [500.0, 500.0], [600.0, 600.0]]))
    reports = []
    for i in range(2):
        reports.append(tmp_path / f"s{i}.json")
        proc = run_flowlik("score", fixtures / "throws_for_large_input.pt", "--data", data, *FAST, "--shard",
                           f"{i}/2", "-o", reports[-1], "--per-sample", tmp_path / f"s{i}.csv", check=False)
        assert proc.returncode == (0 if i == 0 else 6), proc.stderr
    failed = json.loads(reports[1].read_text())
    assert failed["samples"] == {"total": 2, "ok": 0, "excluded": 2}
    assert failed["metrics"]["bpd"]["mean"] is None
    run_flowlik("merge", *reports, "-o", tmp_path / "m.json")
    assert json.loads((tmp_path / "m.json").read_text())["samples"]["ok"] == 2


@pytest.mark.parametrize("solver, expected", [
    # Fixed step: the batch of two burnt 6 evaluations, then each sample 6 more alone.
    (["--solver", "rk4", "--steps", "10"], [12, 12]),
    # Per-sample steps: each sample spent its first evaluation, and fails before a step of 6 more would
    # take it over the limit of 5.
    (["--solver", "dopri5", "--rtol", "1e-10", "--atol", "1e-10"], [1, 1]),
])
def test_a_failed_sample_counts_the_evaluations_it_burnt(fixtures, tmp_path, solver, expected):
    data = tmp_path / "d.npy"
    np.save(data, np.random.default_rng(4).standard_normal((2, 2)) * 3)
    out = tmp_path / "s.csv"
    proc = run_flowlik("score", fixtures / "mixture.pt", "--data", data, "--max-nfe", "5", *solver,
                       "--per-sample", out, "-q", check=False)
    assert proc.returncode == 6
    rows = read_per_sample(out)
    assert [r["status"] for r in rows] == ["failed", "failed"]
    assert [int(r["nfe"]) for r in rows] == expected
    assert all("more than 5 function evaluations" in r["detail"] for r in rows)


def test_a_native_op_error_reads_as_its_message(tmp_path):
    class IndexesOutOfRange(torch.nn.Module):
        def forward(self, x, t):
            if bool(x.abs().max() > 100):
                return x.index_select(1, torch.tensor([1000]))
            return -x

    model = tmp_path / "m.pt"
    torch.jit.save(torch.jit.script(IndexesOutOfRange()), model)
    data = tmp_path / "d.npy"
    np.save(data, np.full((1, 2), 500.0))
    out = tmp_path / "s.csv"
    run_flowlik("score", model, "--data", data, "--per-sample", out, "-q", check=False)
    detail = read_per_sample(out)[0]["detail"]
    assert "out of data bounds" in detail.lower() and "frame #" not in detail and "0x" not in detail, detail


# --- papercuts (issue 19, finding 15) -------------------------------------------------------------------

LOUD = [a for a in FAST if a != "-q"]


def test_a_number_too_small_for_a_double_is_out_of_range(gaussian):
    model, data = gaussian
    proc = run_flowlik("score", model, "--data", data, *FAST, "--target-stderr", "1e-400", check=False)
    assert proc.returncode == 2 and "rounds to 0" in proc.stderr and "finite" not in proc.stderr


def test_budget_advice_for_the_exact_trace_names_no_probes(gaussian):
    model, data = gaussian
    # 5 bpd is within reach of the 6 samples (the data's own part is about 1 bpd over all of them).
    proc = run_flowlik("score", model, "--data", data, *LOUD, "--target-stderr", "5")
    advice = [line for line in proc.stderr.splitlines() if "--target-stderr 5: advice:" in line]
    assert len(advice) == 1 and "--probes" not in advice[0], proc.stderr


def test_check_solve_of_more_samples_than_scored_says_so(gaussian):
    model, data = gaussian  # 6 samples
    proc = run_flowlik("score", model, "--data", data, *LOUD, "--check-solve", "7")
    assert "--check-solve 7: the run has 6 samples scored ok; checking those 6" in proc.stderr


def test_help_names_both_model_formats():
    for command in ("score", "inspect"):
        assert ".pt2" in run_flowlik(command, "--help").stdout
