"""The steps of the recovery running now, read from its state file for the DR console.

``autograph dr recover`` writes ``HOME/dr/recovery/state.json`` as each step starts and ends
(:class:`~autograph.dr.ops.steps.OperationState`), with its pid while it runs. This module
only reads it: a recovery is *running* when that pid is alive; a state file whose runner is
gone is an *interrupted* recovery (re-running the same command resumes it), shown as such and
never as live.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from autograph.clock import Clock, utc_now
from autograph.commands import pid_alive
from autograph.dr.ops.steps import OperationState

LiveStatus = Literal["passed", "failed", "skipped", "running", "pending"]


class LiveStep(BaseModel):
    """One step as the console shows it; ``duration_seconds`` of a running step is so far."""

    name: str
    status: LiveStatus
    started_at: datetime | None = None
    duration_seconds: float | None = None
    detail: str = ""


class LiveRecovery(BaseModel):
    """``state``: ``none`` (no recovery running or pending), ``running``, or ``interrupted``
    (a state file whose runner is gone: not live)."""

    state: Literal["none", "running", "interrupted"]
    checked_at: datetime
    scenario: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    started_at: datetime | None = None
    current: str | None = None
    runner_pid: int | None = None
    steps: list[LiveStep] = Field(default_factory=list)
    message: str = ""


def state_path(dr_dir: Path) -> Path:
    """Where a recovery keeps its state (as :class:`autograph.dr.recovery.run.Recovery`)."""
    return dr_dir / "recovery" / "state.json"


def read_live(dr_dir: Path, clock: Clock = utc_now) -> LiveRecovery:
    """The recovery's steps now. An unreadable state file is reported in ``message`` with
    state ``interrupted`` (never raised: the console must keep answering)."""
    now = clock()
    path = state_path(dr_dir)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return LiveRecovery(state="none", checked_at=now, message="no recovery running")
    except OSError as exc:
        return LiveRecovery(state="interrupted", checked_at=now,
                            message=f"recovery state unreadable: {exc.strerror}")
    try:
        saved = OperationState.model_validate_json(text)
    except ValueError:  # half-written by a crash; the runner's writes are atomic renames
        return LiveRecovery(state="interrupted", checked_at=now,
                            message="recovery state unreadable (remove it to start over)")
    running = pid_alive(saved.runner_pid)
    return LiveRecovery(
        state="running" if running else "interrupted", checked_at=now,
        scenario=str(saved.params.get("scenario") or "") or None, params=saved.params,
        started_at=saved.started_at, current=saved.current if running else None,
        runner_pid=saved.runner_pid if running else None,
        steps=live_steps(saved, now, running),
        message=(f"recovery running, step {saved.current or 'between steps'}" if running else
                 "an interrupted recovery is pending: re-run the same `autograph dr recover` "
                 "to resume it, or start over with --fresh"))


def live_steps(saved: OperationState, now: datetime, running: bool) -> list[LiveStep]:
    """Every planned step in order: finished ones as recorded, the current one with its time
    so far (``failed``-free: a runner that is gone left it unfinished, shown ``pending``),
    the rest ``pending``."""
    done = {step.name: step for step in saved.done}
    if saved.failed is not None:
        done[saved.failed.name] = saved.failed
    names = saved.planned or [step.name for step in saved.done]
    extra = [n for n in (*done, saved.current) if n and n not in names]
    steps = []
    for name in [*names, *extra]:
        if name in done:
            step = done[name]
            steps.append(LiveStep(name=name, status=step.status, started_at=step.started_at,
                                  duration_seconds=step.duration_seconds, detail=step.detail))
        elif name == saved.current and saved.current_started_at is not None:
            started = saved.current_started_at
            if running:
                steps.append(LiveStep(name=name, status="running", started_at=started,
                                      duration_seconds=round(max(0.0, (
                                          now - started).total_seconds()), 1)))
            else:
                steps.append(LiveStep(name=name, status="pending", started_at=started,
                                      detail="was running when the recovery stopped"))
        else:
            steps.append(LiveStep(name=name, status="pending"))
    return steps
