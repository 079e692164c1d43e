"""Sharding, `flowlik merge`, and --resume after a kill."""
import json
import os
import random
import signal
import subprocess
import time

import numpy as np
import pytest

from conftest import BIN, read_per_sample, run_flowlik, run_identity

COMMON = ["--scale", "centered", "--solver", "rk4", "--steps", "8", "--trace", "hutchinson", "--probes", "2",
          "--batch-size", "4", "-q"]


def rows(path):
    return read_per_sample(path)


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "u8.npy"
    np.save(path, np.random.default_rng(9).integers(0, 256, size=(23, 2), dtype=np.uint8))
    return path


@pytest.fixture
def unsharded(fixtures, data, tmp_path):
    report, per_sample = tmp_path / "full.json", tmp_path / "full.csv"
    run_flowlik("score", fixtures / "mixture.pt", "--data", data, *COMMON, "-o", report, "--per-sample",
                per_sample)
    return json.loads(report.read_text()), rows(per_sample)


def shard_runs(fixtures, data, tmp_path, count, extra=()):
    reports = []
    for i in range(count):
        report = tmp_path / f"shard{i}.json"
        run_flowlik("score", fixtures / "mixture.pt", "--data", data, *COMMON, *extra, "--shard",
                    f"{i}/{count}", "-o", report, "--per-sample", tmp_path / f"shard{i}.csv")
        reports.append(report)
    return reports


def test_merged_shards_equal_the_unsharded_run(fixtures, data, tmp_path, unsharded):
    full_report, full_rows = unsharded
    reports = shard_runs(fixtures, data, tmp_path, 3)
    merged, merged_csv = tmp_path / "merged.json", tmp_path / "merged.csv"
    run_flowlik("merge", *reports, "-o", merged, "--per-sample", merged_csv)
    m = json.loads(merged.read_text())
    got = rows(merged_csv)
    assert [r["index"] for r in got] == [r["index"] for r in full_rows]
    # Fixed-step solver and per-sample noise and probes: the same values, up to BLAS blocking.
    np.testing.assert_allclose([float(r["log_likelihood"]) for r in got],
                               [float(r["log_likelihood"]) for r in full_rows], rtol=1e-6)
    for key in ("log_likelihood", "bpd"):
        assert m["metrics"][key]["mean"] == pytest.approx(full_report["metrics"][key]["mean"], rel=1e-6)
        assert m["metrics"][key]["stderr"] == pytest.approx(full_report["metrics"][key]["stderr"], rel=1e-5)
    assert m["samples"] == full_report["samples"]
    assert m["options"] == full_report["options"] and "shard" not in m


