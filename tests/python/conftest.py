"""Shared helpers for the command-line tests: where the binary and fixtures are, and how to run it."""
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
# Absolute, as CTest passes them: some tests run the program from another working folder.
BIN = pathlib.Path(os.environ.get("FLOWLIK_BIN", ROOT / "build" / "flowlik")).resolve()
FIXTURES = pathlib.Path(os.environ.get("FLOWLIK_TEST_DATA_DIR", ROOT / "build" / "test_data")).resolve()


def run_flowlik(*args, check=True, timeout=600):
    """Runs flowlik with `args`; returns the CompletedProcess. With check, a non-zero exit fails."""
    proc = subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        pytest.fail(f"flowlik {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def read_per_sample(path):
    """The rows of a per-sample CSV (or of its journal, whose `# flowlik-run {...}` identity line is skipped)
    as dicts."""
    import csv
    with open(path, newline="") as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


def run_identity(path):
    """The identity of the run that wrote a per-sample CSV: a journal's (FILE.csv.partial) first line, a
    finished file's FILE.csv.run.json."""
    import json
    path = pathlib.Path(path)
    if path.suffix == ".partial":
        with open(path) as f:
            first = f.readline()
        assert first.startswith("# flowlik-run "), first
        return json.loads(first[len("# flowlik-run "):])
    return json.loads(path.with_name(path.name + ".run.json").read_text())["flowlik_run"]


@pytest.fixture
def fixtures():
    if not (FIXTURES / "params.json").exists():
        pytest.fail(f"fixtures missing in {FIXTURES}: build the flowlik_fixtures target")
    return FIXTURES
