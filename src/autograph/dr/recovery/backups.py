"""Which backups a recovery uses, and the calls into the backup managers that restore them.

Choice: the backups named with ``--backup`` (no fallback: the operator chose), else every
verified backup newest first (created at or before ``--to`` when given). Restoring walks that
list: a backup the manager refuses (checksum mismatch, unreadable archive, failed
``pg_restore``) is recorded with its reason and the next older one is tried. An unreachable
server stops the walk at once: an older backup would not help.

The database comes back one of two ways. Physical (SPEC §7): a base backup plus the streamed
WAL, replayed to the latest point (or ``--to``), so only the last seconds of writes can be
lost; used for a complete failure, or for a corrupted database when ``--to`` names a time
before the corruption. Logical (the plan's runbook): the newest verified ``pg_dump``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import datetime
from typing import TYPE_CHECKING, Any

from autograph.clock import Clock, isoformat, utc_now
from autograph.dr.buckets.snapshots.store import parse_name
from autograph.dr.catalog import open_catalog
from autograph.dr.models import BackupEntry, jsonable
from autograph.dr.ops.locks import LentLock, OperationLock
from autograph.dr.recovery.step_data import RecoveryPlan
from autograph.errors import (
    AutographError,
    Conflict,
    DependencyDown,
    InvalidInput,
    NotFound,
    OperationFailed,
)

if TYPE_CHECKING:
    from autograph.dr.recovery.options import RecoveryOptions
    from autograph.stack.lifecycle import Stack

MAX_ATTEMPTS = 5
LOCK_WAIT = 300.0  # seconds a bucket restore waits for a scheduled snapshot or archive to end
SNAPSHOT_TRIES = 2  # newest snapshots tried before the archives


def _listing(stack: Stack, kind: str, with_s3: bool) -> tuple[list[BackupEntry], dict[str, str]]:
    catalog = open_catalog(stack.settings, stack.creds, kind,  # type: ignore[arg-type]
                           with_s3=with_s3)
    found = catalog.list()
    if not with_s3:
        found.unreachable["s3"] = "not asked: the S3 server holding the copies is down"
    return list(found.backups), dict(found.unreachable)


def plan(stack: Stack, options: RecoveryOptions, s3_up: bool = True) -> RecoveryPlan:
    """The candidate backups, newest first (see :class:`RecoveryPlan`). With ``s3_up`` False
    (the application S3 server is down) the S3 tier is only asked when the backups live on
    another endpoint.

    Raises NotFound for a ``--backup`` name that is in neither catalog, InvalidInput for a
    bucket backup of a bucket that is not an application bucket.
    """
    with_s3 = s3_up or bool(stack.settings.backup_s3_endpoint)
    database, db_down = _listing(stack, "database", with_s3)
    bucket_entries, obj_down = _listing(stack, "bucket", with_s3)
    base, base_down = _listing(stack, "basebackup", with_s3)
    result = RecoveryPlan(
        buckets={b: [] for b in stack.settings.app_buckets},
        unreachable={**{f"database {k}": v for k, v in db_down.items()},
                     **{f"buckets {k}": v for k, v in obj_down.items()},
                     **{f"base backups {k}": v for k, v in base_down.items()}})

    def usable(entry: BackupEntry) -> bool:
        return options.to is None or entry.created_at <= options.to

    for entry in database:
        if not usable(entry):
            continue
        if entry.verification.status == "passed":
            result.database.append(entry.name)
        else:
            result.unverified["database"] += 1
    result.base = [e.name for e in base if e.verification.status == "passed"
                   and (options.to is None or e.finished_at <= options.to)]
    for entry in bucket_entries:
        if not usable(entry) or entry.source not in result.buckets:
            continue
        if entry.verification.status == "passed":
            result.buckets[entry.source].append(entry.name)
        else:
            result.unverified["buckets"] += 1
    snapshots, snap_down = _snapshots(stack, options, with_s3)
    result.unreachable.update({f"snapshots {k}": v for k, v in snap_down.items()})
    for bucket, names in snapshots.items():
        archives = [e for e in bucket_entries if e.name in result.buckets.get(bucket, [])]
        newest_archive = max((e.created_at for e in archives), default=None)
        fresher = [n for n in names if newest_archive is None
                   or parse_name(n)[1] > newest_archive]
        if bucket in result.buckets:
            result.buckets[bucket] = fresher[:SNAPSHOT_TRIES] + result.buckets[bucket]
    apply_named(result, options.backups, database, bucket_entries, base)
    return result


def _snapshots(stack: Stack, options: RecoveryOptions,
               with_s3: bool) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Each application bucket's snapshots, newest first, that finished by ``--to``."""
    from autograph.dr.buckets.snapshots.store import SnapshotStore, merged

    store = SnapshotStore(stack.settings, stack.creds, with_s3=with_s3)
    per_tier, unreachable = store.names()  # one listing for every bucket
    found: dict[str, list[str]] = {}
    for bucket in stack.settings.app_buckets:
        names = list(reversed(merged(per_tier, bucket)))
        if options.to is not None:
            names = [n for n in names if parse_name(n)[1] <= options.to]
        usable: list[str] = []
        for name in names:
            if len(usable) == SNAPSHOT_TRIES:
                break
            try:
                snapshot = store.load(name)[0]
            except AutographError:
                usable.append(name)  # the restore refuses it and says why; then the next
                continue
            if options.to is not None and snapshot.finished_at > options.to:
                continue  # it may hold writes made after --to
            if snapshot.shrunk:
                continue  # it recorded a mass deletion, not the data
            usable.append(name)
        found[bucket] = usable
    return found, unreachable


