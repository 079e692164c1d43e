"""python -m flowlik_export._compile_worker PROGRAM RESULT [CPU]: compiles the ExportedProgram saved at
PROGRAM with AOTInductor (pt2._compile, for the CPUs CPU names: pt2.CPU_TARGETS) and writes {"files": [...]} or {"error": "..."} to RESULT. pt2.py runs one
per core, so that the C++ compiles of a package's functions run in parallel."""
import json
import sys

import torch


def main(program_path, result_path, cpu="native"):
    from flowlik_export import pt2

    try:
        outcome = {"files": pt2._compile(torch.export.load(program_path), cpu)}
    except Exception as e:  # reported by the parent, which names the function
        outcome = {"error": pt2._first_line(e.__cause__ or e)}
    with open(result_path, "w") as out:
        json.dump(outcome, out)


if __name__ == "__main__":
    main(*sys.argv[1:4])
