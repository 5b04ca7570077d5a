"""The plan's backup schedules built from settings: what each scheduled kind backs up, how
often, the backup it runs and the prune that follows it (run by :mod:`autograph.dr.scheduler`
in the gateway's :mod:`autograph.dr.daemon`). Bucket snapshots are one more schedule
(:func:`snapshot_schedule`), not a loop of their own."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING

from autograph.clock import Clock, utc_now
from autograph.config import Settings
from autograph.dr.catalog import Catalog, open_catalog
from autograph.dr.models import Kind
from autograph.dr.retention.prune import PRUNED_KINDS, prune_kind
from autograph.dr.scheduler import BackupFn, LastRun, Schedule, Scheduler
from autograph.secrets import Credentials

if TYPE_CHECKING:
    from autograph.dr.buckets.snapshots.manager import SnapshotManager

log = logging.getLogger("autograph.dr.snapshots")

SCHEDULED_KINDS: tuple[Kind, ...] = (*PRUNED_KINDS, "basebackup")
"""The plan's scheduled catalog kinds (database dumps, bucket archives) and the base backups
that, with the streamed WAL, give recovery to the latest point (SPEC §7); bucket snapshots
(``snapshot``) are scheduled too when ``snapshot_interval_seconds`` is above 0."""


def open_catalogs(settings: Settings, creds: Credentials) -> dict[Kind, Catalog]:
    """The scheduled kinds' catalogs over both tiers."""
    return {kind: open_catalog(settings, creds, kind) for kind in SCHEDULED_KINDS}


def database_backup(settings: Settings, creds: Credentials, clock: Clock) -> BackupFn:
    """Runs one scheduled database backup (``scheduled_backup_<ts>``)."""

    def run(_source: str) -> object:
        from autograph.dr.postgres import DatabaseBackupManager

        return DatabaseBackupManager(settings, creds, clock=clock).create(scheduled=True)

    return run


def bucket_backup(settings: Settings, creds: Credentials, clock: Clock) -> BackupFn:
    """Runs one scheduled backup of a bucket (``scheduled_<bucket>_<ts>``)."""

    def run(bucket: str) -> object:
        from autograph.dr.buckets.manager import MinIOBucketBackupManager

        manager = MinIOBucketBackupManager(settings, creds, clock=clock)
        return manager.create(bucket, scheduled=True)

    return run


def base_backup(settings: Settings, creds: Credentials, clock: Clock) -> BackupFn:
    """Runs one scheduled base backup of the cluster (``scheduled_base_<ts>``)."""

    def run(_source: str) -> object:
        from autograph.dr.postgres.physical import PhysicalBackupManager

        return PhysicalBackupManager(settings, creds, clock=clock).create(tags=("scheduled",))

    return run


def intervals(settings: Settings) -> dict[Kind, timedelta]:
    """The schedule interval of each kind."""
    return {"database": timedelta(seconds=settings.database_backup_interval_seconds),
            "bucket": timedelta(seconds=settings.bucket_backup_interval_seconds),
            "basebackup": timedelta(seconds=settings.base_backup_interval_seconds)}


def sources(settings: Settings) -> dict[Kind, tuple[str, ...]]:
    """What each kind backs up: the application database; the application buckets; the
    whole cluster (base backups)."""
    return {"database": (settings.pg_database,), "bucket": tuple(settings.app_buckets),
            "basebackup": ("cluster",)}


def newest_snapshots(names: Mapping[str, list[str]]) -> dict[str, LastRun]:
    """Each bucket's newest snapshot, from snapshot names per tier (any tier counts)."""
    from autograph.dr.buckets.snapshots.store import parse_name

    newest: dict[str, LastRun] = {}
    for name in {n for found in names.values() for n in found}:
        bucket, at = parse_name(name)
        if bucket not in newest or (at, name) > newest[bucket]:
            newest[bucket] = LastRun(at, name)
    return newest


def snapshot_schedule(settings: Settings, creds: Credentials,
                      clock: Clock = utc_now) -> Schedule:
    """Each application bucket snapshotted every ``snapshot_interval_seconds``, then the
    snapshots pruned (only after a round that took one). Due one interval after the bucket's
    newest snapshot, whoever took it; with none, at once (no start-up delay); after a failure,
    one interval later. The manager is built on first use."""
    made: list[SnapshotManager] = []
    guard = threading.Lock()

    def manager() -> SnapshotManager:
        with guard:
            if not made:
                from autograph.dr.buckets.snapshots.manager import SnapshotManager

                made.append(SnapshotManager(settings, creds, clock=clock))
            return made[0]

    def take(bucket: str) -> object:
        result = manager().take(bucket)
        log.info("snapshot %s: %d objects, %d new (%d bytes) in %.1f s%s",
                 result.snapshot.name, len(result.snapshot.objects), result.snapshot.new_blobs,
                 result.snapshot.new_bytes, result.duration_seconds,
                 f"; S3 copy failed: {result.s3_error}" if result.s3_error else "")
        return result

    every = timedelta(seconds=settings.snapshot_interval_seconds)
    return Schedule("snapshot", every, tuple(settings.app_buckets), None, take,
                    lambda: manager().prune(),
                    latest=lambda: newest_snapshots(manager().store.names()[0]),
                    startup_delay=timedelta(0), retry=every, prune_after_failure=False)


def build_schedules(settings: Settings, creds: Credentials, catalogs: dict[Kind, Catalog],
                    clock: Clock = utc_now) -> list[Schedule]:
    """The plan's schedules, each followed by a prune of its kind, and the snapshot schedule
    when snapshots are on."""
    runners = {"database": database_backup(settings, creds, clock),
               "bucket": bucket_backup(settings, creds, clock),
               "basebackup": base_backup(settings, creds, clock)}
    every, what = intervals(settings), sources(settings)

    def pruner(kind: Kind) -> Callable[[], object]:
        if kind == "basebackup":
            from autograph.dr.postgres.physical import prune_base_backups

            return lambda: prune_base_backups(settings, catalogs[kind])
        return lambda: prune_kind(catalogs[kind], clock())

    schedules = [Schedule(kind, every[kind], what[kind], catalogs[kind], runners[kind],
                          pruner(kind)) for kind in SCHEDULED_KINDS]
    if settings.snapshot_interval_seconds > 0:
        schedules.append(snapshot_schedule(settings, creds, clock))
    return schedules


def build_scheduler(settings: Settings, creds: Credentials, catalogs: dict[Kind, Catalog],
                    clock: Clock = utc_now) -> Scheduler:
    """A scheduler over :func:`build_schedules` with the configured delays."""
    return Scheduler(build_schedules(settings, creds, catalogs, clock), settings.backups_dir,
                     clock=clock, startup_delay=settings.scheduler_startup_delay_seconds,
                     retry=settings.scheduler_retry_seconds)
