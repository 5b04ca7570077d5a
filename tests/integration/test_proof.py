"""Proven restorable: restore tests of every kind on real servers, their schedule over a
simulated week with two schedulers, the alerts, the disk guard and scratch clean-up."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autograph.cli.main import app
from autograph.dr.alerts.dispatcher import AlertDispatcher
from autograph.dr.alerts.file import FileChannel
from autograph.dr.buckets.manager import MinIOBucketBackupManager
from autograph.dr.buckets.snapshots.manager import SnapshotManager
from autograph.dr.catalog import open_catalog
from autograph.dr.daemon import collect_status
from autograph.dr.monitor.metrics import render
from autograph.dr.monitor.monitor import Monitor
from autograph.dr.postgres import DatabaseBackupManager
from autograph.dr.postgres.physical import PhysicalBackupManager
from autograph.dr.proof import scratch
from autograph.dr.proof.models import load
from autograph.dr.proof.run import Prover
from autograph.dr.proof.schedule import ProofScheduler
from autograph.stack.lifecycle import Stack
from proofutil import T0, Clock, proof_settings, stand_in_drill
from stackutil import settings_env

DAY = timedelta(days=1)
SRC = Path(__file__).resolve().parents[2] / "src"


def make_backups(env_settings, creds, clock: Clock, bucket: str) -> None:  # type: ignore[no-untyped-def]
    DatabaseBackupManager(env_settings, creds, clock=clock).create(scheduled=True)
    PhysicalBackupManager(env_settings, creds, clock=clock).create(tags=("scheduled",))
    MinIOBucketBackupManager(env_settings, creds, clock=clock).create(bucket, scheduled=True)
    SnapshotManager(env_settings, creds, clock=clock).take(bucket)


def test_a_simulated_week_proves_each_kind_daily_and_drills_once_with_two_schedulers(
        infra_stack: Stack, tmp_path: Path) -> None:
    clock = Clock()
    with proof_settings(infra_stack, tmp_path) as env:
        settings, creds = env.settings, infra_stack.creds
        make_backups(settings, creds, clock, env.bucket)
        drills: list[datetime] = []
        schedulers = [ProofScheduler(settings, Prover(settings, creds, clock=clock),
                                     clock=clock, drill=stand_in_drill(settings, clock, drills),
                                     startup_delay=0)
                      for _ in range(2)]
        while clock.now < T0 + 7 * DAY:
            threads = [threading.Thread(target=s.tick) for s in schedulers]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            clock.now += timedelta(hours=3)
        records = [r for r in load(settings.dr_dir) if r.kind != "drill"]
        failed = [(r.kind, r.detail) for r in records if r.status != "passed"]
        assert failed == []
        per_day = Counter((r.kind, (r.started_at - T0) // DAY) for r in records)
        assert set(per_day.values()) == {1}  # nothing run twice
        assert Counter(kind for kind, _day in per_day) == {
            "database": 7, "basebackup": 7, "bucket": 7, "snapshot": 7}
        assert drills == [T0]
        # The weekly drills take the scheduled scenarios in turn: the machine loss is next.
        drill_plan = next(p for p in schedulers[0].plan() if p.kind == "drill")
        assert drill_plan.scenario == "machine" and drill_plan.next_run_at == T0 + 7 * DAY

        dump = open_catalog(settings, creds, "database").list().backups[0]
        assert dump.verification.method == "restore"
        assert dump.verification.status == "passed"
        assert dump.verification.duration_seconds is not None
        assert "row counts equal the manifest" in (dump.verification.compared or "")
        base = [r for r in records if r.kind == "basebackup"][-1]
        assert "row counts equal the live database" in base.compared
        archive = [r for r in records if r.kind == "bucket"][-1]
        assert "20 objects read from the local copy, sha256 each" in archive.compared
        snapshot = [r for r in records if r.kind == "snapshot"][-1]
        assert "20 objects read" in snapshot.compared and "vs live" in snapshot.compared

        status = collect_status(settings, creds, clock=clock)
        proven = {p.kind: p for p in status.proven}
        assert proven["basebackup"].method == "restore"
        assert proven["basebackup"].last_proven_at == base.finished_at
        assert status.last_drill is not None and status.last_drill.rto_seconds == 30.0
        text = render(lambda: status).decode()
        assert 'autograph_proven_restorable_timestamp_seconds{kind="database",method="restore"}' \
            in text
        assert "autograph_drill_last_rto_seconds 30.0" in text


def test_a_fresh_stack_waits_for_its_first_backups_instead_of_failing_its_restore_tests(
        infra_stack: Stack, tmp_path: Path) -> None:
    clock = Clock()
    with proof_settings(infra_stack, tmp_path) as env:
        settings, creds = env.settings, infra_stack.creds
        scheduler = ProofScheduler(settings, Prover(settings, creds, clock=clock), clock=clock,
                                   drill=stand_in_drill(settings, clock, []), startup_delay=0)
        scheduler.tick()  # nothing backed up yet: the scheduled tests wait, record nothing
        assert [r for r in load(settings.dr_dir) if r.kind != "drill"] == []
        assert {p.kind: p.next_run_at for p in scheduler.plan() if p.kind != "drill"} == {
            kind: T0 for kind in ("database", "basebackup", "bucket", "snapshot")}
        # Asked for by hand, the same test is a failure that says why.
        manual = Prover(settings, creds, clock=clock).prove("database")
        assert (manual.status, manual.detail) == ("failed", "no database backup to restore-test")

        make_backups(settings, creds, clock, env.bucket)
        clock.now += timedelta(seconds=settings.proof_retry_seconds + 60)  # past that failure
        records = {r.kind: r.status for r in scheduler.tick() if r.kind != "drill"}
        assert records == {"database": "passed", "basebackup": "passed", "bucket": "passed",
                           "snapshot": "passed"}


def notices(dispatcher: AlertDispatcher, log: Path) -> list[str]:
    assert dispatcher.flush(timeout=30)
    if not log.exists():
        return []
    return [f"{a['key']} {a['status']}" for a in map(json.loads, log.read_text().splitlines())]


def flip_byte(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]


def test_a_dump_corrupted_in_both_tiers_fails_alerts_once_and_resolves_after_a_good_backup(
        infra_stack: Stack, tmp_path: Path) -> None:
    clock = Clock()
    log = tmp_path / "alerts.log"
    with proof_settings(infra_stack, tmp_path, app_buckets=()) as env:
        settings, creds = env.settings, infra_stack.creds
        bad = DatabaseBackupManager(settings, creds, clock=clock).create(scheduled=True)
        catalog = open_catalog(settings, creds, "database")
        local = catalog.local.path(bad.artifact)
        local.write_bytes(flip_byte(local.read_bytes(), 1000))
        key = f"database/{bad.artifact}"
        body = env.client.get_object(Bucket=settings.backup_bucket_database, Key=key)
        env.client.put_object(Bucket=settings.backup_bucket_database, Key=key,
                              Body=flip_byte(body["Body"].read(), 2000))
        prover = Prover(settings, creds, clock=clock)
        dispatcher = AlertDispatcher([FileChannel(log)], clock, backoff_seconds=0.0)
        monitor = Monitor(settings, dispatcher, {}, clock=clock)
        try:
            record = prover.prove("database")
            assert record.status == "failed" and record.evidence == bad.name
            assert "no intact copy" in (record.detail or "")
            manifest = catalog.get(bad.name).verification
            assert (manifest.status, manifest.method) == ("failed", "restore")
            monitor.check_proofs()
            clock.now += timedelta(minutes=5)
            monitor.check_proofs()
            assert notices(dispatcher, log) == ["deep_verification_failed:database firing"]
            assert dispatcher.active()[0].details["evidence"] == bad.name

            clock.now += timedelta(hours=1)
            good = DatabaseBackupManager(settings, creds, clock=clock).create(scheduled=True)
            assert prover.prove("database").status == "passed"
            monitor.check_proofs()
            monitor.check_proofs()
            assert notices(dispatcher, log) == ["deep_verification_failed:database firing",
                                                "deep_verification_failed:database resolved"]
            assert catalog.get(good.name).verification.method == "restore"
        finally:
            dispatcher.close()


def test_the_disk_guard_refuses_a_scratch_restore_and_says_so(
        infra_stack: Stack, tmp_path: Path) -> None:
    clock = Clock()
    log = tmp_path / "alerts.log"
    with proof_settings(infra_stack, tmp_path, app_buckets=()) as env:
        settings, creds = env.settings, infra_stack.creds
        DatabaseBackupManager(settings, creds, clock=clock).create(scheduled=True)
        free = shutil.disk_usage(settings.home_dir).free
        tight = settings.model_copy(update={"backup_storage_min_free_bytes": free + 10**9})
        prover = Prover(tight, creds, clock=clock)
        record = prover.prove("database")
        assert record.status == "refused"
        assert "must stay free" in (record.detail or "")
        assert prover.server.databases(scratch.database_name(settings.pg_database, "")) == []
        dispatcher = AlertDispatcher([FileChannel(log)], clock, backoff_seconds=0.0)
        try:
            Monitor(tight, dispatcher, {}, clock=clock).check_proofs()
            assert notices(dispatcher, log) == ["restore_test_refused:database firing"]
        finally:
            dispatcher.close()
        result = CliRunner().invoke(app, ["dr", "prove", "database", "--json"],
                                    env=settings_env(tight))
        assert result.exit_code == 1
        assert json.loads(result.stdout)[0]["status"] == "refused"
        assert "must stay free" in result.stderr


CHILD = """
from autograph.config import load_settings
from autograph.dr.proof.run import Prover
from autograph.secrets import load_credentials
settings = load_settings()
Prover(settings, load_credentials(settings)).prove({kind!r})
"""


@pytest.mark.parametrize("kind", ["database", "basebackup"])
def test_scratch_resources_of_a_sigkilled_restore_test_are_removed_at_next_start(
        infra_stack: Stack, tmp_path: Path, kind: str) -> None:
    clock = Clock()
    with proof_settings(infra_stack, tmp_path, app_buckets=()) as env:
        settings, creds = env.settings, infra_stack.creds
        if kind == "database":
            DatabaseBackupManager(settings, creds, clock=clock).create(scheduled=True)
        else:
            PhysicalBackupManager(settings, creds, clock=clock).create(tags=("scheduled",))
        prover = Prover(settings, creds, clock=clock)
        prefix = scratch.database_name(settings.pg_database, "")

        def left() -> list[str]:
            if kind == "database":
                return prover.server.databases(prefix)
            return [str(p) for p in settings.data_dir.glob(f"{scratch.CLUSTER_PREFIX}*")
                    if (p / "postmaster.pid").exists()]

        child = subprocess.Popen(
            [sys.executable, "-c", CHILD.format(kind=kind)],
            env={**os.environ, **settings_env(settings), "PYTHONPATH": str(SRC)})
        try:
            deadline = time.monotonic() + 120
            while not left():
                assert child.poll() is None, "the restore test ended before it was killed"
                assert time.monotonic() < deadline
                time.sleep(0.02)
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.wait()
        leftovers = left()
        assert leftovers
        if kind == "basebackup":
            pid = int((Path(leftovers[0]) / "postmaster.pid").read_text().split()[0])
            assert Path(f"/proc/{pid}").exists()  # the scratch server outlived its owner
        ProofScheduler(settings, Prover(settings, creds, clock=clock), clock=clock,
                       startup_delay=3600).tick()  # a start: nothing due, leftovers cleaned
        assert left() == []
        assert list(settings.data_dir.glob(f"{scratch.CLUSTER_PREFIX}*")) == []
        if kind == "basebackup":
            assert not Path(f"/proc/{pid}").exists()
