"""The drill up to the failure: the dataset loaded, a writer committing, backups taken in rounds
(the data fingerprinted at each), the write window, the fingerprint before the failure, and
the failure injected while the writer writes on."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from autograph.clock import Clock, utc_now
from autograph.dr.drill import faults, offsite
from autograph.dr.drill.evidence import Evidence
from autograph.dr.drill.models import Moment
from autograph.dr.drill.options import DrillOptions
from autograph.dr.drill.recorder import StepRecorder
from autograph.dr.drill.screenshots import ShotRequest, default_chromium, take_screenshots
from autograph.dr.drill.workload import (
    Account,
    Dataset,
    Writer,
    load_dataset,
    new_account,
)
from autograph.dr.models import ProgressFn, Scenario, no_progress
from autograph.dr.recovery import integrity
from autograph.dr.recovery.client import ApiClient
from autograph.stack.lifecycle import Stack

WRITE_THROUGH_SECONDS = 2.0
WRITER_TABLES = frozenset({"diagrams", "diagram_versions", "uploads", "object_outbox",
                           "object_deletions"})
WRITER_BUCKETS = frozenset({"diagrams", "uploads"})




@dataclass
class DrillRun:
    """One drill's state as it goes: the stack, the evidence, the dataset and the writer."""

    stack: Stack
    scenario: Scenario
    options: DrillOptions
    folder: Path
    ev: Evidence
    rec: StepRecorder
    api: ApiClient
    s3: Any
    clock: Clock = utc_now
    progress: ProgressFn = no_progress
    dataset: Dataset = field(default_factory=Dataset)
    account: Account = field(default_factory=lambda: new_account("writer"))
    writer: Writer | None = None
    kit: offsite.DrillKit | None = None
    recovered: Stack | None = None  # the stack the recovery brought back (machine: the kit's)

    def up_to_the_failure(self, started_seconds: int) -> None:
        """Every step before recovery; raises OperationFailed when one fails."""
        self.dataset = self.rec.run("load_dataset", lambda: load_dataset(
            self.api, self.s3, self.options.dataset, seed=started_seconds,
            progress=self.progress))
        self.ev.workload["dataset"] = self.dataset.summary()
        self.rec.run("start_writer", self.start_writer)
        for number in range(1, self.options.backup_rounds + 1):
            self.rec.run(f"backup_round_{number}", partial(self.backup_round, number),
                         timeout=3600)
        self.rec.run("screenshots_before_failure",
                     lambda: self.screenshots("before_failure", self.stack), timeout=90)
        if self.options.corrupt_latest:
            self.rec.run("corrupt_latest_backups", lambda: _corrupt_latest(self.stack, self.ev))
        self.rec.run("write_window", self.write_window)
        self.rec.run("snapshot_before_failure", self.stop_and_snapshot)
        if self.scenario == "machine":
            self.kit = self.rec.run("export_kit", lambda: offsite.export_kit(self.stack))
        time.sleep(WRITE_THROUGH_SECONDS)  # steady row + object writes up to the failure
        self.ev.failure_at = self.clock()
        self.ev.fault = self.rec.run("inject_failure", self.inject)
        assert self.writer is not None
        self.writer.stop()  # its writes during the failure were refused; recovery runs without
        self.ev.workload["writer"] = self.writer.stats()

    def start_writer(self) -> str:
        """Register the writer's account and start it committing."""
        self.api.register(self.account.email, self.account.password)
        self.account.token = self.api.login(self.account.email, self.account.password)
        self.writer = Writer(self.api, self.s3, self.account, self.folder / "writes.jsonl",
                             clock=self.clock)
        self.writer.start()
        time.sleep(self.options.lead_seconds)
        return f"writing as {self.account.email}"

    def backup_round(self, n: int) -> str:
        """Pause the writer, fingerprint, take every kind of backup, resume."""
        assert self.writer is not None
        ev, stack = self.ev, self.stack
        self.writer.pause()
        try:
            shot, settled = settled_fingerprint(stack, self.s3)
            taken = take_backups(stack, str(n), self.clock)
            after = integrity.fingerprint(stack.settings, stack.creds, self.s3)
        finally:
            self.writer.resume()
        _note_volatile(ev, shot, after, settled)
        for entry in (taken["database"], taken["base"], *taken["buckets"].values()):
            if entry is not None:
                ev.at_backup[entry.name] = shot
        for name in taken["snapshots"].values():
            ev.at_backup[name] = shot
        ev.backups_taken.append({
            "database": taken["database"].name,
            "base": taken["base"].name if taken["base"] else None,
            "buckets": {b: e.name for b, e in taken["buckets"].items()},
            "snapshots": taken["snapshots"], "at": str(self.clock())})
        time.sleep(0.5 if n < self.options.backup_rounds else 0)
        return f"database {taken['database'].name} and {len(taken['buckets'])} buckets"

    def write_window(self) -> str:
        """Let the writer run past the last backup."""
        time.sleep(self.options.window_seconds)
        return f"writer ran {self.options.window_seconds:g} s past the last backup"

    def stop_and_snapshot(self) -> str:
        """The fingerprint the recovery is compared with (the writer paused while taken)."""
        assert self.writer is not None
        ev, stack = self.ev, self.stack
        self.writer.pause()
        try:
            ev.before, settled = settled_fingerprint(stack, self.s3)
            ev.dangling_before = integrity.dangling_references(stack.settings, stack.creds,
                                                               ev.before.objects,
                                                               keep_keys=True)
        finally:
            self.writer.resume()  # it writes on, right through the failure (issue 12)
        if not settled:
            ev.issues.append("the data kept changing after the writer paused (another "
                             "writer is active): comparisons may show its changes")
        # what the writer changes after this fingerprint is judged by the RPO from its
        # acknowledged writes and by the reference scan, not by this comparison
        ev.volatile["tables"] = sorted(set(ev.volatile.get("tables", [])) | WRITER_TABLES)
        ev.volatile["buckets"] = sorted(set(ev.volatile.get("buckets", [])) | WRITER_BUCKETS)
        return "fingerprint taken; the writer writes on through the failure"

    def inject(self) -> dict[str, Any]:
        """The scenario's failure."""
        if self.scenario == "complete":
            return faults.complete_failure(self.stack)
        if self.scenario == "database":
            return faults.database_failure(self.stack, self.options.database_fault)
        if self.scenario == "machine":
            return faults.machine_failure(self.stack)
        return faults.objects_failure(self.stack)

    def screenshots(self, moment: Moment, stack: Stack) -> str:
        """The DR console and one user's diagram, saved in the report folder (never raises:
        what was not taken becomes a note)."""
        if not any(c.name == "frontend" for c in stack.components):
            note = f"no screenshots {moment.replace('_', ' ')}: the stack runs no frontend"
            self.ev.notes.append(note)
            return note
        account = self.dataset.accounts[0] if self.dataset.accounts else None
        diagram = next((i for i, d in self.dataset.diagrams.items()
                        if account and d["owner"] == account.email), None)
        result = take_screenshots(ShotRequest(
            frontend_url=stack.settings.service_url("frontend"), folder=self.folder,
            moment=moment, admin_key=stack.creds.admin_api_key,
            email=account.email if account else None,
            password=account.password if account else None, diagram_id=diagram,
            chromium=default_chromium()))
        self.ev.screenshots += result.screenshots
        self.ev.notes += result.notes
        return result.summary()

    def close(self) -> None:
        """Stop the writer and the API client; remove the exported kit."""
        if self.writer is not None:
            self.writer.stop()
        self.api.close()
        if self.kit is not None:
            self.kit.remove()


