"""Operations as sequences of named, timed steps, each with a recorded result.

A recovery (or a drill) is a list of :class:`Step`. :class:`Operation` runs them in order, times
each one, bounds it by its timeout, and records its :class:`StepRecord`. With a state file, every
finished step is written down as it ends, so a re-run after an interrupted operation (a crash, a
SIGKILL, a failed step) continues from the first unfinished step with the recorded results and
data of the finished ones. Steps must therefore be idempotent: a step killed half-way runs again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, Field

from autograph.clock import Clock, utc_now
from autograph.dr.models import ProgressFn, StepRecord, StepStatus, jsonable, no_progress
from autograph.errors import AutographError, Conflict, OperationFailed

Timer = Callable[[], float]
M = TypeVar("M", bound=BaseModel)


class StepTimer:
    """Records the steps of an operation that is not a resumable :class:`Operation` (a backup,
    a restore): each step runs from the last :meth:`start` to its :meth:`done`."""

    def __init__(self, clock: Clock = utc_now, timer: Timer = time.monotonic) -> None:
        self.clock, self.timer = clock, timer
        self.steps: list[StepRecord] = []
        self.start()

    def start(self) -> None:
        """The next step starts now."""
        self._started_at, self._since = self.clock(), self.timer()

    def done(self, name: str, detail: str) -> StepRecord:
        """Record the step ``name`` as passed, timed from the last :meth:`start`."""
        record = StepRecord(name=name, detail=detail, started_at=self._started_at,
                            duration_seconds=round(self.timer() - self._since, 3))
        self.steps.append(record)
        return record


class Skip(Exception):
    """Raised by a step that decides it has nothing to do (recorded as ``skipped``)."""

    def __init__(self, detail: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.data = data or {}


@dataclass(frozen=True)
class Outcome:
    """What a step returns when it passed: a detail line and data for later steps."""

    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class StepContext:
    """What a running step sees: the results of the steps before it and its own deadline."""

    results: dict[str, StepRecord]
    deadline: float
    timer: Timer = time.monotonic

    def data(self, step: str) -> dict[str, Any]:
        """The data recorded by an earlier step (empty if it recorded none or did not run)."""
        result = self.results.get(step)
        return result.data if result else {}

    def model(self, step: str, model: type[M]) -> M:
        """The data of an earlier step read back as its model. Raises ValidationError when
        the step recorded other data (or none)."""
        return model.model_validate(self.data(step))

    def remaining(self) -> float:
        """Seconds left before this step's timeout (at least 1)."""
        return max(1.0, self.deadline - self.timer())


StepFunction = Callable[[StepContext], "Outcome | str | None"]


@dataclass(frozen=True)
class Step:
    """A named unit of work with a timeout and what to do if it fails."""

    name: str
    run: StepFunction
    timeout_seconds: float
    on_failure: str = ""


class OperationResult(BaseModel):
    """The record of a whole operation: every step, in order, and the worst status."""

    operation: str
    params: dict[str, Any]
    started_at: datetime
    finished_at: datetime
    steps: list[StepRecord]
    failed_step: str | None = None
    next_action: str = ""

    @property
    def status(self) -> StepStatus:
        """``failed`` if any step failed, else ``passed`` (skipped steps do not fail a run)."""
        return "failed" if any(s.status == "failed" for s in self.steps) else "passed"

    def step(self, name: str) -> StepRecord | None:
        """The result of the step called ``name``, if it ran."""
        return next((s for s in self.steps if s.name == name), None)


class OperationState(BaseModel):
    """The state file: finished steps, the step running now, and (while a run holds the
    lock) the runner's pid, so a reader (the DR console) can tell a live run from an
    interrupted one."""

    operation: str
    params: dict[str, Any]
    started_at: datetime
    done: list[StepRecord] = Field(default_factory=list)
    current: str | None = None
    current_started_at: datetime | None = None
    planned: list[str] = Field(default_factory=list)
    runner_pid: int | None = None
    failed: StepRecord | None = None


_State = OperationState


