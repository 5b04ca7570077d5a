"""Backup schedules: the database every 24 h, each bucket every 7 days, each bucket's
snapshot every few minutes; prune after each run. Every cadence of the DR core is a
:class:`Schedule` run here.

The next run is derived from the stored backups, not from memory: the newest successful
*scheduled* backup of each source (database, bucket) in the catalog plus the interval (for
snapshots, which keep their own index, the newest snapshot of each bucket). A restart just
after a run therefore waits a whole interval, and a run missed while the gateway was down is due
at once (after a short start-up delay). After a failed run the source waits ``retry`` before
trying again; failures are recorded in a small state file beside the lock, so every process
sees them.

One run at a time across processes: a run holds ``BACKUPS/.locks/schedule-<kind>.lock``
(an ``fcntl`` lock through :func:`autograph.dr.ops.locks.acquire`) and decides what is due only
once it holds it, re-reading the catalog. A second gateway that tries meanwhile gets the lock
after the first one committed its backup, finds nothing due and does nothing. Why a file lock:
the schedulers must agree while PostgreSQL or Redis are down (a bucket backup does not need
them, and the scheduler must keep working in a disaster); the kernel drops an ``flock`` when its
holder dies, so a crash leaves no stale lock to expire; and every process that writes backups
already shares the backup folder, where the per-kind operation locks live too. (Gateways on
several hosts would need that folder on a file system with working ``flock``, e.g. NFSv4.)
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal, NamedTuple

from pydantic import BaseModel, Field, ValidationError

from autograph.clock import Clock, isoformat, utc_now
from autograph.dr.catalog import Catalog
from autograph.dr.models import BackupEntry, Kind
from autograph.dr.ops import hooks, locks
from autograph.errors import AutographError, Conflict

log = logging.getLogger("autograph.dr.scheduler")

BackupFn = Callable[[str], object]
"""Runs one scheduled backup of a source (database or bucket name); raises on failure."""
PruneFn = Callable[[], object]


class LastRun(NamedTuple):
    """A source's newest successful run: when, and the backup it made."""

    at: datetime
    name: str


LatestFn = Callable[[], Mapping[str, LastRun]]
"""The newest successful run of each source, for a kind outside the catalog."""

Outcome = Literal["succeeded", "failed", "deferred"]


@dataclass(frozen=True)
class Schedule:
    """One kind's schedule: how often, which sources, how to back one up and prune after.

    A source's last success comes from ``catalog`` (its newest scheduled backup) or, for a
    kind outside the catalog (bucket snapshots), from ``latest``. ``startup_delay`` and
    ``retry`` replace the scheduler's for this kind; with ``prune_after_failure`` False the
    prune follows only a run in which some source succeeded.
    """

    kind: Kind
    interval: timedelta
    sources: tuple[str, ...]
    catalog: Catalog | None
    backup: BackupFn
    prune: PruneFn | None = None
    latest: LatestFn | None = None
    startup_delay: timedelta | None = None
    retry: timedelta | None = None
    prune_after_failure: bool = True


class ScheduleState(BaseModel):
    """What the catalog cannot tell: the last attempt and failures awaiting a retry."""

    last_attempt_at: datetime | None = None
    last_results: dict[str, Outcome] = Field(default_factory=dict)
    failed_at: dict[str, datetime] = Field(default_factory=dict, description="source -> when")
    errors: dict[str, str] = Field(default_factory=dict)


class NextRun(BaseModel):
    """When a source's next scheduled backup is due, and why."""

    kind: Kind
    source: str
    interval_seconds: float
    last_success: datetime | None
    last_success_name: str | None
    next_run_at: datetime
    retrying_after_failure: bool = False
    last_error: str | None = None


class RunRecord(BaseModel):
    """What one scheduled run did."""

    kind: Kind
    started_at: datetime
    finished_at: datetime
    results: dict[str, Outcome]
    errors: dict[str, str] = Field(default_factory=dict)
    pruned: list[str] = Field(default_factory=list)
    prune_error: str | None = None


def is_scheduled(entry: BackupEntry) -> bool:
    """True for a backup the scheduler made (tagged ``scheduled`` or named ``scheduled_…``)."""
    return "scheduled" in entry.tags or entry.name.startswith("scheduled_")


def last_scheduled(backups: Iterable[BackupEntry], source: str) -> BackupEntry | None:
    """The newest scheduled backup of ``source``, or None."""
    mine = [b for b in backups if b.source == source and is_scheduled(b)]
    return max(mine, key=lambda b: (b.created_at, b.name)) if mine else None