def test_shard_from_slurm_and_torchrun_variables(fixtures, data, tmp_path):
    for env, expected in (({"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "3"}, "SLURM_ARRAY_TASK_ID"),
                          ({"RANK": "1", "WORLD_SIZE": "2"}, "RANK")):
        report = tmp_path / "r.json"
        subprocess.run([str(BIN), "score", str(fixtures / "mixture.pt"), "--data", str(data), *COMMON, "-o",
                        str(report), "--per-sample", str(tmp_path / "s.csv")],
                       check=True, env={**os.environ, **env}, stdin=subprocess.DEVNULL)
        shard = json.loads(report.read_text())["shard"]
        assert shard["source"] == expected
        n = 23
        i, c = (2, 3) if expected.startswith("SLURM") else (1, 2)
        assert (shard["first"], shard["end"]) == (i * n // c, (i + 1) * n // c)


def test_merge_refuses_what_does_not_add_up(fixtures, data, tmp_path):
    reports = shard_runs(fixtures, data, tmp_path, 3)
    out = tmp_path / "m.json"
    proc = run_flowlik("merge", reports[0], reports[2], "-o", out, check=False)
    assert proc.returncode == 3 and "shard 1 of 3 is missing" in proc.stderr
    proc = run_flowlik("merge", reports[0], reports[0], reports[1], "-o", out, check=False)
    assert proc.returncode == 3 and "given twice" in proc.stderr
    other = tmp_path / "other"
    other.mkdir()
    odd = shard_runs(fixtures, data, other, 3, extra=["--seed", "5"])
    proc = run_flowlik("merge", reports[0], odd[1], reports[2], "-o", out, check=False)
    assert proc.returncode == 3 and "differs from" in proc.stderr and "not of one run" in proc.stderr
    shard_csv = tmp_path / "shard1.csv"
    shard_csv.write_bytes(shard_csv.read_bytes()[:-7])  # cut the last row mid-write
    proc = run_flowlik("merge", *reports, "-o", out, check=False)
    assert proc.returncode == 3 and "truncated" in proc.stderr


def test_resume_after_a_kill_loses_nothing(fixtures, data, tmp_path):
    per_sample, report = tmp_path / "s.csv", tmp_path / "r.json"
    # One sample a batch and many steps: slow enough to be killed part-way.
    slow = [a if a not in ("4", "8") else {"4": "1", "8": "400"}[a] for a in COMMON]
    assert slow != COMMON
    cmd = [str(BIN), "score", str(fixtures / "mixture.pt"), "--data", str(data), *slow, "--per-sample",
           str(per_sample)]
    # Rows go to the journal s.csv.partial while the run goes on; s.csv appears only when it is complete.
    journal = tmp_path / "s.csv.partial"
    stop_after = random.Random().randint(2, 16)
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if journal.exists() and journal.read_text().count("\n") > stop_after:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not per_sample.exists(), "a killed run must not leave a per-sample file that looks complete"
    # A row cut off mid-write, as a kill can leave: dropped and scored again.
    with open(journal, "a") as f:
        f.write("22,-3.1")
    done_before = journal.read_text().count("\n") - 2  # the identity line and the header
    assert run_identity(journal)["options"]["solver"] == "rk4"
    resumed = run_flowlik(*cmd[1:], "--resume", "-o", report, "-q")
    assert resumed.returncode == 0
    got = rows(per_sample)
    assert not journal.exists()
    assert sorted(int(r["index"]) for r in got) == list(range(23))
    by_index = {int(r["index"]): float(r["log_likelihood"]) for r in got}
    # Against an uninterrupted run with the same options.
    fresh = tmp_path / "fresh.csv"
    run_flowlik(*cmd[1:-2], "--per-sample", fresh)
    np.testing.assert_allclose([by_index[i] for i in range(23)],
                               [float(r["log_likelihood"]) for r in rows(fresh)], rtol=1e-6)
    assert json.loads(report.read_text())["resumed_samples"] == done_before
    assert json.loads(report.read_text())["samples"]["total"] == 23


def test_resume_refuses_a_corrupt_file(fixtures, data, tmp_path):
    per_sample = tmp_path / "s.csv"
    run_flowlik("score", fixtures / "mixture.pt", "--data", data, *COMMON, "--per-sample", per_sample)
    lines = per_sample.read_text().splitlines(keepends=True)
    lines[3] = "2,not-a-number,1,1,ok,,,,,,,\n"  # the 12 columns of the current header
    per_sample.write_text("".join(lines))
    proc = run_flowlik("score", fixtures / "mixture.pt", "--data", data, *COMMON, "--per-sample", per_sample,
                       "--resume", check=False)
    assert proc.returncode == 3 and "line 4: log_likelihood 'not-a-number' is not a number" in proc.stderr
    proc = run_flowlik("score", fixtures / "mixture.pt", "--data", data, *COMMON, "--resume", check=False)
    assert proc.returncode == 2 and "--per-sample" in proc.stderr


ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("solver", ["dopri5", "tsit5", "bosh3", "rkf78"])
def test_adaptive_results_do_not_depend_on_batch_size_order_or_shards(solver, tmp_path):
    # Per-sample step control: a sample's log-likelihood, NFE and status are the same, to the last bit, for
    # any batch size, order and shard count (float32, the digits MLP compiled as .pt2, 24 samples).
    data = tmp_path / "d.npy"
    np.save(data, np.load(ROOT / "examples/digits/test.npy")[:24])
    model = ROOT / "examples/digits/model.pt2"
    common = ["--solver", solver, "--threads", "1", "-q"]

    def score(name, *extra):
        out = tmp_path / f"{name}.csv"
        run_flowlik("score", model, "--data", data, *common, *extra, "--per-sample", out)
        return {r["index"]: (r["log_likelihood"], r["nfe"], r["status"]) for r in rows(out)}

    alone = score("b1", "--batch-size", "1")
    assert all(status == "ok" for _, _, status in alone.values())
    for batch in ("7", "64"):
        assert score(f"b{batch}", "--batch-size", batch) == alone, f"batch size {batch}"
    if solver == "dopri5":
        reports = []
        for i in range(3):
            reports.append(tmp_path / f"s{i}.json")
            run_flowlik("score", model, "--data", data, *common, "--batch-size", "5", "--shard", f"{i}/3", "-o",
                        reports[-1], "--per-sample", tmp_path / f"s{i}.csv")
        merged_csv = tmp_path / "m.csv"
        run_flowlik("merge", *reports, "-o", tmp_path / "m.json", "--per-sample", merged_csv)
        merged = {r["index"]: (r["log_likelihood"], r["nfe"], r["status"]) for r in rows(merged_csv)}
        assert merged == alone