def apply_named(result: RecoveryPlan, names: tuple[str, ...], database: list[BackupEntry],
                 buckets: list[BackupEntry], base: list[BackupEntry]) -> None:
    """Backups named with ``--backup`` replace the automatic choice of their kind (or bucket):
    the operator chose, so there is no fallback for them. Naming a dump rules out the
    physical path and naming a base backup the dumps."""
    by_name = {e.name: ("database", e) for e in database}
    by_name.update({e.name: ("bucket", e) for e in buckets})
    by_name.update({e.name: ("base", e) for e in base})
    for name in names:
        if name.startswith("snap_"):
            bucket = parse_name(name)[0]
            if bucket not in result.buckets:
                raise InvalidInput(f"snapshot {name} is of bucket {bucket}, which is not an "
                                   "application bucket")
            result.buckets[bucket] = [name]
            continue
        if name not in by_name:
            raise NotFound(f"no database, base or bucket backup named {name}")
        kind, entry = by_name[name]
        if kind == "database":
            result.database, result.base = [name], []
        elif kind == "base":
            result.base, result.database = [name], []
        elif entry.source not in result.buckets:
            raise InvalidInput(f"backup {name} is of bucket {entry.source}, which is not an "
                               "application bucket")
        else:
            result.buckets[entry.source] = [name]


def why_none(found: RecoveryPlan, kind: str) -> str:
    """A parenthesised explanation of why no backup of ``kind`` is usable."""
    reasons = []
    unverified = found.unverified["database" if kind == "database" else "buckets"]
    if unverified:
        reasons.append(f"{unverified} not verified: verify one or name it with --backup")
    reasons += [f"{tier} unreachable: {why}" for tier, why in found.unreachable.items()]
    return f" ({'; '.join(reasons)})" if reasons else ""


