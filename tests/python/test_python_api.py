"""The Python API (issue 21) as built in the build tree (build/python/flowlik): flowlik.score, compare and inspect
in this process, against the closed form and bit for bit against the program; data as a path, an array and a
tensor; the errors; the GIL released while scoring; the torch version check. The wheel installed into a fresh
environment is tested in test_wheel.py."""
import json
import math
import os
import pathlib
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

from conftest import BIN, ROOT, read_per_sample, run_flowlik

PACKAGE_DIR = pathlib.Path(os.environ.get("FLOWLIK_PYTHON_DIR", ROOT / "build" / "python"))
if not (PACKAGE_DIR / "flowlik").is_dir():
    pytest.fail(f"the Python package is missing in {PACKAGE_DIR}: build the flowlik_python target",
                pytrace=False)
sys.path.insert(0, str(PACKAGE_DIR))
import flowlik  # noqa: E402

DIGITS = ROOT / "examples" / "digits"


def gaussian(fixtures, n=12):
    p = json.loads((fixtures / "params.json").read_text())["gaussian"]
    mu, s = np.array(p["means"][0]), np.array(p["scales"][0])
    x = mu + s * np.random.default_rng(0).standard_normal((n, mu.size))
    z = (x - mu) / s
    exact = -0.5 * (z**2).sum(1) - np.log(s).sum() - 0.5 * mu.size * math.log(2 * math.pi)
    return x.reshape(n, *p["shape"]), exact