def take_backups(stack: Stack, label: str, clock: Clock = utc_now) -> dict[str, Any]:
    """A database dump, a base backup (when WAL is streamed), one archive and one snapshot per
    application bucket, named for the drill (snapshots are named by their time)."""
    from autograph.dr.buckets.manager import MinIOBucketBackupManager
    from autograph.dr.buckets.snapshots.manager import SnapshotManager
    from autograph.dr.postgres import DatabaseBackupManager

    stamp = f"{clock():%Y%m%d_%H%M%S}"
    database = DatabaseBackupManager(stack.settings, stack.creds).create(
        f"drill_backup_{stamp}_{label}", tags=("drill",))
    base = None
    if any(c.name == "walstream" for c in stack.components):  # continuous protection on
        from autograph.dr.postgres.physical import PhysicalBackupManager

        base = PhysicalBackupManager(stack.settings, stack.creds).create(
            f"drill_base_{stamp}_{label}", tags=("manual", "drill"))
    buckets = {}
    manager = MinIOBucketBackupManager(stack.settings, stack.creds)
    for bucket in stack.settings.app_buckets:
        entry = manager.create(bucket, name=f"drill_{bucket}_{stamp}_{label}", tags=("drill",))
        buckets[bucket] = entry
    snapshots = SnapshotManager(stack.settings, stack.creds, clock=clock)
    taken = {b: snapshots.take(b).snapshot.name for b in stack.settings.app_buckets}
    return {"database": database, "base": base, "buckets": buckets, "snapshots": taken}