class Operation:
    """Runs steps in order, recording each result (and, with ``state_path``, resuming)."""

    def __init__(
        self,
        name: str,
        steps: list[Step],
        *,
        params: dict[str, Any] | None = None,
        state_path: Path | None = None,
        clock: Clock = utc_now,
        timer: Timer = time.monotonic,
    ) -> None:
        names = [step.name for step in steps]
        if len(set(names)) != len(names):
            raise ValueError(f"step names must be unique: {names}")
        self.name = name
        self.steps = steps
        self.params = params or {}
        self.state_path = state_path
        self.clock = clock
        self.timer = timer

    # State file -----------------------------------------------------------------------------
    def pending(self) -> _State | None:
        """The state of an unfinished earlier run, if one was recorded."""
        if self.state_path is None or not self.state_path.exists():
            return None
        try:
            return _State.model_validate_json(self.state_path.read_text())
        except ValueError as exc:
            raise OperationFailed(
                f"{self.name}: unreadable state file {self.state_path} ({exc.__class__.__name__});"
                " remove it to start over"
            ) from None

    def _save(self, state: _State) -> None:
        if self.state_path is None:
            return
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        with open(tmp, "w") as handle:
            handle.write(state.model_dump_json(indent=2))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.state_path)

    def discard(self) -> None:
        """Forget an unfinished earlier run (the next run starts from the first step)."""
        if self.state_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.state_path.unlink()

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        if self.state_path is None:
            yield
            return
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.state_path.with_name(self.state_path.name + ".lock")
        with open(lock_path, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise Conflict(f"another {self.name} is running (lock {lock_path})") from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # Running --------------------------------------------------------------------------------
    def run(self, progress: ProgressFn = no_progress,
            on_step: Callable[[StepRecord], None] | None = None) -> OperationResult:
        """Run (or resume) the steps; stop at the first failure.

        Returns the result with one entry per step that ran or was resumed. Raises Conflict
        when another run holds the lock, or when the state file belongs to a run with other
        parameters (finish that one, or discard it).
        """
        with self._lock():
            state = self._open_state()
            done = {result.name: result for result in state.done}
            results: dict[str, StepRecord] = {}
            for result in state.done:
                results[result.name] = result.model_copy(update={"resumed": True})
            failed: Step | None = None
            for step in self.steps:
                if step.name in done:
                    progress(f"{step.name}: already {done[step.name].status} (resumed)", None)
                    continue
                state.current, state.current_started_at = step.name, self.clock()
                self._save(state)
                progress(f"{step.name}: running", None)
                result = self._run_step(step, results)
                results[step.name] = result
                if result.status != "failed":  # a failed step runs again on the next run
                    state.done.append(result)
                state.current = state.current_started_at = None
                self._save(state)
                progress(f"{step.name}: {result.status} {result.detail}".rstrip(), None)
                if on_step:
                    on_step(result)
                if result.status == "failed":
                    failed = step
                    state.failed = result
                    break
            finished = self.clock()
            ordered = [results[s.name] for s in self.steps if s.name in results]
            if failed is None:
                self.discard()
            else:
                state.runner_pid = None
                self._save(state)
            return OperationResult(
                operation=self.name,
                params=self.params,
                started_at=state.started_at,
                finished_at=finished,
                steps=ordered,
                failed_step=failed.name if failed else None,
                next_action=_next_action(failed, results) if failed else "",
            )

    def _open_state(self) -> OperationState:
        """The pending state of this operation (or a new one), marked as run by this process.
        Raises Conflict when the pending state belongs to a run with other parameters."""
        state = self.pending()
        if state is not None and (state.operation != self.name or
                                  state.params != self.params):
            raise Conflict(
                f"an interrupted {state.operation} with {_describe(state.params)} is pending "
                f"(state {self.state_path}); re-run it to finish, or start over"
            )
        if state is None:
            state = _State(operation=self.name, params=self.params, started_at=self.clock())
        state.planned = [step.name for step in self.steps]
        state.runner_pid, state.failed = os.getpid(), None
        return state

    def _run_step(self, step: Step, results: dict[str, StepRecord]) -> StepRecord:
        started_at = self.clock()
        start = self.timer()
        context = StepContext(results=results, deadline=start + step.timeout_seconds,
                              timer=self.timer)
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["value"] = step.run(context)
            except BaseException as exc:  # recorded as the step failure
                box["error"] = exc

        worker = threading.Thread(target=target, name=f"step-{step.name}", daemon=True)
        worker.start()
        worker.join(step.timeout_seconds)
        duration = max(0.0, self.timer() - start)
        status: StepStatus = "passed"
        data: dict[str, Any] = {}
        if worker.is_alive():
            status, detail = "failed", f"timed out after {step.timeout_seconds:.0f} s"
        elif "error" in box:
            error = box["error"]
            if isinstance(error, Skip):
                status, detail, data = "skipped", error.detail, error.data
            elif isinstance(error, AutographError):
                status, detail = "failed", error.message
            elif isinstance(error, KeyboardInterrupt | SystemExit):
                raise error
            else:
                status, detail = "failed", f"{type(error).__name__}: {error}"
        else:
            value = box.get("value")
            if isinstance(value, Outcome):
                detail, data = value.detail, dict(value.data)
            else:
                detail = value or ""
        return StepRecord(name=step.name, status=status, detail=detail, started_at=started_at,
                          duration_seconds=round(duration, 3), data=_jsonable(data))


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    """Data round-tripped through JSON, so a resumed run sees exactly what was recorded."""
    result: dict[str, Any] = json.loads(json.dumps(jsonable(data), default=str))
    return result


def _describe(params: dict[str, Any]) -> str:
    shown = ", ".join(f"{k}={v}" for k, v in sorted(params.items()) if v not in (None, False))
    return shown or "default parameters"


def _next_action(step: Step, results: dict[str, StepRecord]) -> str:
    detail = results[step.name].detail
    advice = step.on_failure or "fix the cause and re-run the same command to continue"
    return f"step {step.name!r} failed: {detail}. Next: {advice}"
