"""The library as a consumer sees it: builds a project against flowlik and checks its number.

    check_consumer.py example BUILD_DIR          the in-tree example, built with flowlik
    check_consumer.py find_package BUILD_DIR     install BUILD_DIR, then a project finds the package
    check_consumer.py add_subdirectory BUILD_DIR a project adds flowlik's source tree

Each runs the library example (examples/library/score_batch.cpp) on the first 16 held-out digits and
requires its bpd to equal, bit for bit, the one `flowlik score` reports for the same data and defaults.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

SOURCE = Path(__file__).resolve().parents[2]
MODEL = SOURCE / "examples" / "digits" / "model.pt2"
SAMPLES = 16


def run(*args, **kwargs):
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(map(str, args))}\n{proc.stdout[-4000:]}\n"
                 f"{proc.stderr[-4000:]}")
    return proc.stdout


def torch_prefix():
    return run(sys.executable, "-c", "import torch.utils; print(torch.utils.cmake_prefix_path)").strip()


def build_consumer(mode, build_dir, work):
    consumer = Path(build_dir) / f"consumer-{mode}"
    prefixes = [torch_prefix()]
    if mode == "find_package":
        prefix = work / "prefix"
        run("cmake", "--install", build_dir, "--prefix", prefix)
        if not (prefix / "include" / "flowlik" / "flowlik.h").exists():
            sys.exit("the install has no include/flowlik/flowlik.h")
        leaked = [p for p in (prefix / "include").rglob("*.h") if "flowlik" not in p.parts]
        if leaked:
            sys.exit(f"the install has headers outside include/flowlik: {leaked[:3]}")
        prefixes.insert(0, str(prefix))
    # flowlik's compiles as the subproject are build/'s, served by ccache (where it is installed) as flowlik's
    # CMakeLists sets it up (FLOWLIK_CCACHE): flowlik's binary folder is a sibling of build/ (the compiler runs
    # there, and paths are hashed relative to the source), and position-independent code is asked for, as
    # flowlik's own build does (a consumer's choice).
    options = ["-DFLOWLIK_CCACHE=ON", "-DCMAKE_POSITION_INDEPENDENT_CODE=ON",
               f"-DFLOWLIK_BINARY_DIR={build_dir.parent / f'{build_dir.name}-subproject'}"]
    run("cmake", "-S", SOURCE / "tests" / "consumer", "-B", consumer, "-DCMAKE_BUILD_TYPE=Release",
        f"-DCMAKE_PREFIX_PATH={';'.join(prefixes)}", f"-DFLOWLIK_CONSUMER_MODE={mode}",
        f"-DFLOWLIK_SOURCE_DIR={SOURCE}", *options)
    run("cmake", "--build", consumer, "-j", str(os.cpu_count() or 2), "--target", "consumer")
    return consumer / "consumer"


def cli_bpd(flowlik, work):
    data = np.load(SOURCE / "examples" / "digits" / "test.npy")[:SAMPLES]
    path = work / "first.npy"
    np.save(path, data)
    report = work / "report.json"
    run(flowlik, "score", MODEL, "--data", path, "-o", report, "-q")
    return path, json.loads(report.read_text())["metrics"]["bpd"]["mean"]


def main():
    mode, build_dir = sys.argv[1], Path(sys.argv[2]).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data, expected = cli_bpd(build_dir / "flowlik", work)
        program = build_dir / "flowlik_library_example" if mode == "example" else build_consumer(mode, build_dir, work)
        out = run(program, MODEL, data, SAMPLES)
        match = re.search(r"^bpd (\S+) \+- ", out, re.M)
        if not match:
            sys.exit(f"no bpd line in the example's output:\n{out}")
        got = float(match.group(1))
        print(out, end="")
        print(f"flowlik score: bpd {expected!r}; library ({mode}): bpd {got!r}")
        if got != expected:
            sys.exit(f"the library's bpd {got!r} differs from the program's {expected!r}")
        if mode != "example":
            needed = run("readelf", "-d", program)
            if "libtorch_cuda" in needed:
                sys.exit("the consumer links libtorch_cuda: a CPU program would load the CUDA libraries")


if __name__ == "__main__":
    main()
