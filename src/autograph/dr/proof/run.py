"""One restore test per kind, end to end: pick the newest backup, guard the disk, hold the
kind's lock, restore into scratch resources, compare, record the result.

The result goes into the backup's manifest (``verification.method = "restore"``, its duration
and what was compared; every tier holding it) and into the proof history (``HOME/dr/
proofs.jsonl``), which the schedule, the alerts and the status read. A failed test is a
result, not an exception; a Conflict (the kind is busy with a backup or restore) is raised so
the schedule can try again shortly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime

from autograph.clock import Clock, utc_now
from autograph.config import Settings
from autograph.dr.catalog import Catalog, open_catalog
from autograph.dr.models import BackupEntry, Kind, Verification
from autograph.dr.ops import locks
from autograph.dr.postgres.server import PgServer
from autograph.dr.proof import scratch
from autograph.dr.proof.models import ProofKind, ProofRecord, append
from autograph.errors import AutographError, Conflict, InsufficientSpace, NotFound
from autograph.secrets import Credentials

log = logging.getLogger("autograph.dr.proof")


class NothingToTest(NotFound):
    """A kind has no backup yet: nothing to restore-test (the backup alerts cover that)."""


class Prover:
    """Runs restore tests with the settings' servers and tiers."""

    def __init__(self, settings: Settings, creds: Credentials, *, clock: Clock = utc_now,
                 catalogs: dict[Kind, Catalog] | None = None) -> None:
        self.settings = settings
        self.creds = creds
        self.clock = clock
        self.catalogs = catalogs or {}
        self.server = PgServer.from_settings(settings, creds)

    def catalog(self, kind: Kind) -> Catalog:
        """The catalog of ``kind`` (opened once)."""
        if kind not in self.catalogs:
            self.catalogs[kind] = open_catalog(self.settings, self.creds, kind)
        return self.catalogs[kind]

    def clean_leftovers(self) -> list[str]:
        """Remove what a killed restore test left (call under the proof lock)."""
        removed = scratch.clean_leftovers(self.settings, self.server)
        if removed:
            log.warning("removed scratch resources of an interrupted restore test: %s",
                        ", ".join(removed))
        return removed

    def prove(self, kind: ProofKind, *, defer_if_none: bool = False) -> ProofRecord:
        """Restore-test the newest backup(s) of ``kind``; record and return the result.

        Raises Conflict when the kind is busy, and NothingToTest when ``defer_if_none`` and the
        kind has no backup yet (nothing recorded then: a fresh stack's first scheduled test
        waits for its first backup instead of failing)."""
        started, began = self.clock(), time.monotonic()
        stamp = f"{started:%Y%m%d%H%M%S}"
        backups: list[str] = []
        try:
            compared = self._dispatch(kind, stamp, backups)
            status, detail = "passed", None
        except Conflict:
            raise
        except NothingToTest:
            if defer_if_none:
                raise
            compared, status, detail = "", "failed", f"no {kind} backup to restore-test"
        except InsufficientSpace as exc:
            compared, status, detail = "", "refused", exc.message
        except AutographError as exc:
            compared, status, detail = "", "failed", exc.message
        except Exception as exc:  # a bug must be a failed proof, not a silent one
            log.exception("restore test of %s crashed", kind)
            compared, status, detail = "", "failed", f"internal error ({type(exc).__name__})"
        record = ProofRecord(kind=kind, status=status,  # type: ignore[arg-type]
                             started_at=started, finished_at=self.clock(),
                             duration_seconds=round(time.monotonic() - began, 3),
                             backups=backups, compared=compared, detail=detail,
                             evidence=", ".join(backups) or None)
        self._record(kind, record)
        log.info("restore test of %s: %s%s", kind, status, f" ({detail})" if detail else "")
        return record

    def _dispatch(self, kind: ProofKind, stamp: str, backups: list[str]) -> str:
        if kind == "snapshot":
            return self._snapshots(backups)
        if kind not in ("database", "basebackup", "bucket"):
            raise NotFound(f"no restore test for {kind}")
        catalog = self.catalog(kind)
        entries = self._newest(catalog, kind)
        with locks.acquire(self.settings.backups_dir, kind, "restore test", entries[0].name):
            parts = []
            for entry in entries:  # the first failure ends the test: it names that backup last
                backups.append(entry.name)
                with locks.mark_busy(self.settings.backups_dir, kind, entry.name, "verify"):
                    parts.append(self._one(kind, catalog, entry, stamp))
            return "; ".join(parts)

    def _newest(self, catalog: Catalog, kind: Kind) -> list[BackupEntry]:
        """The newest backup (per application bucket for archives)."""
        listing = catalog.list().backups
        if kind == "bucket":
            found = [next((e for e in listing if e.source == b), None)
                     for b in self.settings.app_buckets]
            entries = [e for e in found if e is not None]
        else:
            entries = listing[:1]
        if not entries:
            raise NothingToTest(f"no {kind} backup to restore-test")
        return entries

    def _one(self, kind: Kind, catalog: Catalog, entry: BackupEntry, stamp: str) -> str:
        """Guard the disk, run the kind's test on one backup, write its manifest."""
        began = time.monotonic()
        test = self._test(kind, catalog, entry, stamp)
        try:
            compared = test()
        except InsufficientSpace:
            raise
        except AutographError as exc:
            self._verdict(catalog, entry, "failed", began, "", exc.message)
            raise
        self._verdict(catalog, entry, "passed", began, compared, None)
        return compared

    def _test(self, kind: Kind, catalog: Catalog, entry: BackupEntry,
              stamp: str) -> Callable[[], str]:
        from autograph.dr.proof import cluster, database, objects

        settings = self.settings
        if kind == "database":
            scratch.ensure_room(settings, settings.data_dir, database.database_size(
                self.server), f"restore test of {entry.name}")
            return lambda: database.prove_dump(self.server, catalog, entry, stamp)
        if kind == "basebackup":
            scratch.ensure_room(settings, settings.data_dir, cluster.needed_bytes(
                settings, entry), f"scratch cluster for {entry.name}")

            def base() -> str:
                fetched = catalog.fetch(entry.name)
                return cluster.prove_base(settings, self.server, fetched.path, entry, stamp)

            return base
        need = 0 if "local" in entry.locations else entry.size_bytes
        scratch.ensure_room(settings, settings.backups_dir, need, f"restore test of {entry.name}")
        return lambda: objects.prove_archive(settings, self.creds, catalog, entry)

    def _verdict(self, catalog: Catalog, entry: BackupEntry, status: str, began: float,
                 compared: str, detail: str | None) -> None:
        result = Verification(status=status, at=self.clock(),  # type: ignore[arg-type]
                              method="restore", detail=detail, compared=compared or None,
                              duration_seconds=round(time.monotonic() - began, 3),
                              checks={"restore": "ok" if status == "passed" else
                                      f"failed: {detail}"})
        try:
            catalog.update(entry.name, verification=result)
        except AutographError as exc:  # the history still records it
            log.warning("could not record the restore test in %s: %s", entry.name, exc.message)

    def _snapshots(self, backups: list[str]) -> str:
        from autograph.dr.buckets.snapshots.store import SnapshotStore, parse_name
        from autograph.dr.proof import objects

        per_tier, _down = SnapshotStore(self.settings, self.creds).names()
        newest: dict[str, tuple[datetime, str]] = {}
        for name in {n for names in per_tier.values() for n in names}:
            bucket, taken = parse_name(name)
            if bucket in self.settings.app_buckets and (bucket not in newest
                                                        or newest[bucket] < (taken, name)):
                newest[bucket] = (taken, name)
        if not newest:
            raise NothingToTest("no bucket snapshot to restore-test")
        parts = []
        for bucket in sorted(newest):
            name = newest[bucket][1]
            backups.append(name)
            parts.append(objects.prove_snapshot(self.settings, self.creds, name))
        return "; ".join(parts)

    def _record(self, kind: ProofKind, record: ProofRecord) -> None:
        append(self.settings.dr_dir, record)
