"""The ``flowlik`` command of an installed wheel: the compiled program inside the package, run in place of this
process (its exit status, signals and output are the program's own)."""
import os
import sys
from pathlib import Path


def main() -> None:
    program = Path(__file__).resolve().parent / "bin" / "flowlik"
    if not program.is_file():
        sys.exit(f"flowlik: error: {program}: the program is not part of this installation (install the wheel)")
    os.execv(program, [str(program), *sys.argv[1:]])
