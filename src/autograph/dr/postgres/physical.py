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
import os
import pwd
import re
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
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
    Verification,
    no_progress,
)
from autograph.dr.ops import hooks, locks
from autograph.dr.postgres.private import (
    PrivateServer,
    chain_gap,
    private_server,
    segment_number,
)
from autograph.dr.postgres.server import PgServer
from autograph.dr.postgres.wal_fetch import fetch_offsite_wal
from autograph.dr.postgres.walstream import wal_root
from autograph.errors import AutographError, InvalidInput, NotFound, OperationFailed
from autograph.secrets import Credentials

KIND = "basebackup"
FORMAT = "pg_basebackup tar"
RECOVERY_CONF = "autograph-recovery.conf"
_SEGMENT = re.compile(r"^[0-9A-F]{24}$")

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
    steps: list[dict[str, Any]]
    wal_gap: str | None = None        # where replay had to stop early, if it did
    source: str = "local"             # the tier the base backup came from
    last_segment: str | None = None   # the newest WAL segment given to the replay
    wal_offsite: int = 0              # segments of it fetched from the off-site store


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
        steps: list[dict[str, Any]] = []

        def step(label: str, since: float, detail: str = "") -> None:
            steps.append({"name": label, "duration_seconds": round(time.monotonic() - since, 3),
                          "detail": detail})
            progress(label, None)

        entry = self.catalog.get(name) if name else self.latest(target_time)
        with locks.acquire(self.settings.backups_dir, KIND, "restore", entry.name), \
                locks.mark_busy(self.settings.backups_dir, KIND, entry.name, "restore"):
            t = time.monotonic()
            fetched = self.catalog.fetch(entry.name)
            step("fetch base backup", t, fetched.location)
            live = _live_data_dir(self.settings)
            stamp = self.clock().strftime("%Y%m%d_%H%M%S")
            staging = live.with_name(f"postgres.restoring_{stamp}")
            previous = live.with_name(f"postgres.pre_pitr_{stamp}")
            user = _pg_user(self.settings)
            t = time.monotonic()
            _extract(fetched.path, staging, user)
            step("unpack base backup", t)
            # Stop first, then take the WAL: every write up to the server's shutdown
            # checkpoint reaches the receiver and is replayed, and the recovered history
            # contains everything the receiver holds, so it can resume on it.
            t = time.monotonic()
            stop_server()
            moved = False
            sysid = str(entry.extra["system_identifier"])
            try:
                _wait_receiver_idle(wal_root(self.settings) / sysid)
                fetched_wal = fetch_offsite_wal(self.settings, sysid)
                extra = [fetched_wal.folder] if fetched_wal.folder else []
                staged = _stage_wal([*extra, *wal_sources(self.settings, sysid)],
                                    staging / "pg_wal", user)
                segments = len(staged)
                _write_recovery_conf(staging, target_time, user)
                if live.exists():
                    live.rename(previous)
                    moved = True
                staging.rename(live)
                replayed, short, migrated = self._replay(live, user, target_time)
                (live / RECOVERY_CONF).unlink(missing_ok=True)
                (live / "recovery.signal").unlink(missing_ok=True)
                start_server()
            except Exception as exc:
                self._put_back(live, previous if moved else None, stop_server, start_server)
                message = exc.message if isinstance(exc, AutographError) else str(exc)
                raise OperationFailed(
                    f"point-in-time recovery from {entry.name} failed, previous cluster put "
                    f"back: {message}") from None
            _retire_wal_folder(wal_root(self.settings) / sysid, stamp)
            if fetched_wal.folder is not None:  # replayed: the fetched copy is not needed
                shutil.rmtree(fetched_wal.folder, ignore_errors=True)
            dropped = drop_old_clusters(live.parent, self.settings.pre_restore_keep)
            start = str(entry.extra.get("start_wal_file") or "0" * 24)
            gap = chain_gap([n for n in staged if _SEGMENT.match(n)  # what replay needs
                             and segment_number(n) >= segment_number(start)])
            stopped = fetched_wal.stopped or short or (
                f"WAL chain gap between {gap[0]} and {gap[1]}" if gap else None)
            step("replay WAL and promote", t, f"replayed to {replayed}; role password set to "
                 f"the current secret; {migrated}" + (
                f"; removed older kept clusters {', '.join(dropped)}" if dropped else ""))
        return RecoveryResult(entry.name, isoformat(target_time) if target_time else None,
                              segments, replayed, str(previous),
                              round(time.monotonic() - began, 3), steps,
                              wal_gap=(f"{stopped}: recovered to the last good point "
                                       f"before it ({replayed})" if stopped else None),
                              source=fetched.location, wal_offsite=fetched_wal.segments,
                              last_segment=max(
                                  (n for n in staged if _SEGMENT.match(n)), default=None))

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
        except Exception:
            if target_time is None or promoted:
                raise
            log.warning("replay to %s failed; replaying to the end of the WAL instead",
                        isoformat(target_time))
        _write_recovery_conf(live, None, user)
        with private_server(self.settings, live, user) as server:
            replayed = self._promote(server)
            migrated = server.migrate()
        return replayed, f"the WAL ends before {isoformat(target_time)}", migrated

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


def _pg_user(settings: Settings) -> str | None:
    from autograph.stack.infra import postgres_os_user

    return postgres_os_user(settings)


def _live_data_dir(settings: Settings) -> Path:
    from autograph.stack.infra import postgres_data_dir

    return postgres_data_dir(settings)


