"""The DR status: what ``GET /api/admin/dr/status`` and ``autograph dr status`` show.

Per backup source (the database, each bucket): the last successful backup and its age against
the RPO target and against its schedule, the next scheduled run, and the verification state;
then the active alerts and the drill history's last test and next scheduled one. The overall
``status`` is the worst part (``critical`` > ``warning`` > ``ok``), never ``ok`` for something
that was not checked: a source with no backup at all is critical.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from autograph.config import Settings
from autograph.dr.alerts.models import Alert
from autograph.dr.drill.report import DrillSchedule, drill_schedule, load_history
from autograph.dr.models import BackupEntry, Kind, Tier, Verification
from autograph.dr.monitor.infrastructure import InfrastructureHealth
from autograph.dr.monitor.rpo import RpoStatus, judge_rpo
from autograph.dr.offsite.status import OffsiteStatus
from autograph.dr.proof.status import LastDrill, ProvenKind
from autograph.dr.scheduler import NextRun

Level = Literal["ok", "warning", "critical"]
LEVELS: tuple[Level, ...] = ("ok", "warning", "critical")
ALERT_STATE_NAME = "alerts-state.json"


class BackupSummary(BaseModel):
    """One backup, briefly."""

    name: str
    created_at: datetime
    finished_at: datetime
    duration_seconds: float
    size_bytes: int
    locations: list[Tier]
    verification: Verification


class SourceStatus(BaseModel):
    """The backups of one source (``database``/``autograph``, ``bucket``/``diagrams`` …)."""

    kind: Kind
    source: str
    status: Level
    problems: list[str] = Field(default_factory=list)
    backups: int
    last_success: BackupSummary | None = None
    age_seconds: float | None = None
    rpo_target_seconds: int
    within_rpo: bool = Field(description="the last backup is younger than the RPO target")
    interval_seconds: float
    within_schedule: bool = Field(description="younger than the interval plus the margin")
    next_scheduled_run: datetime | None = None
    retrying_after_failure: bool = False
    last_error: str | None = None
    last_verified: BackupSummary | None = None
    verification_failed: list[str] = Field(default_factory=list,
                                           description="backups whose last verification failed")


class SnapshotStatus(BaseModel):
    """The incremental snapshots of one bucket (SPEC §7): how old the newest one is."""

    bucket: str
    status: Level
    problems: list[str] = Field(default_factory=list)
    snapshots: int
    latest: str | None = None
    taken_at: datetime | None = None
    age_seconds: float | None = None
    interval_seconds: float
    within_rpo: bool = Field(description="the newest snapshot is younger than the RPO target")
    next_scheduled_run: datetime | None = None
    retrying_after_failure: bool = False
    last_error: str | None = None


class ConsistentPoint(BaseModel):
    """Where a recovery of the database and the buckets together would land now."""

    at: datetime
    age_seconds: float
    tiers: dict[str, datetime]
    pending_objects: int
    failing: dict[str, str] = Field(default_factory=dict)


def consistent_point(dr_dir: Path, now: datetime) -> ConsistentPoint | None:
    """The newest protected point over the tiers, from the replicator's state file."""
    from autograph.dr.buckets.watermark import read_state

    state = read_state(dr_dir)
    if state is None or not state.protected:
        return None
    newest = max(state.protected.values())
    return ConsistentPoint(at=newest, age_seconds=round((now - newest).total_seconds(), 1),
                           tiers=state.protected, pending_objects=state.pending,
                           failing=state.failed)