def last_runs(backups: Iterable[BackupEntry], sources: Iterable[str]) -> dict[str, LastRun]:
    """The newest scheduled backup of each of ``sources`` that has one."""
    listed = list(backups)
    found = {source: last_scheduled(listed, source) for source in sources}
    return {source: LastRun(entry.created_at, entry.name)
            for source, entry in found.items() if entry is not None}


def next_run(last_success: datetime | None, interval: timedelta, *, started_at: datetime,
             startup_delay: timedelta, failed_at: datetime | None = None,
             retry: timedelta = timedelta(0)) -> datetime:
    """When the next run is due. Pure.

    One interval after the last success; but not before ``started_at + startup_delay`` (a run
    missed while down is due soon after start, as is a first run); and, after a failure newer
    than the last success, not before ``failed_at + retry``.
    """
    earliest = started_at + startup_delay
    due = earliest if last_success is None else max(last_success + interval, earliest)
    if failed_at is not None and (last_success is None or failed_at > last_success):
        due = max(due, failed_at + retry)
    return due


class Scheduler:
    """Runs due schedules; ``tick`` once (tests, a CLI) or ``run`` in a thread until stopped."""

    def __init__(self, schedules: Sequence[Schedule], backups_dir: Path, *,
                 clock: Clock = utc_now, startup_delay: float = 30.0, retry: float = 3600.0,
                 started_at: datetime | None = None) -> None:
        self.schedules = {s.kind: s for s in schedules}
        self.backups_dir = backups_dir
        self.clock = clock
        self.startup_delay = timedelta(seconds=startup_delay)
        self.retry = timedelta(seconds=retry)
        self.started_at = started_at or clock()
        self._next: dict[Kind, datetime] = {}
        self.last_tick_at: datetime | None = None
        """When this instance last checked its schedules (liveness, shown in the DR status)."""

    # State -------------------------------------------------------------------------------------

    def state_path(self, kind: Kind) -> Path:
        """The state file of ``kind`` (beside the locks)."""
        return self.backups_dir / locks.LOCKS_DIR / f"schedule-{kind}.json"

    def load_state(self, kind: Kind) -> ScheduleState:
        """The recorded state of ``kind`` (empty if missing or unreadable)."""
        path = self.state_path(kind)
        try:
            return ScheduleState.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            return ScheduleState()
        except (OSError, ValidationError, ValueError) as exc:
            log.warning("schedule state %s unreadable, starting empty: %s", path, exc)
            return ScheduleState()

    def _save_state(self, kind: Kind, state: ScheduleState) -> None:
        path = self.state_path(kind)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w") as out:
                out.write(state.model_dump_json(indent=2))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # Planning ----------------------------------------------------------------------------------

    def plan(self, kinds: Iterable[Kind] | None = None,
             listings: Mapping[Kind, Sequence[BackupEntry]] | None = None,
             latest: Mapping[Kind, Mapping[str, LastRun]] | None = None) -> list[NextRun]:
        """When each source of each schedule is due next (reads the stored backups, unless the
        kind's backups are given in ``listings`` or its last runs in ``latest``; takes no
        lock)."""
        runs: list[NextRun] = []
        for kind in kinds or list(self.schedules):
            schedule = self.schedules[kind]
            given = latest.get(kind) if latest is not None else None
            if given is None and listings is not None and kind in listings:
                given = last_runs(listings[kind], schedule.sources)
            runs.extend(self._plan(schedule, self.load_state(kind), given))
        return runs

    @staticmethod
    def last_runs(schedule: Schedule) -> Mapping[str, LastRun]:
        """Each source's newest successful run, read from where the kind keeps its backups."""
        if schedule.latest is not None:
            return schedule.latest()
        if schedule.catalog is None:
            raise ValueError(f"the {schedule.kind} schedule has neither a catalog nor latest")
        return last_runs(schedule.catalog.list().backups, schedule.sources)

    def _plan(self, schedule: Schedule, state: ScheduleState,
              last: Mapping[str, LastRun] | None = None) -> list[NextRun]:
        if last is None:
            last = self.last_runs(schedule)
        startup_delay = (self.startup_delay if schedule.startup_delay is None
                         else schedule.startup_delay)
        retry = self.retry if schedule.retry is None else schedule.retry
        runs = []
        for source in schedule.sources:
            done = last.get(source)
            last_at = done.at if done else None
            failed = state.failed_at.get(source)
            due = next_run(last_at, schedule.interval, started_at=self.started_at,
                           startup_delay=startup_delay, failed_at=failed, retry=retry)
            retrying = failed is not None and (last_at is None or failed > last_at)
            runs.append(NextRun(
                kind=schedule.kind, source=source,
                interval_seconds=schedule.interval.total_seconds(), last_success=last_at,
                last_success_name=done.name if done else None, next_run_at=due,
                retrying_after_failure=retrying,
                last_error=state.errors.get(source) if retrying else None))
        return runs

    # Running -----------------------------------------------------------------------------------

    def tick(self, kinds: Iterable[Kind] | None = None) -> list[RunRecord]:
        """Run every schedule that is due now (each under its lock); return what ran.

        Never raises for a failed backup or prune: the outcome is in the record, the state file
        and the hook events.
        """
        records = []
        self.last_tick_at = self.clock()
        for kind in kinds or list(self.schedules):
            record = self._tick(self.schedules[kind])
            if record is not None:
                records.append(record)
        return records

    def _tick(self, schedule: Schedule) -> RunRecord | None:
        kind = schedule.kind
        if not schedule.sources:
            return None
        cached = self._next.get(kind)
        if cached is not None and self.clock() < cached:
            return None
        try:
            lock = locks.acquire(self.backups_dir, f"schedule-{kind}", "scheduled run")
        except Conflict:
            return None  # another process is running this schedule right now
        with lock:
            state = self.load_state(kind)
            plan = self._plan(schedule, state)
            now = self.clock()
            due = [run.source for run in plan if run.next_run_at <= now]
            if not due:
                self._next[kind] = min(run.next_run_at for run in plan)
                return None
            self._next.pop(kind, None)
            return self._run(schedule, state, due)

    def _run(self, schedule: Schedule, state: ScheduleState, due: list[str]) -> RunRecord:
        started = self.clock()
        results: dict[str, Outcome] = {}
        errors: dict[str, str] = {}
        for source in due:
            outcome, error = self._backup_one(schedule, source)
            results[source] = outcome
            if error:
                errors[source] = error
            if outcome == "failed":
                state.failed_at[source] = self.clock()
                state.errors[source] = error or "failed"
            elif outcome == "succeeded":
                state.failed_at.pop(source, None)
                state.errors.pop(source, None)
        state.last_attempt_at = started
        state.last_results = results
        self._save_state(schedule.kind, state)
        record = RunRecord(kind=schedule.kind, started_at=started, finished_at=self.clock(),
                           results=results, errors=errors)
        if schedule.prune is not None and (schedule.prune_after_failure
                                           or "succeeded" in results.values()):
            try:
                pruned = schedule.prune()
                record.pruned = list(getattr(pruned, "removed", []))
            except Exception as exc:
                record.prune_error = exc.message if isinstance(exc, AutographError) \
                    else type(exc).__name__
                log.warning("prune after the scheduled %s run failed: %s", schedule.kind,
                            record.prune_error)
        log.info("scheduled %s run: %s", schedule.kind,
                 ", ".join(f"{s} {o}" for s, o in results.items()),
                 extra={"kind": schedule.kind, "results": results, "errors": errors,
                        "pruned": record.pruned, "started_at": isoformat(started)})
        return record

    def _backup_one(self, schedule: Schedule, source: str) -> tuple[Outcome, str | None]:
        try:
            schedule.backup(source)
        except Conflict as exc:
            log.info("scheduled %s backup of %s deferred: %s", schedule.kind, source,
                     exc.message)
            return "deferred", exc.message
        except AutographError as exc:
            return "failed", exc.message  # the manager emitted backup_failed already
        except Exception as exc:  # a bug must not stop the schedule, but it must alert
            log.exception("scheduled %s backup of %s crashed", schedule.kind, source)
            message = f"internal error ({type(exc).__name__})"
            hooks.emit(hooks.BackupEvent("backup_failed", schedule.kind, None,
                                         f"scheduled backup of {source}: {message}",
                                         data={"source": source, "scheduled": True}))
            return "failed", message
        return "succeeded", None

    def run(self, stop: threading.Event, poll_seconds: float,
            kinds: Sequence[Kind] | None = None) -> None:
        """Tick every ``poll_seconds``, or sooner when a known due time comes first, until
        ``stop`` is set (meant for a daemon thread)."""
        while not stop.is_set():
            try:
                self.tick(kinds)
            except Exception:  # e.g. the backup folder unwritable: log, keep trying
                log.exception("scheduler tick failed")
            stop.wait(self.wait_seconds(poll_seconds, kinds))

    def wait_seconds(self, poll_seconds: float, kinds: Iterable[Kind] | None = None) -> float:
        """How long to sleep before the next tick: ``poll_seconds``, or until the earliest due
        time already known for ``kinds`` (at least 50 ms), so a short cadence is kept."""
        known = [self._next[k] for k in (kinds or list(self.schedules)) if k in self._next]
        if not known:
            return poll_seconds
        until = (min(known) - self.clock()).total_seconds()
        return max(0.05, min(poll_seconds, until))
