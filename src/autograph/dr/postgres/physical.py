"""Physical base backups and point-in-time recovery (SPEC §7): the fast path to a low RTO
and, with the streamed WAL (:mod:`walstream`), an RPO of seconds.

A base backup is ``pg_basebackup -Ft -X fetch`` streamed into ``NAME.base.tar`` (sha256 on the
way) in the ``basebackup`` catalog (``BACKUPS/base/``, ``s3://autograph-backups/base/``).
Recovery builds a new data folder beside the live one from the base backup plus every streamed
WAL segment of that cluster, replays to the end of the WAL (or to ``--to TIME``), promotes, and
only then puts it in place. The previous folder is kept (``postgres.pre_pitr_<stamp>``) and put
back if anything fails, so a failed recovery leaves the cluster as it was.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from autograph import commands
from autograph.clock import Clock, isoformat, utc_now
from autograph.config import Settings
from autograph.dr.catalog import Catalog, open_catalog
from autograph.dr.models import (
    BackupEntry,
    Manifest,
    ProgressFn,
    StepRecord,
    Verification,
    no_progress,
)
from autograph.dr.ops import hooks, locks
from autograph.dr.ops.steps import StepTimer
from autograph.dr.postgres.data_folder import (
    RECOVERY_CONF,
    drop_old_clusters,
    extract_base_backup,
    live_data_dir,
    pg_user,
    write_recovery_conf,
)
from autograph.dr.postgres.private import (
    PrivateServer,
    chain_gap,
    private_server,
    segment_number,
)
from autograph.dr.postgres.server import PgServer
from autograph.dr.postgres.wal_fetch import FetchedWal, fetch_offsite_wal
from autograph.dr.postgres.wal_files import (
    SEGMENT,
    prune_wal,
    retire_wal_folder,
    stage_wal,
    wait_receiver_idle,
    wal_sources,
)
from autograph.dr.postgres.walstream import wal_root
from autograph.errors import AutographError, InvalidInput, NotFound, OperationFailed
from autograph.secrets import Credentials

KIND = "basebackup"
FORMAT = "pg_basebackup tar"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecoveryResult:
    """What a point-in-time recovery did."""

    backup_name: str
    target_time: str | None
    wal_segments: int
    replayed_to: str | None
    previous_data_dir: str
    duration_seconds: float
    steps: list[StepRecord]
    wal_gap: str | None = None        # where replay had to stop early, if it did
    source: str = "local"             # the tier the base backup came from
    last_segment: str | None = None   # the newest WAL segment given to the replay
    wal_offsite: int = 0              # segments of it fetched from the off-site store


@dataclass(frozen=True)
class _Swap:
    """The folders of a recovery: the live cluster, the one being built, the previous one."""

    live: Path
    staging: Path
    previous: Path
    user: str | None


@dataclass(frozen=True)
class _Replayed:
    """What replaying the staged WAL did."""

    wal: FetchedWal
    staged: list[str]
    replayed: str
    short: str | None
    migrated: str


def _chain_gap(entry: BackupEntry, staged: list[str]) -> str | None:
    """The first gap in the segments the replay needs (from the backup's start), if any."""
    start = str(entry.extra.get("start_wal_file") or "0" * 24)
    gap = chain_gap([n for n in staged if SEGMENT.match(n)
                     and segment_number(n) >= segment_number(start)])
    return f"WAL chain gap between {gap[0]} and {gap[1]}" if gap else None


class PhysicalBackupManager:
    """Base backups of the whole cluster and recovery to the latest point or a time."""

    def __init__(self, settings: Settings, creds: Credentials, *, clock: Clock = utc_now,
                 catalog: Catalog | None = None) -> None:
        self.settings = settings
        self.creds = creds
        self.server = PgServer.from_settings(settings, creds)
        self.catalog = catalog or open_catalog(settings, creds, KIND)  # type: ignore[arg-type]
        self.clock = clock

    # Base backups ------------------------------------------------------------------------------

    def create(self, name: str | None = None, *, tags: tuple[str, ...] = ("manual",),
               progress: ProgressFn = no_progress) -> BackupEntry:
        """Take a base backup of the running cluster into the catalog.

        Raises DependencyDown when PostgreSQL is down, Conflict when another base backup
        runs, OperationFailed when pg_basebackup fails (nothing is listed then).
        """
        started = self.clock()
        name = name or f"{'scheduled' if 'scheduled' in tags else 'manual'}_base_" \
            f"{started.strftime('%Y%m%d_%H%M%S')}"
        self.catalog.validate_new(name)
        artifact = f"{name}.base.tar"
        with locks.acquire(self.settings.backups_dir, KIND, "create", name), \
                hooks.reporting("backup_failed", KIND, name):
            try:
                entry = self._create(name, artifact, started, tags, progress)
            except AutographError:
                self.catalog.discard(artifact)
                raise
        hooks.emit(hooks.BackupEvent("backup_succeeded", KIND, name, f"{entry.size_bytes} bytes",
                                     data={"size_bytes": entry.size_bytes}))
        return entry

    def _create(self, name: str, artifact: str, started: datetime, tags: tuple[str, ...],
                progress: ProgressFn) -> BackupEntry:
        with self.server.connect() as conn:
            sysid = str(conn.execute(
                "SELECT system_identifier::text FROM pg_control_system()").fetchone()[0])
            version = str(conn.execute("SHOW server_version").fetchone()[0])
            start_wal = str(conn.execute(
                "SELECT pg_walfile_name(pg_current_wal_lsn())").fetchone()[0])
        args = [self.server.program("pg_basebackup"), "-D", "-", "-Ft", "-X", "fetch",
                "-c", "fast", "--no-password", *self.server.replication_args()]
        progress("base backup", None)
        with self.catalog.stage(artifact) as sink:
            proc = commands.start(args, env=self.server.replication_env())
            assert proc.stdout is not None
            try:
                while chunk := proc.stdout.read(1 << 20):
                    sink.write(chunk)
            except BaseException:
                proc.kill()
                proc.wait()
                raise
            commands.finish(proc, what="pg_basebackup")
            size, digest = sink.size, sink.hexdigest()
        finished = self.clock()
        manifest = Manifest(
            name=name, kind=KIND, source="cluster", format=FORMAT, artifact=artifact,  # type: ignore[arg-type]
            created_at=finished, started_at=started, finished_at=finished, size_bytes=size,
            sha256=digest, server_version=version, tags=list(tags),
            verification=Verification(status="passed", at=finished, method="sha256 on write",
                                      checks={"checksum": "passed"}),
            extra={"system_identifier": sysid, "start_wal_file": start_wal},
        )
        progress("upload", None)
        return self.catalog.commit(manifest)

    def latest(self, before: datetime | None = None) -> BackupEntry:
        """The newest base backup (finished before ``before`` when given). Raises NotFound."""
        for entry in self.catalog.list().backups:
            if before is None or entry.finished_at <= before:
                return entry
        raise NotFound("no base backup" + (f" finished before {isoformat(before)}"
                                           if before else "") + " in the catalog")

    # Recovery ----------------------------------------------------------------------------------

    def recover(self, stop_server: Any, start_server: Any, *, name: str | None = None,
                target_time: datetime | None = None,
                progress: ProgressFn = no_progress) -> RecoveryResult:
        """Rebuild the cluster from a base backup plus streamed WAL; promote; swap in.

        ``stop_server()`` / ``start_server()`` stop and start PostgreSQL (and wait for it).
        Raises NotFound (no base backup), IntegrityError (no intact copy), OperationFailed
        (recovery failed: the previous data folder is back in place and started).
        """
        if self.settings.pg_external:
            raise InvalidInput(
                f"PostgreSQL is external ({self.settings.pg_address}:{self.settings.pg_port}): "
                "its data folder is not on this machine; recover into a new local cluster "
                "with `autograph backup base recover --into DIR --port PORT`")
        began = time.monotonic()
        steps = StepTimer(self.clock)

        def step(label: str, detail: str = "") -> None:
            steps.done(label, detail)
            progress(label, None)
            steps.start()

        entry = self.catalog.get(name) if name else self.latest(target_time)
        with locks.acquire(self.settings.backups_dir, KIND, "restore", entry.name), \
                locks.mark_busy(self.settings.backups_dir, KIND, entry.name, "restore"):
            steps.start()
            fetched = self.catalog.fetch(entry.name)
            step("fetch base backup", fetched.location)
            live = live_data_dir(self.settings)
            stamp = self.clock().strftime("%Y%m%d_%H%M%S")
            swap = _Swap(live, live.with_name(f"postgres.restoring_{stamp}"),
                         live.with_name(f"postgres.pre_pitr_{stamp}"), pg_user(self.settings))
            extract_base_backup(fetched.path, swap.staging, swap.user)
            step("unpack base backup")
            replay = self._replace_cluster(entry, swap, target_time, stop_server, start_server)
            sysid = str(entry.extra["system_identifier"])
            retire_wal_folder(wal_root(self.settings) / sysid, stamp)
            if replay.wal.folder is not None:  # replayed: the fetched copy is not needed
                shutil.rmtree(replay.wal.folder, ignore_errors=True)
            dropped = drop_old_clusters(live.parent, self.settings.pre_restore_keep)
            stopped = replay.wal.stopped or replay.short or _chain_gap(entry, replay.staged)
            step("replay WAL and promote", f"replayed to {replay.replayed}; role password set "
                 f"to the current secret; {replay.migrated}" + (
                     f"; removed older kept clusters {', '.join(dropped)}" if dropped else ""))
        return RecoveryResult(entry.name, isoformat(target_time) if target_time else None,
                              len(replay.staged), replay.replayed, str(swap.previous),
                              round(time.monotonic() - began, 3), steps.steps,
                              wal_gap=(f"{stopped}: recovered to the last good point "
                                       f"before it ({replay.replayed})" if stopped else None),
                              source=fetched.location, wal_offsite=replay.wal.segments,
                              last_segment=max(
                                  (n for n in replay.staged if SEGMENT.match(n)), default=None))

    def _replace_cluster(self, entry: BackupEntry, swap: _Swap, target_time: datetime | None,
                         stop_server: Any, start_server: Any) -> _Replayed:
        """Stop the server, stage the WAL into the unpacked cluster, swap it in, replay and
        start it. On any failure the previous cluster is put back and OperationFailed raised.

        The server is stopped first, then the WAL taken: every write up to its shutdown
        checkpoint reaches the receiver and is replayed, and the recovered history contains
        everything the receiver holds, so it can resume on it."""
        stop_server()
        moved = False
        sysid = str(entry.extra["system_identifier"])
        try:
            wait_receiver_idle(wal_root(self.settings) / sysid)
            fetched_wal = fetch_offsite_wal(self.settings, sysid)
            extra = [fetched_wal.folder] if fetched_wal.folder else []
            staged = stage_wal([*extra, *wal_sources(self.settings, sysid)],
                               swap.staging / "pg_wal", swap.user)
            write_recovery_conf(swap.staging, target_time, swap.user)
            if swap.live.exists():
                swap.live.rename(swap.previous)
                moved = True
            swap.staging.rename(swap.live)
            replayed, short, migrated = self._replay(swap.live, swap.user, target_time)
            (swap.live / RECOVERY_CONF).unlink(missing_ok=True)
            (swap.live / "recovery.signal").unlink(missing_ok=True)
            start_server()
        except Exception as exc:
            self._put_back(swap.live, swap.previous if moved else None, stop_server,
                           start_server)
            message = exc.message if isinstance(exc, AutographError) else str(exc)
            raise OperationFailed(
                f"point-in-time recovery from {entry.name} failed, previous cluster put "
                f"back: {message}") from None
        return _Replayed(fetched_wal, staged, replayed, short, migrated)

    def _replay(self, live: Path, user: str | None,
                target_time: datetime | None) -> tuple[str, str | None, str]:
        """Replay and promote privately, then give the roles the current passwords (the backup
        carries those of the machine that made it: see private.py) and migrate the schema.
        Returns the point replayed to; when ``target_time`` lies past the end of the WAL at
        hand (PostgreSQL refuses to promote short of its target: after the loss of a machine
        the off-site WAL ends up to a minute before the newest protected point), the note that
        the cluster was replayed again to the end of that WAL instead; and what the migration
        did."""
        promoted = False
        try:
            with private_server(self.settings, live, user) as server:
                replayed = self._promote(server)
                promoted = True  # a failed migration is not retried by replaying again
                migrated = server.migrate()
            return replayed, None, migrated
        except Exception as exc:
            if target_time is None or promoted:
                raise
            why = exc.message if isinstance(exc, AutographError) else str(exc)
            log.warning("replay to %s failed (%s); replaying to the end of the WAL instead",
                        isoformat(target_time), why)
        write_recovery_conf(live, None, user)
        with private_server(self.settings, live, user) as server:
            replayed = self._promote(server)
            migrated = server.migrate()
        return replayed, f"the WAL ends before {isoformat(target_time)} ({why})", migrated

    def _promote(self, server: PrivateServer) -> str:
        """Wait for the promotion; give the stack's role its current password."""
        replayed = server.wait_promoted()
        server.set_password(self.settings.pg_user, self.creds.pg_password)
        return replayed

    def _put_back(self, live: Path, previous: Path | None, stop_server: Any,
                  start_server: Any) -> None:
        with contextlib.suppress(Exception):
            stop_server()
        if previous is None:
            with contextlib.suppress(Exception):
                start_server()
            return
        failed = live.with_name(live.name + ".failed_pitr")
        if live.exists():
            shutil.rmtree(failed, ignore_errors=True)
            live.rename(failed)
        previous.rename(live)
        with contextlib.suppress(Exception):
            start_server()


def prune_base_backups(settings: Settings, catalog: Catalog) -> list[str]:
    """Keep the newest ``base_backups_keep`` base backups (and any pinned or being restored),
    delete the rest from both tiers, then the WAL none of the kept ones needs. Returns what
    was removed (backup names, then ``sysid/segment`` files)."""
    listing = catalog.list()
    if listing.unreachable:
        return []
    busy = locks.busy_names(settings.backups_dir, KIND)
    removed: list[str] = []
    for entry in listing.backups[settings.base_backups_keep:]:
        if "pinned" in entry.tags or entry.name in busy:
            continue
        catalog.delete(entry.name)
        removed.append(entry.name)
    return removed + prune_wal(settings, catalog)