class DrStatus(BaseModel):
    """The whole picture."""

    generated_at: datetime
    status: Level
    rpo_target_seconds: int
    rto_target_seconds: int
    scheduler_enabled: bool
    scheduler_last_tick: datetime | None = Field(
        default=None, description="when this process's scheduler last checked (None: not "
                                  "running here)")
    sources: list[SourceStatus]
    snapshots: list[SnapshotStatus] = Field(default_factory=list,
                                            description="empty when snapshots are off")
    consistent_point: ConsistentPoint | None = Field(
        default=None, description="the newest moment the database and every object it "
                                  "references can be recovered to together (None: the "
                                  "object outbox replicator has not run here)")
    active_alerts: list[Alert]
    drills: DrillSchedule
    unreachable: dict[str, str] = Field(default_factory=dict,
                                        description="'kind/tier' -> why it could not be read")
    infrastructure: list[InfrastructureHealth] = Field(
        default_factory=list, description="PostgreSQL, Redis and S3: ours or external, health")
    offsite: OffsiteStatus | None = Field(default=None, description="the off-site tier: lag "
                                          "per kind, reachability (None: not configured)")
    proven: list[ProvenKind] = Field(default_factory=list,
                                     description="per kind: last proven restorable")
    rpo: RpoStatus | None = Field(default=None, description="the RPO judged once, against "
                                  "the continuous protection (WAL, snapshots, off-site lag)")
    proof_interval_seconds: int | None = Field(
        default=None, description="restore tests are due this often (None: not scheduled here)")
    last_drill: LastDrill | None = Field(default=None, description="with its RTO and RPO")


def _summary(entry: BackupEntry) -> BackupSummary:
    return BackupSummary(
        name=entry.name, created_at=entry.created_at, finished_at=entry.finished_at,
        duration_seconds=round((entry.finished_at - entry.started_at).total_seconds(), 3),
        size_bytes=entry.size_bytes, locations=list(entry.locations),
        verification=entry.verification)


def worst(levels: Sequence[Level]) -> Level:
    """The most severe level (``ok`` for none)."""
    return max(levels, key=LEVELS.index, default="ok")


def source_status(kind: Kind, source: str, backups: Sequence[BackupEntry],
                  run: NextRun | None, *, now: datetime, interval: timedelta,
                  margin: timedelta, rpo_target_seconds: int) -> SourceStatus:
    """The status of one source from its backups (any order) and its schedule. Pure."""
    mine = sorted((b for b in backups if b.source == source),
                  key=lambda b: (b.finished_at, b.name), reverse=True)
    last = mine[0] if mine else None
    verified = next((b for b in mine if b.verification.status == "passed"), None)
    age = (now - last.finished_at).total_seconds() if last else None
    within_schedule = age is not None and age <= (interval + margin).total_seconds()
    problems: list[str] = []
    levels: list[Level] = []
    if last is None:
        problems.append(f"no {kind} backup of {source}")
        levels.append("critical")
    elif not within_schedule and age is not None:
        problems.append(f"last backup is {age / 3600:.1f} h old, over the "
                        f"{interval.total_seconds() / 3600:.0f} h schedule plus margin")
        levels.append("critical")
    if last is not None and verified is None:
        problems.append("no backup of it has passed verification")
        levels.append("warning")
    if last is not None and "s3" not in last.locations:
        problems.append(f"the last backup has no S3 copy ({', '.join(last.locations)} only)")
        levels.append("warning")
    if run is not None and run.retrying_after_failure:
        problems.append(f"the last scheduled run failed: {run.last_error}")
        levels.append("critical")
    return SourceStatus(
        kind=kind, source=source, status=worst(levels), problems=problems, backups=len(mine),
        last_success=_summary(last) if last else None,
        age_seconds=round(age, 1) if age is not None else None,
        rpo_target_seconds=rpo_target_seconds,
        within_rpo=age is not None and age <= rpo_target_seconds,
        interval_seconds=interval.total_seconds(), within_schedule=within_schedule,
        next_scheduled_run=run.next_run_at if run else None,
        retrying_after_failure=run.retrying_after_failure if run else False,
        last_error=run.last_error if run else None,
        last_verified=_summary(verified) if verified else None,
        verification_failed=[b.name for b in mine if b.verification.status == "failed"])


def read_alert_state(dr_dir: Path) -> tuple[list[Alert], list[Alert]]:
    """The active and recent alerts the monitor persisted (``HOME/dr/alerts-state.json``),
    newest first; empty when there is none or it cannot be read."""
    try:
        state = json.loads((dr_dir / ALERT_STATE_NAME).read_text())
        active = [Alert.model_validate(a) for a in state.get("active", [])]
        history = [Alert.model_validate(a) for a in state.get("history", [])]
    except (OSError, ValueError, TypeError, AttributeError):
        return [], []
    active.sort(key=lambda a: a.started_at, reverse=True)
    return active, list(reversed(history))


