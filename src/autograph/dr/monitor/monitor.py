"""The monitor: the plan's alerts, turned into fire-once / resolve-once calls on a dispatcher.

Backups (from the events every process journals, and from the catalog):
``backup_failed``, ``backup_small`` (under a fraction of the median of the previous 7 of the
same source), ``verification_failed``, and ``backup_overdue`` — the dead-man's switch: no
successful scheduled backup of a source for its interval plus a margin, which catches a scheduler
that silently stopped. Service health (probes of the stack's components): ``database_unreachable``
and ``s3_unreachable`` after a few failed probes in a row, ``service_unhealthy:<name>`` after
unhealthy for longer than ``unhealthy_alert_seconds``. Storage: ``disk_usage:<path>`` over
``disk_usage_alert_percent``, ``backup_storage_low`` (free space under the configured minimum
or under the size of one more round of backups), ``bucket_quota:<bucket>`` for the buckets with
a configured quota. Data: ``dangling_references`` while rows name objects missing from their
bucket (every ``reference_check_seconds``; each row confirmed again before it counts).

The monitor decides; the :class:`~autograph.dr.alerts.dispatcher.AlertDispatcher` remembers
what fires and delivers. Every check's failure is logged and never stops the others.
"""

from __future__ import annotations

import logging
import re
import shutil
import statistics
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import JsonValue

from autograph.clock import Clock, isoformat, utc_now
from autograph.config import Settings
from autograph.dr.alerts import acks
from autograph.dr.alerts.dispatcher import AlertDispatcher
from autograph.dr.alerts.models import Severity
from autograph.dr.catalog import Catalog
from autograph.dr.models import BackupEntry, Kind
from autograph.dr.monitor import references
from autograph.dr.ops import journal
from autograph.dr.ops.hooks import BackupEvent
from autograph.dr.proof import alerts as proof_alerts
from autograph.dr.scheduler import is_scheduled
from autograph.errors import AutographError
from autograph.secrets import Credentials
from autograph.stack.health import Health

log = logging.getLogger("autograph.dr.monitor.monitor")

Role = Literal["database", "s3", "backup_s3", "service"]
SMALL_WINDOW = 7
STALE_EVENT = timedelta(hours=1)
"""Journaled events older than this when read (no monitor ran meanwhile) are dropped."""
_BUCKET_NAME = re.compile(r"(?:scheduled|manual)_(.+)_\d{8}_\d{6}(?:_\d+)?")
UNREACHABLE_RULES: dict[str, str] = {"database": "database_unreachable", "s3": "s3_unreachable",
                                     "backup_s3": "backup_s3_unreachable"}


@dataclass(frozen=True)
class Watched:
    """A probed component and what its failure means."""

    name: str
    role: Role
    probe: Callable[[], Health]


@dataclass(frozen=True)
class Expected:
    """A source that should get a successful backup at least every ``interval``."""

    kind: Kind
    source: str
    interval: timedelta


def subject(kind: str, source: str | None) -> str:
    """The part of an alert key naming what it is about: ``database`` or ``bucket:<name>``."""
    return kind if kind == "database" or not source else f"{kind}:{source}"


def _hours(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 3600:.1f} h"


