"""Start-up of the shipped ``autograph`` program against its floor, in one run (not a test).

Each round runs, in turn: the bare interpreter (``python -c pass``, the floor), a bare Typer
import (``python -c "import typer"``), the shipped program with each command line given, and,
with ``--before DIR``, the same command lines from another source tree (e.g. ``git archive``
of an earlier commit, unpacked: its ``src`` put first on ``PYTHONPATH``, run as the program's
former entry point ``autograph.cli.main:run``). Every process's CPU (user + system, from
``wait4``) and wall time are recorded; at the end, per command line, the median and min-max
CPU seconds and the paired ratio shipped/before (same round, same load).

    nice -n 10 .venv/bin/python bench/startup.py [--rounds 9] [--before /tmp/old]
        [-- "backup db list --help" "--version" ...]
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROGRAM = str(Path(sys.executable).parent / "autograph")
DEFAULT = ["backup db list --help", "backup db restore --help", "--version"]


def measure(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one process."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=env)
    _, _, usage = os.wait4(proc.pid, 0)
    return usage.ru_utime + usage.ru_stime, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--before", type=Path, help="an earlier source tree (holding src/)")
    parser.add_argument("lines", nargs="*", default=DEFAULT, help="command lines to time")
    args = parser.parse_args()

    runs: dict[str, list[tuple[float, float]]] = {}
    before_env = None
    if args.before:
        before_env = {**os.environ, "PYTHONPATH": str(args.before.resolve() / "src")}
    former = [sys.executable, "-c", "from autograph.cli.main import run; run()"]
    loads = []
    for _ in range(args.rounds):
        runs.setdefault("python -c pass", []).append(measure([sys.executable, "-c", "pass"]))
        runs.setdefault("import typer", []).append(
            measure([sys.executable, "-c", "import typer"]))
        for line in args.lines:
            words = shlex.split(line)
            if before_env is not None:
                runs.setdefault(f"before: {line}", []).append(
                    measure([*former, *words], before_env))
            runs.setdefault(line, []).append(measure([PROGRAM, *words]))
        loads.append(os.getloadavg()[0])
    print(f"{args.rounds} rounds, load average {min(loads):.1f}-{max(loads):.1f}")
    for label, samples in runs.items():
        cpu = [c for c, _ in samples]
        print(f"  {label:<40} CPU {statistics.median(cpu):.3f} s ({min(cpu):.3f}-{max(cpu):.3f})"
              f"  wall {statistics.median(w for _, w in samples):.3f} s")
    if before_env is not None:
        for line in args.lines:
            ratios = [(ours[0] / old[0], ours[1] / old[1])
                      for ours, old in zip(runs[line], runs[f"before: {line}"], strict=True)]
            cpu_r, wall_r = [r[0] for r in ratios], [r[1] for r in ratios]
            print(f"  {line}: shipped/before CPU {statistics.median(cpu_r):.2f}x "
                  f"({min(cpu_r):.2f}-{max(cpu_r):.2f}), wall {statistics.median(wall_r):.2f}x "
                  f"({min(wall_r):.2f}-{max(wall_r):.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