def _chown_tree(root: Path, user: str | None) -> None:
    if not user:
        return
    entry = pwd.getpwnam(user)
    for folder, dirs, files in os.walk(root):
        os.chown(folder, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.chown(os.path.join(folder, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)


def _extract(archive: Path, target: Path, user: str | None) -> None:
    """Unpack a base backup into a new folder owned by the server's user (mode 0700)."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    commands.run(["tar", "-xf", str(archive), "-C", str(target)], what="tar -x base backup",
                 timeout=1800)
    os.chmod(target, 0o700)
    _chown_tree(target, user)


def wal_sources(settings: Settings, sysid: str) -> list[Path]:
    """The WAL folders of a cluster, oldest first: those retired by earlier recoveries
    (``<sysid>.pre_pitr_<stamp>``), then the live one."""
    root = wal_root(settings)
    retired = sorted(root.glob(f"{sysid}.pre_pitr_*")) if root.is_dir() else []
    return [*retired, root / sysid]


def drop_old_clusters(data_dir: Path, keep: int) -> list[str]:
    """Remove ``postgres.pre_pitr_*`` data folders beyond the newest ``keep`` (each is a
    whole cluster kept for going back); return their names."""
    kept = sorted(data_dir.glob("postgres.pre_pitr_*"), reverse=True)
    for folder in kept[keep:]:
        shutil.rmtree(folder)
    return [folder.name for folder in kept[keep:]]


def _retire_wal_folder(folder: Path, stamp: str) -> None:
    """After a recovery the cluster continues on a new timeline from the replayed point; the
    receiver starts a fresh folder (and slot) there, the old WAL is kept beside it."""
    if folder.is_dir():
        folder.rename(folder.with_name(f"{folder.name}.pre_pitr_{stamp}"))


def _wait_receiver_idle(folder: Path, quiet: float = 1.0, limit: float = 15.0) -> None:
    """Wait until the streamed WAL stops changing (the receiver has what the server sent)."""
    def state() -> list[tuple[str, int]]:
        if not folder.is_dir():
            return []
        return sorted((p.name, p.stat().st_size) for p in folder.iterdir())

    deadline = time.monotonic() + limit
    last = state()
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = state()
        if now == last:
            return
        last = now


def _stage_wal(sources: list[Path], pg_wal: Path, user: str | None) -> list[str]:
    """Copy every streamed segment (a ``.partial`` one under its full name, unless the
    complete one exists) into ``pg_wal``; later folders win. Returns the names staged."""
    chosen: dict[str, Path] = {}
    for source in sources:
        if not source.is_dir():
            continue
        for path in sorted(source.iterdir()):
            name = path.name.removesuffix(".partial")
            if not (_SEGMENT.match(name) or name.endswith(".history")):
                continue
            if path.name.endswith(".partial") and (source / name).exists():
                continue
            chosen[name] = path
    if not chosen:
        return []
    pg_wal.mkdir(exist_ok=True)
    for name, path in chosen.items():
        shutil.copyfile(path, pg_wal / name)
    _chown_tree(pg_wal, user)
    return sorted(chosen)


def _write_recovery_conf(data: Path, target_time: datetime | None, user: str | None) -> None:
    lines = ["restore_command = '/bin/false'", "recovery_target_timeline = 'latest'"]
    if target_time is not None:
        moment = target_time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")
        lines += [f"recovery_target_time = '{moment}'",
                  "recovery_target_action = 'promote'"]
    (data / RECOVERY_CONF).write_text("\n".join(lines) + "\n")
    (data / "recovery.signal").write_text("")
    _chown_tree(data, user)


def prune_wal(settings: Settings, catalog: Catalog) -> list[str]:
    """Remove streamed WAL no base backup needs any more; return the files removed.

    Per cluster folder, segments older than the oldest listed base backup's start segment
    go. A folder whose cluster has no base backup is left alone (nothing can say it is
    unneeded), and so is everything when the catalog cannot be read in full.
    """
    listing = catalog.list()
    if listing.unreachable or listing.problems:
        return []
    oldest: dict[str, str] = {}
    for entry in listing.backups:
        sysid, start = entry.extra.get("system_identifier"), entry.extra.get("start_wal_file")
        if isinstance(sysid, str) and isinstance(start, str):
            key = start[8:]
            if sysid not in oldest or key < oldest[sysid]:
                oldest[sysid] = key
    removed: list[str] = []
    for sysid, first_needed in oldest.items():
        for folder in wal_sources(settings, sysid):  # retired folders too, then the live one
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                name = path.name.removesuffix(".partial")
                if _SEGMENT.match(name) and name[8:] < first_needed:
                    path.unlink()
                    removed.append(f"{folder.name}/{path.name}")
            if folder.name != sysid and not any(folder.iterdir()):
                folder.rmdir()  # a retired folder with nothing left in it
    return sorted(removed)


def wal_summary(settings: Settings) -> dict[str, dict[str, Any]]:
    """Per cluster folder: segment count, bytes, newest segment and its age in seconds."""
    summary: dict[str, dict[str, Any]] = {}
    root = wal_root(settings)
    if not root.is_dir():
        return summary
    now = time.time()
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = [p for p in folder.iterdir() if _SEGMENT.match(p.name.removesuffix(".partial"))]
        newest = max(files, key=lambda p: p.stat().st_mtime, default=None)
        summary[folder.name] = {
            "segments": len(files),
            "bytes": sum(p.stat().st_size for p in files),
            "newest": newest.name if newest else None,
            "newest_age_seconds": round(now - newest.stat().st_mtime, 1) if newest else None,
        }
    return summary


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