def snapshot_status(bucket: str, names: list[tuple[str, datetime]], *, now: datetime,
                    interval: float, rpo_target_seconds: int,
                    run: NextRun | None = None) -> SnapshotStatus:
    """One bucket's snapshots (``(name, taken_at)``, any order) and its schedule (``run``): a
    warning when none is younger than twice the interval plus a minute (the schedule stopped,
    or keeps failing)."""
    if not names:
        status = SnapshotStatus(bucket=bucket, status="warning", snapshots=0,
                                interval_seconds=interval, within_rpo=False,
                                problems=["no snapshot yet"])
    else:
        name, taken = max(names, key=lambda item: (item[1], item[0]))
        age = max(0.0, (now - taken).total_seconds())
        problems = []
        if age > 2 * interval + 60:
            problems.append(f"newest snapshot is {age:.0f} s old; one every {interval:g} s is "
                            "expected (is the gateway's scheduler running?)")
        status = SnapshotStatus(bucket=bucket, status="warning" if problems else "ok",
                                problems=problems, snapshots=len(names), latest=name,
                                taken_at=taken, age_seconds=round(age, 1),
                                interval_seconds=interval,
                                within_rpo=age <= rpo_target_seconds)
    if run is not None:
        status.next_scheduled_run = run.next_run_at
        status.retrying_after_failure = run.retrying_after_failure
        status.last_error = run.last_error
    return status


def overall(sources: Sequence[SourceStatus], alerts: Sequence[Alert],
            drills: DrillSchedule, unreachable: dict[str, str],
            snapshots: Sequence[SnapshotStatus] = ()) -> Level:
    """The worst of the sources, the snapshots, the active alerts, an overdue drill and an
    unreachable tier."""
    levels: list[Level] = [s.status for s in sources] + [s.status for s in snapshots]
    levels += ["critical" if a.severity == "critical" else "warning" for a in alerts]
    if drills.overdue or unreachable:
        levels.append("warning")
    return worst(levels)


def drills_of(dr_dir: Path, now: datetime, interval: float | None = None) -> DrillSchedule:
    """Last tested / next scheduled from the drill history (quarterly, or every ``interval``
    seconds when the gateway schedules drills)."""
    schedule = drill_schedule(load_history(dr_dir), now)
    if interval is None or schedule.last_tested is None:
        return schedule
    upcoming = min(schedule.next_scheduled, schedule.last_tested + timedelta(seconds=interval))
    return schedule.model_copy(update={"next_scheduled": upcoming, "overdue": now >= upcoming})


def rpo_of(settings: Settings, states: list[SourceStatus], snapshots: list[SnapshotStatus],
           point: ConsistentPoint | None, offsite: OffsiteStatus | None,
           wal_streaming: bool = False) -> RpoStatus:
    """The RPO once, from the continuous protection (see :mod:`autograph.dr.monitor.rpo`).
    ``wal_streaming``: the WAL receiver is caught up with the server now, so nothing committed
    is unprotected however old its newest segment (an idle database writes no WAL)."""
    from autograph.dr.postgres.wal_files import wal_summary

    def ages(kind: str) -> list[float]:
        return [s.age_seconds for s in states if s.kind == kind and s.age_seconds is not None]

    wal = [0.0] if wal_streaming else [
        c["newest_age_seconds"] for c in wal_summary(settings).values()
        if c.get("newest_age_seconds") is not None]
    snap = {s.bucket: s.age_seconds for s in snapshots}
    return judge_rpo(
        settings.rpo_target_seconds, wal_age=min(wal, default=None),
        base_backup=bool(ages("basebackup")), dump_age=min(ages("database"), default=None),
        buckets=[(s.source, snap.get(s.source), s.age_seconds) for s in states
                 if s.kind == "bucket"],
        consistent_age=point.age_seconds if point else None,
        offsite_lag=offsite.max_lag_seconds if offsite else None,
        offsite_configured=offsite is not None)
