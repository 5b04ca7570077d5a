"""When restore tests and drills run: derived from the proof history and the drill history.

Each proven kind is due one ``proof_interval_seconds`` after its last passed restore test
(after a failure or a refusal: ``proof_retry_seconds`` after it), and soon after start when
none is recorded. The sandbox drill is due one ``drill_interval_seconds`` after the last drill
of a scheduled scenario in ``drills.jsonl`` (manual ones count) and runs the scheduled scenario
run least recently (``complete``, then ``machine``, in turn), is retried after a run that crashed,
and is skipped while a backup or restore holds any kind's lock. One run across gateways: a tick
works only while it holds ``BACKUPS/.locks/proof.lock`` and re-reads both histories under it,
so a second gateway finds the work done. The first tick of every process, and every tick that
has work, first removes the scratch resources a killed run left.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from autograph.clock import Clock, utc_now
from autograph.config import Settings
from autograph.dr.drill.report import load_history
from autograph.dr.ops import locks
from autograph.dr.proof.models import PROVEN_KINDS, ProofKind, ProofRecord, append, last_of, load
from autograph.dr.proof.run import NothingToTest, Prover
from autograph.dr.proof.sandbox_drill import run_sandbox_drill
from autograph.dr.scheduler import next_run
from autograph.errors import Conflict

log = logging.getLogger("autograph.dr.proof.schedule")

DrillFn = Callable[[str], ProofRecord]
"""Runs one sandbox drill of a scenario and returns its record (the drill writes its own
report)."""
BUSY_KINDS = ("database", "bucket", "basebackup", "snapshot")
DRILL_SCENARIOS = ("complete", "machine")
"""The scheduled drills, in turn: the whole stack lost, then the whole machine (off-site + kit)."""
DRILL_SCENARIO = DRILL_SCENARIOS[0]


class ProofPlan(BaseModel):
    """When one kind's restore test (or the drill) is due next."""

    kind: ProofKind
    next_run_at: datetime
    last_passed_at: datetime | None = None
    last_status: str | None = None
    scenario: str | None = Field(default=None, description="the drill's scenario (drill only)")


def proven_kinds(settings: Settings) -> list[ProofKind]:
    """The kinds this configuration backs up, hence restore-tests."""
    kinds: list[ProofKind] = ["database", "basebackup"]
    if settings.app_buckets:
        kinds.append("bucket")
        if settings.snapshot_interval_seconds > 0:
            kinds.append("snapshot")
    return [k for k in PROVEN_KINDS if k in kinds]


def busy(settings: Settings) -> str | None:
    """What backup or restore runs right now in any process (None: nothing)."""
    for kind in BUSY_KINDS:
        holder = locks.holder(settings.backups_dir, kind)
        if holder is not None:
            return f"{kind} {holder.get('operation', 'operation')}"
    return None


class ProofScheduler:
    """Runs due restore tests and drills; ``tick`` once or ``run`` in a thread."""

    def __init__(self, settings: Settings, prover: Prover, *, clock: Clock = utc_now,
                 drill: DrillFn | None = None, started_at: datetime | None = None,
                 startup_delay: float | None = None) -> None:
        self.settings = settings
        self.prover = prover
        self.clock = clock
        self.drill = drill or (lambda scenario: run_sandbox_drill(settings, scenario, clock))
        self.started_at = started_at or clock()
        delay = settings.scheduler_startup_delay_seconds if startup_delay is None \
            else startup_delay
        self.startup_delay = timedelta(seconds=delay)
        self.kinds = proven_kinds(settings)
        self._cleaned = False

    def plan(self) -> list[ProofPlan]:
        """When each kind, and the drill, is due (reads both histories; takes no lock)."""
        history = load(self.settings.dr_dir)
        every = timedelta(seconds=self.settings.proof_interval_seconds)
        retry = timedelta(seconds=self.settings.proof_retry_seconds)
        plans = []
        for kind in self.kinds:
            passed, last = last_of(history, kind, "passed"), last_of(history, kind)
            failed_at = last.finished_at if last and last.status != "passed" else None
            due = next_run(passed.started_at if passed else None, every,
                           started_at=self.started_at, startup_delay=self.startup_delay,
                           failed_at=failed_at, retry=retry)
            plans.append(ProofPlan(kind=kind, next_run_at=due,
                                   last_passed_at=passed.finished_at if passed else None,
                                   last_status=last.status if last else None))
        return [*plans, self._drill_plan(history, retry)]

    def _drill_plan(self, history: list[ProofRecord], retry: timedelta) -> ProofPlan:
        drills = [d for d in load_history(self.settings.dr_dir) if d.scenario in DRILL_SCENARIOS]
        last = max(drills, key=lambda d: d.started_at) if drills else None
        newest = {d.scenario: d.started_at for d in sorted(drills, key=lambda d: d.started_at)}
        scenario = min(DRILL_SCENARIOS, key=lambda name: (
            name in newest, newest.get(name), DRILL_SCENARIOS.index(name)))
        attempt = last_of(history, "drill")
        crashed = attempt is not None and attempt.evidence is None and \
            (last is None or attempt.finished_at > last.finished_at)
        due = next_run(last.started_at if last else None,
                       timedelta(seconds=self.settings.drill_interval_seconds),
                       started_at=self.started_at, startup_delay=self.startup_delay,
                       failed_at=attempt.finished_at if crashed and attempt else None,
                       retry=retry)
        return ProofPlan(kind="drill", next_run_at=due, scenario=scenario,
                         last_passed_at=last.finished_at if last and last.passed else None,
                         last_status=("passed" if last.passed else "failed") if last else None)

    def tick(self) -> list[ProofRecord]:
        """Run what is due now, under the proof lock; return the records made."""
        try:
            lock = locks.acquire(self.settings.backups_dir, "proof", "restore tests")
        except Conflict:
            return []  # another gateway is proving right now
        with lock:
            now = self.clock()
            due = [p for p in self.plan() if p.next_run_at <= now]
            if due or not self._cleaned:
                self.prover.clean_leftovers()
                self._cleaned = True
            records = []
            for plan in due:
                record = self._run(plan)
                if record is not None:
                    records.append(record)
            return records

    def _run(self, plan: ProofPlan) -> ProofRecord | None:
        kind = plan.kind
        if kind == "drill":
            running = busy(self.settings)
            if running is not None:
                log.info("scheduled drill skipped: a %s is running", running)
                return None
            record = self.drill(plan.scenario or DRILL_SCENARIO)
            append(self.settings.dr_dir, record)
            return record
        try:
            return self.prover.prove(kind, defer_if_none=True)
        except NothingToTest as exc:
            log.info("restore test of %s waits for a first backup: %s", kind, exc.message)
            return None
        except Conflict as exc:
            log.info("restore test of %s deferred: %s", kind, exc.message)
            return None

    def run(self, stop: threading.Event, poll_seconds: float) -> None:
        """Tick every ``poll_seconds`` until ``stop`` is set (a daemon thread)."""
        while not stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("proof scheduler tick failed")
            stop.wait(poll_seconds)