def test_the_closed_form_through_the_api(fixtures):
    x, exact = gaussian(fixtures)
    r = flowlik.score(fixtures / "gaussian.pt", x, dtype="float64", rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(r.log_likelihood, exact, atol=1e-6)
    assert r.log_likelihood.dtype == np.float64 and r.nfe.dtype == np.int64
    np.testing.assert_allclose(r.bpd, -exact / (np.prod(x.shape[1:]) * math.log(2)), atol=1e-6)
    assert r.status == ["ok"] * len(x)
    assert r.summary["samples"] == {"total": len(x), "ok": len(x), "excluded": 0}
    assert r.summary["log_likelihood"]["mean"] == pytest.approx(exact.mean(), abs=1e-6)
    assert r.report["options"]["rtol"] == 1e-9 and r.exit_code == 0


def test_a_path_an_array_and_a_tensor_give_the_programs_values_to_the_bit(tmp_path):
    data = np.load(DIGITS / "test.npy")[:40]
    path = tmp_path / "digits.npy"
    np.save(path, data)
    options = dict(trace="hutchinson", probes=2, seed=3, threads=1)
    by_path = flowlik.score(DIGITS / "model.pt2", path, **options)
    by_array = flowlik.score(DIGITS / "model.pt2", data, **options)
    by_tensor = flowlik.score(DIGITS / "model.pt2", torch.from_numpy(data), **options)
    for other in (by_array, by_tensor):
        assert other.log_likelihood.tobytes() == by_path.log_likelihood.tobytes()
        assert other.nfe.tolist() == by_path.nfe.tolist()

    # The program on the same file: the same per-sample values (its CSV prints 17 digits) and the same report
    # but for the time taken.
    report, per_sample = tmp_path / "r.json", tmp_path / "s.csv"
    run_flowlik("score", DIGITS / "model.pt2", "--data", path, "--trace", "hutchinson", "--probes", "2",
                "--seed", "3", "--threads", "1", "-o", report, "--per-sample", per_sample, "-q")
    rows = read_per_sample(per_sample)
    assert [float(r["log_likelihood"]) for r in rows] == by_path.log_likelihood.tolist()
    program = json.loads(report.read_text())
    api = dict(by_path.report)
    for r in (program, api):
        r.pop("wall_time_s")
        r.pop("per_sample", None)
    assert api == program
    # Data given in memory are named and hashed as such.
    assert by_array.report["data"]["path"] == "<array>"
    assert by_tensor.report["data"]["path"] == "<tensor>"
    assert by_array.report["data"]["sha256"] != program["data"]["sha256"]


def test_every_option_of_the_program_is_a_keyword(tmp_path, fixtures):
    x, _ = gaussian(fixtures)
    out, per_sample = tmp_path / "r.json", tmp_path / "s.csv"
    r = flowlik.score(fixtures / "gaussian.pt", x, output=out, per_sample=per_sample, shard="1/2", check_solve=2,
                      round_trip=True, solver="rk4", steps=8)
    assert json.loads(out.read_text())["shard"]["index"] == 1
    assert r.index.tolist() == list(range(6, 12))
    assert len(read_per_sample(per_sample)) == 6
    assert r.report["check_solve"]["samples"] == 2
    assert r.report["round_trip"]["samples"] == 6


def test_compare_and_inspect(fixtures, tmp_path):
    x, _ = gaussian(fixtures)
    c = flowlik.compare([fixtures / "gaussian.pt", fixtures / "gaussian.pt"], x, trace="hutchinson",
                        max_regression=0.01)
    assert len(c.models) == 2 and c.paired[0]["bpd_diff"]["mean"] == 0.0
    assert c.models[0].log_likelihood.tolist() == c.models[1].log_likelihood.tolist()
    assert c.exit_code == 0 and c.gates[0]["passed"]
    shape = json.loads((fixtures / "params.json").read_text())["gaussian"]["shape"]
    info = flowlik.inspect(fixtures / "gaussian.pt", shape=",".join(map(str, shape)))
    assert info["ok"] and info["contract"]["parameterization"] == "velocity"
    assert info["format"] == "torchscript"


def test_errors_are_the_programs_kinds_and_messages(fixtures, tmp_path):
    x, _ = gaussian(fixtures)
    model = fixtures / "gaussian.pt"
    with pytest.raises(flowlik.InvalidArgument, match="--rtol"):
        flowlik.score(model, x, rtol=-1)
    with pytest.raises(flowlik.InvalidArgument, match="--solver: unknown solver 'adams'"):
        flowlik.score(model, x, solver="adams")
    with pytest.raises(flowlik.InvalidArgument, match="bogus"):
        flowlik.score(model, x, bogus=1)
    with pytest.raises(flowlik.DataError, match="labels"):
        flowlik.score(model, x, labels=np.zeros(3, dtype=np.int64))
    with pytest.raises(flowlik.DataError):
        flowlik.score(model, np.zeros((3,), dtype=np.float32))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(flowlik.ModelError, match="bad.pt"):
        flowlik.score(bad, x)
    with pytest.raises(flowlik.NoSampleScored):
        flowlik.score(fixtures / "nan_for_large_input.pt", np.full((2, 3), 500.0), solver="rk4", steps=2)
    assert issubclass(flowlik.InvalidArgument, flowlik.Error)


def test_the_gil_is_released_while_scoring(fixtures):
    x, _ = gaussian(fixtures, n=64)
    ticks = []
    done = threading.Event()

    def tick():
        while not done.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.005)

    thread = threading.Thread(target=tick)
    thread.start()
    start = time.monotonic()
    flowlik.score(fixtures / "gaussian.pt", x, dtype="float64", rtol=1e-10, atol=1e-10, threads=1)
    end = time.monotonic()
    done.set()
    thread.join()
    during = [t for t in ticks if start < t < end]
    # A thread that held the GIL for the whole score would leave no tick inside it.
    assert end - start > 0.05 and len(during) >= 3, (end - start, len(during))


def test_progress_calls_back(fixtures, capsys):
    x, _ = gaussian(fixtures)
    flowlik.score(fixtures / "gaussian.pt", x, progress=True)
    assert "12/12" in capsys.readouterr().err


def test_an_import_under_another_torch_says_both_versions(tmp_path):
    copy = tmp_path / "flowlik"
    shutil.copytree(PACKAGE_DIR / "flowlik", copy)
    (copy / "_build_info.py").write_text('VERSION = "0.1.0"\nTORCH_VERSION = "2.14.1"\n')
    proc = subprocess.run([sys.executable, "-c", "import flowlik"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    found = torch.__version__.split("+")[0]
    assert "built against torch 2.14.1" in last and f"has torch {found}" in last, last
