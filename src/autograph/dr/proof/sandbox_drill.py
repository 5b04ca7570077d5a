"""One sandbox drill as a child process: ``autograph dr drill --scenario SCENARIO --json``,
capped by ``drill_nice_command`` (nice/ionice). Its report and ``drills.jsonl`` line are its own.

The child's stderr lines are its progress (the drill's steps as they end); a known step moves
the fraction on. A stop request interrupts the child (SIGINT): the drill then removes its
sandbox, as after Ctrl-C; a child that has not ended after ``grace`` seconds is killed with its
whole process group.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import IO

from autograph.clock import Clock, utc_now
from autograph.config import Settings
from autograph.dr.models import ProgressFn, no_progress
from autograph.dr.proof.models import ProofRecord

DRILL_SCENARIO = "complete"
CANCELLED = "cancelled before the end: no result"
MILESTONES: tuple[tuple[str, float], ...] = (
    ("sandbox in ", 0.02), ("s3 healthy", 0.08), ("postgres healthy", 0.12),
    ("gateway healthy", 0.2), ("frontend healthy", 0.25), ("load_dataset:", 0.35),
    ("start_writer:", 0.4), ("backup_round_1:", 0.55), ("write_window:", 0.6),
    ("snapshot_before_failure:", 0.62), ("inject_failure:", 0.65), ("verify:", 0.85),
    ("rpo:", 0.9), ("read_back:", 0.95))
"""Progress lines of a ``complete`` drill and how far along each one is (by its prefix)."""


def fraction_after(line: str, current: float) -> float:
    """How far the drill is once it printed ``line`` (never goes back). Pure."""
    for prefix, value in MILESTONES:
        if line.startswith(prefix):
            return max(current, value)
    return current


def _follow(stream: IO[str], progress: ProgressFn, lines: list[str],
            found: dict[str, str]) -> None:
    """Report each line; keep the last ones, and where the sandbox is."""
    fraction = 0.0
    for raw in stream:
        line = raw.strip()
        if not line:
            continue
        lines.append(line)
        del lines[:-20]
        if line.startswith("sandbox in ") and "sandbox" not in found:
            found["sandbox"] = line.removeprefix("sandbox in ")
        fraction = fraction_after(line, fraction)
        progress(line[:200], fraction)


def _stop(proc: subprocess.Popen[str], grace: float) -> None:
    """SIGINT (the drill cleans its sandbox up), then SIGKILL of its group after ``grace``."""
    try:
        proc.send_signal(signal.SIGINT)
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _record(code: int, output: str, lines: list[str], started: ProofRecord) -> ProofRecord:
    try:
        summary = json.loads(output)[0]
        rpo = summary.get("rpo") or {}
        figures = [v for v in (rpo.get("database_seconds"), rpo.get("objects_seconds"))
                   if v is not None]
        passed, report = bool(summary["passed"]), str(summary["report"])
        detail = None if passed else "failed criteria: " + ", ".join(summary.get("failed", []))
        rto, rpo_s = summary.get("rto_seconds"), max(figures) if figures else None
    except (ValueError, KeyError, IndexError, TypeError):
        passed, report, rto, rpo_s = False, None, None, None
        detail = f"the drill exited {code} without a report: " + \
            (lines or ["no output"])[-1][:300]
    return started.model_copy(update={
        "status": "passed" if passed else "failed", "detail": detail, "evidence": report,
        "rto_seconds": rto, "rpo_seconds": rpo_s})


def run_sandbox_drill(settings: Settings, scenario: str = DRILL_SCENARIO,
                      clock: Clock = utc_now, progress: ProgressFn = no_progress,
                      stop: Callable[[], bool] = lambda: False, *,
                      grace: float = 120.0, timeout: float = 4 * 3600) -> ProofRecord:
    """Run the drill child to its end (or until ``stop()`` is true) and return its record;
    a stopped drill is ``failed`` with :data:`CANCELLED` as its detail."""
    from autograph.stack.components import _service_environment

    started, began = clock(), time.monotonic()
    env = {**os.environ, **_service_environment(settings)}
    args = [*settings.drill_nice_command, sys.executable, "-m", "autograph.cli.main", "dr",
            "drill", "--scenario", scenario, "--json"]
    lines: list[str] = []
    found: dict[str, str] = {}
    cancelled = False
    with tempfile.TemporaryFile("w+", encoding="utf-8") as out:
        # umask 022 as from a shell: under the gateway's (supervisord's 027) the sandbox's
        # folders would be closed to the PostgreSQL user and its initdb would fail; "/" as
        # the working folder, which that user can always enter
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.PIPE, text=True,
                                start_new_session=True, umask=0o022, cwd="/")
        assert proc.stderr is not None
        reader = threading.Thread(target=_follow, args=(proc.stderr, progress, lines, found),
                                  name="drill-progress", daemon=True)
        reader.start()
        while proc.poll() is None:
            if stop() or time.monotonic() - began > timeout:
                cancelled = stop()
                _stop(proc, grace)
                break
            time.sleep(0.5)
        reader.join(5)
        out.seek(0)
        output = out.read()
    record = ProofRecord(kind="drill", status="failed", started_at=started,
                         finished_at=clock(), duration_seconds=round(time.monotonic() - began, 3),
                         method="drill", compared=f"sandbox drill {scenario}")
    if cancelled:
        where = f"sandbox {found['sandbox']}" if "sandbox" in found else "no sandbox yet"
        return record.model_copy(update={"detail": f"{CANCELLED} ({where})"})
    return _record(proc.returncode, output, lines, record)
