"""A model package is untrusted input (issue 19): hostile archives are refused before anything in them is
extracted or run, with the model-error exit code and one line naming the file and the member; nothing outside
the run's own folder changes; extracted functions never outlive the run (not after a failure, a signal or
kill -9); and the library's stand-in for libtorch.so is never loaded from a path compiled into the program."""
import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

from conftest import BIN, ROOT, run_flowlik

DIGITS = ROOT / "examples" / "digits"
FAST = ["--solver", "rk4", "--steps", "2", "-q"]


def tree(root):
    """Every file under `root` with its size and modification time."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = pathlib.Path(dirpath) / f
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


def rewrite(source, target, edit):
    """Copies the zip `source` to `target` member by member; edit(name, data) returns a list of
    (name, data) to write in its place (empty to drop it). Members are stored, as PyTorch writes them."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            for name, data in edit(info.filename, zin.read(info)):
                zout.writestr(zipfile.ZipInfo(name), data)


@pytest.fixture
def run_dir(tmp_path):
    """A run folder with the digits .pt2's data and a TMPDIR of its own, and a victim file beside it."""
    work = tmp_path / "run"
    work.mkdir()
    (work / "tmp").mkdir()
    np.save(work / "d.npy", np.load(DIGITS / "test.npy")[:2])
    victim = tmp_path / "victim.npy"
    victim.write_bytes(b"precious")
    return work


def score(work, model, env_extra=None, timeout=300):
    env = {**os.environ, "TMPDIR": str(work / "tmp"), **(env_extra or {})}
    return subprocess.run([str(BIN), "score", str(model), "--data", str(work / "d.npy"), *FAST],
                          capture_output=True, text=True, env=env, timeout=timeout, cwd=work,
                          stdin=subprocess.DEVNULL)


FUNCTION = "model/data/aotinductor/velocity_float32/"


def traversal(name, data):
    extra = [(FUNCTION + "../../../../../../victim.npy", b"overwritten")] \
        if name.startswith(FUNCTION) and name.endswith(".so") else []
    return [(name, data)] + extra


def absolute(name, data):
    return [(name, data)] + ([("/tmp/flowlik-absolute-member", b"x")] if name.endswith("archive_format") else [])


def outside(name, data):
    return [(name, data)] + ([("other/planted.so", b"x")] if name.endswith("archive_format") else [])


def duplicate(name, data):
    return [(name, data)] * (2 if name.endswith(".so") and "velocity_float32" in name else 1)


def backslash(name, data):
    return [(name, data)] + ([("model\\..\\..\\victim.npy", b"x")] if name.endswith("archive_format") else [])


def garbage_library(name, data):
    return [(name, b"\x7fELF but not really" * 100 if name.endswith(".so") else data)]


def bad_metadata(name, data):
    return [(name, b"{not json" if name.endswith("_metadata.json") else data)]


def metadata_edit(key, value):
    def edit(name, data):
        if not name.endswith("_metadata.json"):
            return [(name, data)]
        meta = json.loads(data)
        meta[key] = value
        return [(name, json.dumps(meta).encode())]
    return edit