def settled_fingerprint(stack: Stack, s3: Any, tries: int = 8, pause: float = 1.2
                        ) -> tuple[integrity.Fingerprint, bool]:
    """A fingerprint once two in a row, ``pause`` apart, agree: background followers (the
    webhook watcher's cursor polls every second) have caught up. False if it never settled."""
    shot = integrity.fingerprint(stack.settings, stack.creds, s3)
    for _ in range(tries):
        time.sleep(pause)
        again = integrity.fingerprint(stack.settings, stack.creds, s3)
        if again.tables == shot.tables and again.objects == shot.objects:
            return again, True
        shot = again
    return shot, False


def _note_volatile(ev: Evidence, before: integrity.Fingerprint,
                   after: integrity.Fingerprint, settled: bool) -> None:
    """Tables and buckets that changed while a backup ran: their state at the backup is not
    known exactly, so they cannot be compared with what a restore brings back."""
    tables = {t for t in set(before.tables) | set(after.tables)
              if before.tables.get(t) != after.tables.get(t)}
    buckets = {b for b in set(before.objects) | set(after.objects)
               if before.objects.get(b) != after.objects.get(b)}
    ev.volatile["tables"] = sorted(set(ev.volatile.get("tables", [])) | tables)
    ev.volatile["buckets"] = sorted(set(ev.volatile.get("buckets", [])) | buckets)
    if tables or buckets or not settled:
        ev.issues.append(f"data changed while a backup was taken (tables {sorted(tables)}, "
                         f"buckets {sorted(buckets)}): not compared exactly")


def _corrupt_latest(stack: Stack, ev: Evidence) -> str:
    from autograph.dr.catalog import open_catalog

    latest = ev.backups_taken[-1]
    damaged: list[str] = []
    database = open_catalog(stack.settings, stack.creds, "database").get(latest["database"])
    damaged += faults.corrupt_backup(stack, database)
    if latest["base"]:
        base = open_catalog(stack.settings, stack.creds, "basebackup").get(latest["base"])
        damaged += faults.corrupt_backup(stack, base)
    buckets = open_catalog(stack.settings, stack.creds, "bucket")
    for name in latest["buckets"].values():
        damaged += faults.corrupt_backup(stack, buckets.get(name))
    for name in latest["snapshots"].values():
        damaged += faults.corrupt_snapshot(stack, name)
    ev.corrupted = damaged
    return f"flipped a byte in {len(damaged)} copies"