class Monitor:
    """Evaluates every rule; :meth:`run_once` is one pass (the runtime calls it periodically)."""

    def __init__(self, settings: Settings, dispatcher: AlertDispatcher,
                 catalogs: Mapping[Kind, Catalog], *, expected: Sequence[Expected] = (),
                 watched: Sequence[Watched] = (), clock: Clock = utc_now,
                 journal_path: Path | None = None, s3_client: Callable[[], Any] | None = None,
                 scheduled_only: bool = True, creds: Credentials | None = None) -> None:
        self.settings = settings
        self.alerts = dispatcher
        self.catalogs = dict(catalogs)
        self.expected = list(expected)
        self.watched = list(watched)
        self.clock = clock
        self.journal_path = journal_path
        self.s3_client = s3_client
        self.scheduled_only = scheduled_only
        self.creds = creds
        self.started_at = clock()
        self._failures: dict[str, int] = {}
        self._unhealthy_since: dict[str, datetime] = {}
        self._quotas_checked: datetime | None = None
        self._references_checked: datetime | None = None
        self._listings: dict[Kind, list[BackupEntry]] | None = None

    def fire(self, key: str, rule: str, severity: Severity, message: str,
             **details: JsonValue) -> None:
        """Fire ``key`` (a no-op while it is firing)."""
        self.alerts.fire(key, rule, severity, message, details)

    # One pass ----------------------------------------------------------------------------------

    def run_once(self) -> None:
        """Process journaled events, then check backups, health, storage and quotas."""
        steps: tuple[Callable[[], None], ...] = (
            self.process_journal, self.check_backups, self.check_snapshots, self.check_outbox,
            self.check_health, self.check_storage, self.check_quotas, self.check_offsite,
            self.check_proofs, self.check_references, self.check_escalation)
        self._listings = {}
        try:
            for step in steps:
                try:
                    step()
                except Exception:  # one broken check must not silence the others
                    log.exception("monitor check %s failed", step.__name__)
        finally:
            self._listings = None

    def check_escalation(self) -> None:
        """Send the escalation levels now due (the acknowledgements read fresh each pass)."""
        self.alerts.escalate(acks.load(self.settings.dr_dir))

    def _listing(self, kind: Kind) -> list[BackupEntry]:
        """The backups of ``kind``, newest first (read once per pass)."""
        if self._listings is not None and kind in self._listings:
            return self._listings[kind]
        backups = self.catalogs[kind].list().backups
        if self._listings is not None:
            self._listings[kind] = backups
        return backups

    # Backup events -----------------------------------------------------------------------------

    def process_journal(self) -> None:
        """Handle every event other processes (and this one) journaled since the last pass."""
        if self.journal_path is None:
            return
        now = self.clock()
        for event in journal.take(self.journal_path):
            if now - event.at > STALE_EVENT:
                log.info("stale backup event dropped: %s %s at %s", event.event, event.kind,
                         isoformat(event.at))
                continue
            self.handle(event)

    def _source(self, event: BackupEvent, entry: BackupEntry | None) -> str | None:
        for key in ("source", "bucket"):
            if isinstance(event.data.get(key), str):
                return str(event.data[key])
        if entry is not None:
            return entry.source
        match = _BUCKET_NAME.fullmatch(event.name or "")
        return match.group(1) if event.kind == "bucket" and match else None

    def _entry(self, kind: str, name: str | None) -> BackupEntry | None:
        catalog = next((c for k, c in self.catalogs.items() if k == kind), None)
        if catalog is None or not name:
            return None
        try:
            return catalog.get(name)
        except AutographError:
            return None

    def handle(self, event: BackupEvent) -> None:
        """Fire or resolve what one backup event means."""
        committed = event.event in ("backup_succeeded", "backup_small")
        entry = self._entry(event.kind, event.name) if committed else None
        source = self._source(event, entry)
        about = subject(event.kind, source)
        details: dict[str, JsonValue] = {"kind": event.kind, "source": source,
                                         "backup": event.name, "at": isoformat(event.at)}
        if event.event == "backup_failed":
            what = f"{event.kind} backup" + (f" {event.name}" if event.name else "")
            self.fire(f"backup_failed:{about}", "backup_failed", "critical",
                      f"{what} failed: {event.detail}", **details, error=event.detail)
        elif event.event == "backup_succeeded":
            self.alerts.resolve(f"backup_failed:{about}")
            if about != event.kind:
                self.alerts.resolve(f"backup_failed:{event.kind}")
            if event.kind == "snapshot" and event.data.get("shrunk") is False:
                self.alerts.resolve(f"backup_small:{about}")  # the bucket is back
            if entry is not None:
                self.check_size(entry)
                if entry.verification.status == "passed":
                    self.alerts.resolve(f"verification_failed:{event.kind}")
        elif event.event == "backup_small":
            self.fire(f"backup_small:{about}", "backup_small", "warning",
                      f"{event.kind} backup {event.name} is unusually small: {event.detail}",
                      **details)
        elif event.event == "verification_failed":
            self.fire(f"verification_failed:{event.kind}", "verification_failed", "critical",
                      f"verification of {event.kind} backup {event.name} failed: "
                      f"{event.detail}", **details)
        elif event.event == "verification_passed":
            self.alerts.resolve(f"verification_failed:{event.kind}")

    def check_size(self, entry: BackupEntry) -> None:
        """Fire ``backup_small`` if ``entry`` is under the configured fraction of the median
        size of the previous (up to 7) backups of its source; resolve it otherwise."""
        if entry.kind not in self.catalogs:
            return
        previous = [b.size_bytes for b in self._listing(entry.kind)
                    if b.source == entry.source and b.name != entry.name
                    and b.created_at <= entry.created_at][:SMALL_WINDOW]
        key = f"backup_small:{subject(entry.kind, entry.source)}"
        if not previous:
            return
        median = statistics.median(previous)
        fraction = self.settings.small_backup_fraction
        if entry.size_bytes < fraction * median:
            self.fire(key, "backup_small", "warning",
                      f"{entry.kind} backup {entry.name} is unusually small: "
                      f"{entry.size_bytes} bytes, under {fraction:.0%} of the median of the "
                      f"previous {len(previous)} ({median:.0f} bytes)",
                      kind=entry.kind, source=entry.source, backup=entry.name,
                      size_bytes=entry.size_bytes, median_bytes=median)
        else:
            self.alerts.resolve(key)

    # Backups from the catalog ------------------------------------------------------------------

    def check_backups(self) -> None:
        """The dead-man's switch per expected source, and resolving failure alerts that a later
        success (maybe made by another process) has answered."""
        now = self.clock()
        listings = {kind: self._listing(kind) for kind in self.catalogs}
        for item in self.expected:
            self._check_overdue(item, listings.get(item.kind, []), now)
        for alert in self.alerts.active():
            if alert.rule not in ("backup_failed", "verification_failed"):
                continue
            kind, source = alert.details.get("kind"), alert.details.get("source")
            later = [b for b in listings.get(kind, [])  # type: ignore[call-overload]
                     if b.finished_at > alert.started_at and (source is None
                                                              or b.source == source)]
            if alert.rule == "verification_failed":
                later = [b for b in later if b.verification.status == "passed"]
            if later:
                self.alerts.resolve(alert.key)

    def _check_overdue(self, item: Expected, backups: list[BackupEntry], now: datetime) -> None:
        mine = [b for b in backups if b.source == item.source
                and (is_scheduled(b) or not self.scheduled_only)]
        last = max(mine, key=lambda b: b.finished_at) if mine else None
        since = last.finished_at if last else self.started_at
        limit = item.interval + timedelta(seconds=self.settings.backup_overdue_margin_seconds)
        key = f"backup_overdue:{subject(item.kind, item.source)}"
        if now - since <= limit:
            self.alerts.resolve(key)
            return
        what = "scheduled " if self.scheduled_only else ""
        last_text = f"last: {last.name} at {isoformat(last.finished_at)}" if last else \
            f"none since the monitor started at {isoformat(self.started_at)}"
        self.fire(key, "backup_overdue", "critical",
                  f"no successful {what}{item.kind} backup of {item.source} for "
                  f"{_hours(now - since)} (interval {_hours(item.interval)} + margin "
                  f"{_hours(limit - item.interval)}); {last_text}",
                  kind=item.kind, source=item.source,
                  last_backup=last.name if last else None, since=isoformat(since))

    def check_snapshots(self) -> None:
        """The dead-man's switch for bucket snapshots: none of a bucket for twice the
        interval plus a minute (the loop stopped, or every attempt fails)."""
        interval = self.settings.snapshot_interval_seconds
        if not (self.settings.scheduler_enabled and interval > 0):
            return
        from autograph.dr.buckets.snapshots.store import SnapshotStore, parse_name

        per_tier, _ = SnapshotStore(self.settings, None).names()  # the local tier answers
        newest: dict[str, datetime] = {}
        for name in per_tier.get("local", []):
            bucket, taken = parse_name(name)
            newest[bucket] = max(taken, newest.get(bucket, taken))
        now = self.clock()
        limit = timedelta(seconds=2 * interval + 60)
        for bucket in self.settings.app_buckets:
            key = f"backup_overdue:{subject('snapshot', bucket)}"
            since = newest.get(bucket, self.started_at)
            if now - since <= limit:
                self.alerts.resolve(key)
                continue
            self.fire(key, "backup_overdue", "critical",
                      f"no snapshot of bucket {bucket} for {(now - since).total_seconds():.0f}"
                      f" s (one every {interval:g} s expected); the objects' RPO is at risk",
                      kind="snapshot", source=bucket, since=isoformat(since))

    def check_offsite(self) -> None:
        """``offsite_unreachable`` while the off-site store does not answer; ``offsite_lag``
        while any kind (WAL included) waits longer than the RPO target to go off-site."""
        from autograph.dr.offsite.status import offsite_status

        status = offsite_status(self.settings, self.catalogs)
        if status is None:
            return
        if status.reachable:
            self.alerts.resolve("offsite_unreachable")
        else:
            self.fire("offsite_unreachable", "offsite_unreachable", "critical",
                      f"the off-site store {status.endpoint} is unreachable ({status.error}); "
                      "backups continue locally and are queued for it",
                      endpoint=status.endpoint)
        late = [k for k in status.kinds if k.lag_seconds is not None
                and k.lag_seconds > self.settings.rpo_target_seconds]
        if not late:
            self.alerts.resolve("offsite_lag")
            return
        self.fire("offsite_lag", "offsite_lag", "critical",
                  "off-site copies lag beyond the RPO target ("
                  + ", ".join(f"{k.kind} {k.lag_seconds:.0f} s" for k in late)
                  + f" > {self.settings.rpo_target_seconds} s)",
                  kinds=[k.kind for k in late])

    def check_outbox(self) -> None:
        """Object protection: a tier whose protected point (every object written before it is
        in the tier) is older than ``outbox_alert_seconds`` — the backup store is down, or the
        replicator stopped (then every tier ages). Resolved when the tier catches up."""
        if self.settings.outbox_interval_seconds <= 0:
            return
        from autograph.dr.buckets.watermark import read_state

        state = read_state(self.settings.dr_dir)
        if state is None:
            return
        now = self.clock()
        limit = timedelta(seconds=self.settings.outbox_alert_seconds)
        for tier, protected in state.protected.items():
            key = f"object_protection:{tier}"
            age = now - protected
            if age <= limit:
                self.alerts.resolve(key)
                continue
            why = state.failed.get(tier) or ("the replicator has not run since "
                                             f"{isoformat(state.at)}" if now - state.at > limit
                                             else "objects are still being copied")
            self.fire(key, "object_protection_lag", "critical",
                      f"objects written in the last {age.total_seconds():.0f} s are not in the "
                      f"{tier} backup tier ({state.pending} waiting in the outbox): {why}",
                      tier=tier, protected_at=isoformat(protected), pending=state.pending)

    def check_proofs(self) -> None:
        """Restore tests and drills: failed, refused, stale, overdue
        (:mod:`autograph.dr.proof.alerts`)."""
        proof_alerts.check(self.settings, self.alerts, self.clock(), self.started_at)

    # Health ------------------------------------------------------------------------------------

    def check_health(self) -> None:
        """Probe every watched component (concurrently) and fire or resolve its alert."""
        if not self.watched:
            return

        def probe(item: Watched) -> Health:
            try:
                return item.probe()
            except Exception as exc:  # a probe that raises reports the component down
                return Health(False, type(exc).__name__)

        with ThreadPoolExecutor(min(8, len(self.watched)), thread_name_prefix="probe") as pool:
            results = list(pool.map(probe, self.watched))
        now = self.clock()
        for item, health in zip(self.watched, results, strict=True):
            if item.role == "service":
                self._service(item, health, now)
            else:
                self._dependency(item, health)

    def _dependency(self, item: Watched, health: Health) -> None:
        rule = UNREACHABLE_RULES[item.role]
        if health.healthy:
            self._failures.pop(item.name, None)
            self.alerts.resolve(rule)
            return
        count = self._failures[item.name] = self._failures.get(item.name, 0) + 1
        if count >= self.settings.unreachable_alert_checks:
            what = {"database": "PostgreSQL", "s3": "S3 object storage",
                    "backup_s3": "the backup S3 server"}[item.role]
            self.fire(rule, rule, "critical",
                      f"{what} is unreachable ({count} failed checks): {health.detail}",
                      component=item.name, detail=health.detail)

    def _service(self, item: Watched, health: Health, now: datetime) -> None:
        key = f"service_unhealthy:{item.name}"
        if health.healthy:
            self._unhealthy_since.pop(item.name, None)
            self.alerts.resolve(key)
            return
        since = self._unhealthy_since.setdefault(item.name, now)
        if (now - since).total_seconds() >= self.settings.unhealthy_alert_seconds:
            self.fire(key, "service_unhealthy", "critical",
                      f"{item.name} has been unhealthy for {(now - since).total_seconds():.0f}"
                      f" s: {health.detail}", service=item.name, since=isoformat(since),
                      detail=health.detail)

    # Storage -----------------------------------------------------------------------------------

    def check_storage(self) -> None:
        """Disk usage of the home and backup folders, and room for the next backups."""
        seen: set[int] = set()
        backups_dir = self.settings.backups_dir
        for folder in (self.settings.home_dir, backups_dir):
            target = _existing(folder)
            device = target.stat().st_dev
            if device in seen:
                continue
            seen.add(device)
            usage = shutil.disk_usage(target)
            percent = 100.0 * (usage.total - usage.free) / usage.total if usage.total else 0.0
            key = f"disk_usage:{folder}"
            limit = self.settings.disk_usage_alert_percent
            if percent > limit:
                self.fire(key, "disk_usage", "warning",
                          f"disk holding {folder} is {percent:.1f} % full (limit {limit:g} %)",
                          path=str(folder), percent=round(percent, 2),
                          free_bytes=usage.free)
            else:
                self.alerts.resolve(key)
        self._check_backup_room(_existing(backups_dir))

    def _check_backup_room(self, folder: Path) -> None:
        newest: dict[tuple[str, str], int] = {}
        for kind in self.catalogs:
            for entry in self._listing(kind):  # newest first
                newest.setdefault((entry.kind, entry.source), entry.size_bytes)
        next_round = sum(newest.values())
        needed = max(self.settings.backup_storage_min_free_bytes, next_round)
        free = shutil.disk_usage(folder).free
        if free < needed:
            self.fire("backup_storage_low", "backup_storage_low", "warning",
                      f"backup storage is running low: {free} bytes free in "
                      f"{self.settings.backups_dir}, need {needed} (minimum "
                      f"{self.settings.backup_storage_min_free_bytes}, next round of backups "
                      f"about {next_round})", free_bytes=free, needed_bytes=needed)
        else:
            self.alerts.resolve("backup_storage_low")

    def check_quotas(self) -> None:
        """Every ``quota_check_seconds``: each bucket with a quota, summed and compared."""
        quotas = self.settings.bucket_quota_bytes
        now = self.clock()
        if not quotas or self.s3_client is None:
            return
        if self._quotas_checked is not None and (now - self._quotas_checked).total_seconds() \
                < self.settings.quota_check_seconds:
            return
        self._quotas_checked = now
        client = self.s3_client()
        for bucket, quota in sorted(quotas.items()):
            used, objects = bucket_usage(client, bucket)
            key = f"bucket_quota:{bucket}"
            if used > quota:
                self.fire(key, "bucket_quota", "warning",
                          f"bucket {bucket} holds {used} bytes in {objects} objects, over its "
                          f"quota of {quota} bytes", bucket=bucket, used_bytes=used,
                          quota_bytes=quota)
            else:
                self.alerts.resolve(key)

    # Data ------------------------------------------------------------------------------------

    def check_references(self) -> None:
        """Every ``reference_check_seconds``: ``dangling_references`` while rows name objects
        missing from their bucket (:mod:`.references`)."""
        interval = self.settings.reference_check_seconds
        now = self.clock()
        if interval <= 0 or self.creds is None or self.s3_client is None:
            return
        if self._references_checked is not None and \
                (now - self._references_checked).total_seconds() < interval:
            return
        self._references_checked = now
        references.check(self.settings, self.creds, self.s3_client(), self.alerts)


def bucket_usage(client: Any, bucket: str) -> tuple[int, int]:
    """Total size and object count of ``bucket`` (paginated listing)."""
    total = count = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            total += int(item.get("Size", 0))
            count += 1
    return total, count


def _existing(folder: Path) -> Path:
    """``folder`` or its nearest existing parent (a fresh install has no backup folder yet)."""
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    return folder
