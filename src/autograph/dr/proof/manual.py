"""A sandbox drill started by hand (the DR console's button): one at a time, stoppable.

It holds the proof lock (``BACKUPS/.locks/proof.lock``) like the scheduled restore tests and
drills, so a second drill, or one while restore tests run, is refused with Conflict (409). A
stop is asked for with a file (``HOME/dr/drill-stop``) that the running drill polls: any
gateway process on the host can ask, whichever one runs the drill.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, Field

from autograph.clock import Clock, utc_now
from autograph.config import Settings
from autograph.dr.models import ProgressFn, no_progress
from autograph.dr.ops import locks
from autograph.dr.proof.models import ProofRecord, append
from autograph.dr.proof.sandbox_drill import CANCELLED, run_sandbox_drill
from autograph.errors import Conflict, NotFound, OperationFailed

LOCK_KIND = "proof"
OPERATION = "sandbox drill"
STOP_NAME = "drill-stop"


class DrillRunning(BaseModel):
    """What holds the proof lock now (a drill, or the scheduled restore tests)."""

    running: bool
    operation: str | None = None
    started_by: str | None = None
    since: datetime | None = None
    pid: int | None = None
    is_drill: bool = Field(default=False, description="a sandbox drill started by hand")
    stop_requested: bool = False


def _stop_file(settings: Settings) -> Path:
    return settings.dr_dir / STOP_NAME


def current(settings: Settings) -> DrillRunning:
    """What runs under the proof lock right now, if anything."""
    holder = locks.holder(settings.backups_dir, LOCK_KIND)
    if holder is None:
        return DrillRunning(running=False)
    since = holder.get("since")
    pid = holder.get("pid")
    return DrillRunning(
        running=True, operation=holder.get("operation"), started_by=holder.get("target") or None,
        since=datetime.fromisoformat(since.replace("Z", "+00:00")) if since else None,
        pid=int(str(pid)) if str(pid).isdigit() else None,
        is_drill=holder.get("operation") == OPERATION,
        stop_requested=_stop_file(settings).exists())


def take(settings: Settings, actor: str) -> locks.OperationLock:
    """The proof lock for a drill by ``actor``. Raises Conflict (409) naming what runs."""
    try:
        lock = locks.acquire(settings.backups_dir, LOCK_KIND, OPERATION, actor)
    except Conflict:
        now = current(settings)
        what = now.operation or "an operation"
        raise Conflict(f"a {what} is already running (since {now.since or '?'}); one drill or "
                       "restore test runs at a time") from None
    _stop_file(settings).unlink(missing_ok=True)
    return lock


def request_stop(settings: Settings) -> DrillRunning:
    """Ask the running hand-started drill to stop. Raises NotFound when none runs, Conflict
    when the lock is held by scheduled restore tests (they are not stopped from here)."""
    now = current(settings)
    if not now.running:
        raise NotFound("no drill is running")
    if not now.is_drill:
        raise Conflict(f"what runs is {now.operation}, not a drill started by hand; it is not "
                       "stopped from here")
    settings.dr_dir.mkdir(parents=True, exist_ok=True)
    _stop_file(settings).touch()
    return now.model_copy(update={"stop_requested": True})


def run(settings: Settings, lock: locks.OperationLock, progress: ProgressFn = no_progress,
        clock: Clock = utc_now) -> ProofRecord:
    """Run the drill under ``lock`` (released at the end) and record it in the proof history.

    Raises OperationFailed when it was stopped (nothing recorded) or did not pass (recorded).
    """
    stop = _stop_file(settings)
    try:
        record = run_sandbox_drill(settings, clock=clock, progress=progress, stop=stop.exists)
    finally:
        stop.unlink(missing_ok=True)
        lock.release()
    if record.detail and record.detail.startswith(CANCELLED):
        raise OperationFailed(f"drill stopped by request: {record.detail}; the drill removes "
                              "its sandbox when it stops")
    append(settings.dr_dir, record)
    if record.status != "passed":
        raise OperationFailed(f"the drill did not pass: {record.detail}"
                              + (f"; report {record.evidence}" if record.evidence else ""))
    return record
