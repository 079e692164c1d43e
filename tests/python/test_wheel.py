"""The wheel (issue 21): built from the repository (`pip wheel .`, scikit-build-core driving the CMake build),
installed into a fresh virtual environment that gets the pinned torch from PyPI (uv's cache) and nothing of the
build tree, then the `flowlik` command and the Python API run there: bit for bit the program `./scripts/setup`
built, the closed form, the exporter's import, and the torch requirement in the wheel's metadata.

The wheel builds in build-wheel/, beside build/ and at the same depth, so that with ccache's base folder at the
repository's root (CMakeLists.txt sets it) its compiler commands are build/'s and ccache serves them."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import BIN, ROOT, read_per_sample

DIGITS = ROOT / "examples" / "digits"


def pinned_torch():
    for line in (ROOT / "scripts" / "requirements.txt").read_text().splitlines():
        if line.startswith("torch=="):
            return line.strip()
    raise AssertionError("scripts/requirements.txt pins no torch")


def run(*args, **kwargs):
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv, work): a fresh virtual environment with the pinned torch and the wheel installed."""
    work = tmp_path_factory.mktemp("wheel")
    # build/'s generator and compiler, so that the compiler commands (the precompiled header's path among them)
    # are the same. The compiler by its name too: scikit-build-core would take Python's (g++), and ccache keys
    # g++'s compiles apart from c++'s (a fresh clone's wheel build with g++ took 13 min beside the other tests;
    # with build/'s c++, 60 of 60 compiles came from build/'s, 63 s alone).
    env = dict(os.environ, CMAKE_BUILD_PARALLEL_LEVEL=str(os.cpu_count() or 2), CMAKE_GENERATOR="Unix Makefiles")
    cache = ROOT / "build" / "CMakeCache.txt"
    compiler = [line.split("=", 1)[1] for line in (cache.read_text().splitlines() if cache.exists() else [])
                if line.startswith("CMAKE_CXX_COMPILER:")]
    if compiler:
        env["CXX"] = compiler[0]
    run(sys.executable, "-m", "pip", "wheel", ROOT, "--no-build-isolation", "--no-deps", "-q",
        "--disable-pip-version-check", "-w", work / "dist", "-C", "build-dir=build-wheel", cwd=ROOT, env=env)
    wheels = list((work / "dist").glob("flowlik-*.whl"))
    assert len(wheels) == 1, wheels
    venv = work / "venv"
    run(sys.executable, "-m", "venv", venv)
    pip = [venv / "bin" / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    # The pinned torch as scripts/setup installs it (through uv, linked from its cache in seconds, where there
    # is one; pip unpacks 6 GB), then the wheel with pip, as a user installs it.
    uv = ROOT / ".venv" / "bin" / "uv"
    installer = [uv, "pip", "install", "-q", "--python", venv / "bin" / "python"] if uv.exists() else pip
    run(*installer, pinned_torch(), "-c", ROOT / "scripts" / "requirements.txt")
    run(*pip, wheels[0])
    yield venv, work
    shutil.rmtree(venv)  # several GB with torch: not left behind for pytest's last three runs


@pytest.fixture(scope="module")
def digits_rows(tmp_path_factory):
    """The first 48 held-out digits: enough rows for two blocks, a few seconds to score."""
    path = tmp_path_factory.mktemp("digits") / "first.npy"
    np.save(path, np.load(DIGITS / "test.npy")[:48])
    return path


def clean_env(venv):
    """What a user's shell has: the venv's bin first, no paths into the repository or its builds."""
    return {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")}


def test_the_wheel_requires_the_torch_it_was_built_against(installed):
    venv, work = installed
    requires = run(venv / "bin" / "python", "-c",
                   "import importlib.metadata as m; print('\\n'.join(m.requires('flowlik')))",
                   cwd=work, env=clean_env(venv)).stdout.split("\n")
    assert pinned_torch() in requires
    sys_path = run(venv / "bin" / "python", "-c", "import sys, flowlik; print(flowlik.__file__); print(sys.path)",
                   cwd=work, env=clean_env(venv)).stdout
    assert str(ROOT) not in sys_path, sys_path


def test_the_command_gives_the_programs_values_to_the_bit(installed, digits_rows, tmp_path):
    venv, work = installed
    command = venv / "bin" / "flowlik"
    assert run(command, "--version", cwd=work, env=clean_env(venv)).stdout.strip() == "0.1.0"
    args = ["score", DIGITS / "model.pt2", "--data", digits_rows, "--threads", "1", "-q"]
    run(command, *args, "--per-sample", tmp_path / "wheel.csv", "-o", tmp_path / "wheel.json", cwd=work,
        env=clean_env(venv))
    run(BIN, *args, "--per-sample", tmp_path / "build.csv", "-o", tmp_path / "build.json")
    wheel_rows, build_rows = read_per_sample(tmp_path / "wheel.csv"), read_per_sample(tmp_path / "build.csv")
    assert wheel_rows == build_rows
    wheel, build = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("wheel", "build"))
    assert wheel["metrics"] == build["metrics"] and wheel["model"]["sha256"] == build["model"]["sha256"]
    # The run paths are relative to the installed torch: nothing of the build tree is loaded.
    maps = run(command, "inspect", DIGITS / "model.pt2", "--json", cwd=work, env=clean_env(venv))
    assert json.loads(maps.stdout)["smoke"]["finite"]


SCRIPT = """
import json, sys
import numpy
import flowlik, flowlik.export, flowlik_export
from flowlik.export import export
data = numpy.load(sys.argv[1])
a = flowlik.score(sys.argv[2], sys.argv[1], threads=1)
b = flowlik.score(sys.argv[2], data, threads=1)
try:
    flowlik.score(sys.argv[2], data, rtol=-1)
    error = None
except flowlik.InvalidArgument as e:
    error = str(e)
print(json.dumps({"path": a.log_likelihood.tolist(), "array": b.log_likelihood.tolist(), "nfe": a.nfe.tolist(),
                  "bpd": a.summary["bpd"]["mean"], "error": error, "export": export is flowlik_export.export}))
"""


def test_the_api_in_the_fresh_environment(installed, digits_rows, tmp_path):
    venv, work = installed
    out = run(venv / "bin" / "python", "-c", SCRIPT, digits_rows, DIGITS / "model.pt2", cwd=work,
              env=clean_env(venv)).stdout
    got = json.loads(out.strip().splitlines()[-1])
    run(BIN, "score", DIGITS / "model.pt2", "--data", digits_rows, "--threads", "1", "-q",
        "--per-sample", tmp_path / "build.csv")
    rows = read_per_sample(tmp_path / "build.csv")
    assert got["path"] == [float(r["log_likelihood"]) for r in rows]
    assert got["array"] == got["path"]
    assert got["nfe"] == [int(r["nfe"]) for r in rows]
    assert got["error"] is not None and "--rtol" in got["error"]
    assert got["export"] is True


CLOSED_FORM = """
import json, sys
import numpy
import flowlik
p = json.load(open(sys.argv[1]))["gaussian"]
mu, s = numpy.array(p["means"][0]), numpy.array(p["scales"][0])
x = mu + s * numpy.random.default_rng(0).standard_normal((8, mu.size))
z = (x - mu) / s
exact = -0.5 * (z**2).sum(1) - numpy.log(s).sum() - 0.5 * mu.size * numpy.log(2 * numpy.pi)
numpy.save(sys.argv[3], x.reshape(8, *p["shape"]))
r = flowlik.score(sys.argv[2], sys.argv[3], dtype="float64", rtol=1e-9, atol=1e-9)
print(json.dumps({"got": r.log_likelihood.tolist(), "exact": exact.tolist()}))
"""


def test_the_closed_form_in_the_fresh_environment(installed, fixtures, tmp_path):
    venv, work = installed
    fixtures = fixtures.resolve()  # the script runs elsewhere
    data = tmp_path / "gaussian.npy"
    out = run(venv / "bin" / "python", "-c", CLOSED_FORM, fixtures / "params.json", fixtures / "gaussian.pt", data,
              cwd=work, env=clean_env(venv)).stdout
    got = json.loads(out.strip().splitlines()[-1])
    assert max(abs(a - b) for a, b in zip(got["got"], got["exact"])) < 1e-6
    run(BIN, "score", fixtures / "gaussian.pt", "--data", data, "--dtype", "float64", "--rtol", "1e-9", "--atol",
        "1e-9", "-q", "--per-sample", tmp_path / "build.csv")
    assert [float(r["log_likelihood"]) for r in read_per_sample(tmp_path / "build.csv")] == got["got"]