def restore_first(candidates: list[str], restore: Any) -> dict[str, Any]:
    """Try candidates in order until one restores; record refusals with their reasons."""
    refused: list[dict[str, str]] = []
    for name in candidates[:MAX_ATTEMPTS]:
        start, began = time.monotonic(), utc_now()
        try:
            result = restore(name)
        except DependencyDown:
            raise
        except (OperationFailed, NotFound) as exc:
            refused.append({"backup": name, "reason": exc.message})
            continue
        return {"backup": name, "restore_seconds": round(time.monotonic() - start, 3),
                "started_at": isoformat(began), "finished_at": isoformat(utc_now()),
                "result": result, "refused": refused,
                "issues": [f"backup {r['backup']} refused: {r['reason']}; fell back to an "
                           "older one" for r in refused]}
    tried = "; ".join(f"{r['backup']}: {r['reason']}" for r in refused)
    raise OperationFailed(f"no backup could be restored ({tried or 'none to try'})")


def restore_database(stack: Stack, candidates: list[str]) -> dict[str, Any]:
    """Restore the first of ``candidates`` the database manager accepts (SPEC §6: into a new
    database, then swapped in). Raises OperationFailed when none restores, DependencyDown
    when PostgreSQL or the backup store is unreachable."""
    from autograph.dr.postgres import DatabaseBackupManager

    manager = DatabaseBackupManager(stack.settings, stack.creds)

    def restore(name: str) -> dict[str, Any]:
        result = manager.restore(name)
        return dict(jsonable(result))

    return {**restore_first(candidates, restore), "method": "dump"}


def recover_physical(stack: Stack, candidates: list[str], target_time: datetime | None,
                     clock: Clock) -> dict[str, Any]:
    """Rebuild the cluster from the first base backup that recovers (plus the streamed WAL,
    to the latest point or ``target_time``), then restart WAL streaming. Raises
    OperationFailed when none recovers (the cluster is then as it was before)."""
    from autograph.dr.postgres.physical import PhysicalBackupManager

    manager = PhysicalBackupManager(stack.settings, stack.creds)
    healthy_at: dict[str, str] = {}

    def start_server() -> None:
        stack.up(only=["postgres"])
        healthy_at["postgres"] = isoformat(clock())

    def restore(name: str) -> dict[str, Any]:
        result = manager.recover(lambda: stack.stop("postgres"), start_server, name=name,
                                 target_time=target_time)
        healthy_at["postgres"] = isoformat(clock())  # promoted: accepting writes
        return dict(jsonable(result))

    outcome = restore_first(candidates, restore)
    outcome.update(method="physical", healthy_at=healthy_at)
    if any(c.name == "walstream" for c in stack.components):
        try:  # streaming follows the recovered cluster from here on
            stack.stop("walstream")
            stack.up(only=["walstream"])
            healthy_at["walstream"] = isoformat(clock())
        except AutographError as exc:  # the database is back; protection is not: say so
            outcome["issues"] = [*outcome["issues"], f"WAL streaming did not resume after "
                                 f"the recovery ({exc.message}): continuous protection is "
                                 "off until it does"]
    return outcome


class _SharedLocks:
    """The snapshot and archive locks for every bucket restore of one recovery, lent to the
    restores, which run at the same time; released once when they are all done. Both are
    held from the start (each waiting up to LOCK_WAIT for a scheduled run to end): services
    may be starting meanwhile, and a scheduled snapshot or archive must not record a bucket
    half restored (the scheduler defers its run on the Conflict)."""

    def __init__(self, takers: dict[str, Callable[[], OperationLock]]) -> None:
        self._takers, self._held = takers, dict[str, OperationLock]()
        self._mutex = threading.Lock()

    def lend(self, kind: str) -> OperationLock:
        with self._mutex:
            if kind not in self._held:
                deadline = time.monotonic() + LOCK_WAIT
                while True:
                    try:
                        self._held[kind] = self._takers[kind]()
                        break
                    except Conflict:
                        if time.monotonic() >= deadline:
                            raise
                        time.sleep(0.5)
            return LentLock(self._held[kind])

    def release(self) -> None:
        with self._mutex:
            for lock in self._held.values():
                lock.release()
            self._held.clear()