HOSTILE = {
    "traversal": (traversal, "'..' component"),
    "absolute": (absolute, "an absolute path"),
    "outside the top folder": (outside, "another top folder"),
    "duplicate": (duplicate, "the same name"),
    "backslash": (backslash, "a backslash"),
    "bad metadata": (bad_metadata, "is not valid JSON"),
    "metadata not strings": (metadata_edit("flowlik.parameters", 7), "is not a string"),
    "another machine": (metadata_edit("AOTI_MACHINE", "aarch64"), "compiled for a aarch64 processor"),
    "garbage library": (garbage_library, "cannot load the compiled 'velocity' function"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_package_is_refused_and_nothing_outside_the_run_changes(run_dir, case):
    edit, expected = HOSTILE[case]
    model = run_dir / "model.pt2"
    rewrite(DIGITS / "model.pt2", model, edit)
    outside_before = tree(run_dir.parent)
    proc = score(run_dir, model)
    assert proc.returncode == 4, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(model) in lines[0] and expected in lines[0], proc.stderr
    assert "internal error" not in proc.stderr
    assert tree(run_dir.parent) == outside_before  # the victim, the data, the package: all untouched
    assert list((run_dir / "tmp").iterdir()) == []  # no extraction folder left, even after a failure
    assert not pathlib.Path("/tmp/flowlik-absolute-member").exists()


def write_bomb(source, target, member_suffix, inflated):
    """`source` with its first member named *member_suffix replaced by `inflated` bytes of zeros, deflated
    (a thousandfold smaller)."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        done = False
        for info in zin.infolist():
            if not done and info.filename.endswith(member_suffix):
                done = True
                bomb = zipfile.ZipInfo(info.filename)
                bomb.compress_type = zipfile.ZIP_DEFLATED
                with zout.open(bomb, "w", force_zip64=True) as f:
                    chunk = bytes(1 << 20)
                    for _ in range(inflated >> 20):
                        f.write(chunk)
            else:
                zout.writestr(zipfile.ZipInfo(info.filename), zin.read(info))
    assert done


@pytest.mark.parametrize("member", ["archive_format", "wrapper.so"])
def test_a_zip_bomb_is_refused_before_it_is_inflated(run_dir, member):
    model = run_dir / "model.pt2"
    write_bomb(DIGITS / "model.pt2", model, member, 256 << 20)
    assert model.stat().st_size < 15 << 20
    before = tree(run_dir.parent)
    start = time.monotonic()
    proc = score(run_dir, model)
    assert proc.returncode == 4, proc.stderr
    assert "compression ratio" in proc.stderr and "zip bomb" in proc.stderr, proc.stderr
    assert time.monotonic() - start < 20  # refused from the listing, not after inflating 256 MB
    assert tree(run_dir.parent) == before
    assert list((run_dir / "tmp").iterdir()) == []


def test_a_missing_tmpdir_is_named(run_dir):
    proc = score(run_dir, DIGITS / "model.pt2", {"TMPDIR": str(run_dir / "no-such-folder")})
    assert proc.returncode == 4, proc.stderr
    assert "no-such-folder" in proc.stderr and "TMPDIR" in proc.stderr, proc.stderr


def test_nothing_is_left_in_tmpdir_after_a_run_a_signal_or_kill_9(run_dir):
    env = {**os.environ, "TMPDIR": str(run_dir / "tmp")}
    data = run_dir / "many.npy"
    np.save(data, np.load(DIGITS / "test.npy"))
    args = [str(BIN), "score", str(DIGITS / "model.pt2"), "--data", str(data), "--threads", "1", "-q"]
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.5)
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == -sig
    # kill -9 may have hit the load itself; a folder a dead process left is removed by the next run.
    stale = run_dir / "tmp" / "flowlik-999999999-abcdef"
    stale.mkdir()
    (stale / "velocity.so").write_bytes(b"x" * 1000)
    assert score(run_dir, DIGITS / "model.pt2").returncode == 0
    assert list((run_dir / "tmp").iterdir()) == []


def test_a_package_for_a_cpu_this_machine_lacks_is_refused(run_dir):
    flags = set()
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    if "amx_tile" in flags:
        pytest.skip("this CPU has every instruction set AOTInductor records (AMX included)")
    model = run_dir / "model.pt2"
    rewrite(DIGITS / "model.pt2", model, metadata_edit("AOTI_CPU_ISA", "AVX512 AVX512_VNNI AMX_TILE"))
    proc = score(run_dir, model)
    assert proc.returncode == 4, proc.stderr
    assert "AMX_TILE" in proc.stderr and "amx_tile" in proc.stderr and "re-export it on this machine" \
        in proc.stderr, proc.stderr


def test_a_load_failure_does_not_blame_the_local_version_suffix(run_dir):
    model = run_dir / "model.pt2"
    rewrite(DIGITS / "model.pt2", model, garbage_library)
    proc = score(run_dir, model)
    assert proc.returncode == 4
    assert "re-export it with PyTorch" not in proc.stderr and "conditioning from" not in proc.stderr


def installed(tmp_path_factory):
    """flowlik installed into a fresh prefix from the build tree."""
    build = BIN.parent
    prefix = tmp_path_factory.mktemp("prefix")
    proc = subprocess.run(["cmake", "--install", str(build), "--prefix", str(prefix)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return prefix


def test_the_installed_program_runs_with_a_clean_environment_and_its_own_stand_in(tmp_path_factory,
                                                                                 tmp_path):
    prefix = installed(tmp_path_factory)
    data = tmp_path / "d.npy"
    np.save(data, np.load(DIGITS / "test.npy")[:2])
    # LD_DEBUG=libs names each library as its initialisers run: the stand-in must come from the prefix.
    proc = subprocess.run(
        [str(prefix / "bin" / "flowlik"), "score", str(DIGITS / "model.pt2"), "--data", str(data), *FAST],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "LD_DEBUG": "libs"},
        timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    initialised = [line for line in proc.stderr.splitlines() if "calling init:" in line]
    stand_ins = [line for line in initialised if "libflowlik_libtorch_stub" in line]
    assert len(stand_ins) == 1 and str(prefix) in stand_ins[0], stand_ins
    assert not any(str(BIN.parent) in line for line in initialised), "something loaded from the build tree"
    assert not any("libtorch_cuda" in line for line in initialised)
