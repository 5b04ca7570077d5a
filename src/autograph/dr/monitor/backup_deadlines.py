"""The dead-man's switch: ``backup_overdue`` when a source expected to be backed up (or a bucket
expected to be snapshotted) got no successful one for its interval plus a margin, which catches
a scheduler that silently stopped; and resolving failure alerts a later success has answered."""

from __future__ import annotations

from datetime import datetime, timedelta

from autograph.clock import isoformat
from autograph.dr.models import BackupEntry
from autograph.dr.monitor.state import MonitorState
from autograph.dr.monitor.watched import Expected, hours, subject
from autograph.dr.scheduler import is_scheduled


class BackupDeadlineChecks(MonitorState):
    """Compares the catalogs (and the snapshot store) with what is expected and when."""

    def check_backups(self) -> None:
        """The dead-man's switch per expected source, and resolving failure alerts that a later
        success (maybe made by another process) has answered."""
        now = self.clock()
        listings = {kind: self.listing(kind) for kind in self.catalogs}
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
                  f"{hours(now - since)} (interval {hours(item.interval)} + margin "
                  f"{hours(limit - item.interval)}); {last_text}",
                  kind=item.kind, source=item.source,
                  last_backup=last.name if last else None, since=isoformat(since))

    def check_snapshots(self) -> None:
        """The dead-man's switch for bucket snapshots: none of a bucket for twice the
        interval plus a minute (the schedule stopped, or every attempt fails)."""
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