def _restore_bucket(stack: Stack, bucket: str, candidates: list[str],
                    held: _SharedLocks) -> dict[str, Any]:
    """Restore one bucket from the first of ``candidates`` that restores (``overwrite=false``).
    Raises OperationFailed naming the bucket."""
    from autograph.dr.buckets.manager import MinIOBucketBackupManager
    from autograph.dr.buckets.snapshots.manager import SnapshotManager

    def restore(name: str) -> dict[str, Any]:
        if name.startswith("snap_"):  # incremental snapshot (SPEC §7)
            snapshots = SnapshotManager(stack.settings, stack.creds)
            return {**snapshots.restore(name, target_bucket=bucket,
                                        lock=held.lend("snapshot")).as_dict(),
                    "method": "snapshot"}
        manager = MinIOBucketBackupManager(stack.settings, stack.creds)
        return dict(jsonable(manager.restore(name, target_bucket=bucket, overwrite=False,
                                             lock=held.lend("bucket"))))

    try:
        done = restore_first(candidates, restore)
    except AutographError as exc:
        raise OperationFailed(f"bucket {bucket}: {exc.message}") from None
    extra = done["result"].get("extra", {}) or {}
    counts = {k: done["result"].get(k, extra.get(k, 0)) for k in ("restored", "skipped", "failed")}
    if counts["failed"]:
        raise OperationFailed(f"bucket {bucket}: {counts['failed']} objects failed to restore "
                              f"from {done['backup']}")
    return {**done, "counts": counts}


def restore_buckets(stack: Stack, plan_buckets: dict[str, list[str]]) -> dict[str, Any]:
    """Restore every application bucket from its first acceptable backup, all buckets at the
    same time, ``overwrite=false`` (existing keys are kept and counted as skipped). Raises
    OperationFailed naming each bucket none of whose backups restored (or whose objects failed
    to upload), once every bucket's restore has ended."""
    from autograph.dr.buckets.manager import MinIOBucketBackupManager
    from autograph.dr.buckets.snapshots.manager import SnapshotManager

    held = _SharedLocks({
        "snapshot": lambda: SnapshotManager(stack.settings, stack.creds).acquire(
            "restore", "recovery"),
        "bucket": lambda: MinIOBucketBackupManager(stack.settings, stack.creds).acquire(
            "restore", "recovery")})
    outcome: dict[str, Any] = {"buckets": {}, "refused": [], "issues": [],
                               "started_at": isoformat(utc_now())}
    start = time.monotonic()
    todo = {b: c for b, c in plan_buckets.items() if c}
    outcome["issues"] += [f"bucket {b}: no backup to restore; left as found"
                          for b, c in plan_buckets.items() if not c]
    try:
        if todo:
            held.lend("snapshot")
            held.lend("bucket")
        with ThreadPoolExecutor(max(1, len(todo)), thread_name_prefix="restore-bucket") as pool:
            futures = {b: pool.submit(_restore_bucket, stack, b, c, held)
                       for b, c in todo.items()}
            wait(list(futures.values()))
    finally:
        held.release()
    failed = []
    for bucket, future in futures.items():
        try:
            done = future.result()
        except AutographError as exc:
            failed.append(exc.message)
            continue
        outcome["buckets"][bucket] = {
            "backup": done["backup"], **done["counts"],
            "method": done["result"].get("method", "archive"),
            "seconds": done["restore_seconds"], "started_at": done["started_at"],
            "finished_at": done["finished_at"], "tiers": _tiers(done["result"])}
        outcome["refused"] += [{**r, "bucket": bucket} for r in done["refused"]]
        outcome["issues"] += [f"bucket {bucket}: {i}" for i in done["issues"]]
    if failed:
        raise OperationFailed("; ".join(failed))
    outcome["restore_seconds"] = round(time.monotonic() - start, 3)
    outcome["finished_at"] = isoformat(utc_now())
    return outcome


def _tiers(result: dict[str, Any]) -> list[str]:
    """The tiers a bucket restore read from (a snapshot's blobs may come from both)."""
    if result.get("blobs_from"):
        return sorted(tier for tier, count in result["blobs_from"].items() if count)
    return [str(result.get("source_location") or "local")]

