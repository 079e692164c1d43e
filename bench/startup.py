"""Start-up of the flowlik program against the floor of any LibTorch program, in one run.

    .venv/bin/python bench/startup.py [--build build] [--runs 20]

Runs `flowlik --version` and bench/startup_floor.cpp (linked with libtorch_cpu and c10 only, as built in
build/flowlik_startup_floor) alternately, and reports the median wall time and peak resident memory of
each, and their ratios. Target (issue 10): flowlik within 10% of the floor in both. Writes
bench/startup.json. Run it on an otherwise idle machine.
"""
import argparse
import json
import os
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(command):
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{command} failed")
    return seconds, usage.ru_maxrss / 1024.0  # MB


def loaded_libraries(command):
    """The shared libraries the program loads, as the dynamic loader reports them."""
    env = dict(os.environ, LD_DEBUG="libs")
    out = subprocess.run(command, capture_output=True, text=True, env=env).stderr
    return sorted({line.split("calling init: ")[1].strip().rsplit("/", 1)[-1]
                   for line in out.splitlines() if "calling init: " in line})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", default=str(ROOT / "build"))
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    programs = {"flowlik --version": [f"{args.build}/flowlik", "--version"],
                "floor (libtorch_cpu + c10)": [f"{args.build}/flowlik_startup_floor"]}
    for command in programs.values():
        measure(command)  # warm the page cache
    samples = {name: [] for name in programs}
    for _ in range(args.runs):
        for name, command in programs.items():
            samples[name].append(measure(command))
    rows = {}
    for name, values in samples.items():
        rows[name] = {"seconds_median": statistics.median(v[0] for v in values),
                      "rss_mb_median": statistics.median(v[1] for v in values),
                      "libraries": loaded_libraries(programs[name])}
    floor = rows["floor (libtorch_cpu + c10)"]
    ours = rows["flowlik --version"]
    result = {"runs": args.runs, "programs": rows,
              "time_ratio": ours["seconds_median"] / floor["seconds_median"],
              "rss_ratio": ours["rss_mb_median"] / floor["rss_mb_median"],
              # libtorch_cpu itself needs the CUDA runtime (libcudart) in a CUDA build: the floor has it too.
              "libraries_beyond_floor": sorted(set(ours["libraries"]) - set(floor["libraries"]))}
    result["target_met"] = result["time_ratio"] <= 1.10 and result["rss_ratio"] <= 1.10
    for name, row in rows.items():
        print(f"{name:32s} {row['seconds_median']:.3f} s  {row['rss_mb_median']:.0f} MB  "
              f"({len(row['libraries'])} shared libraries initialised)")
    print(f"ratio flowlik/floor: time {result['time_ratio']:.3f}, memory {result['rss_ratio']:.3f} "
          f"(target <= 1.10: {'met' if result['target_met'] else 'not met'})")
    print(f"libraries flowlik loads beyond the floor's: {', '.join(result['libraries_beyond_floor']) or 'none'}")
    (ROOT / "bench" / "startup.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
