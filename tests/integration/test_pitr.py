"""Base backups + streamed WAL: recovery to the latest point and to a time, and a failed
recovery that leaves the cluster as it was."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import secrets
import shutil
import signal
import tarfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner

from autograph.cli.main import app
from autograph.dr.postgres.data_folder import (
    extract_base_backup,
    live_data_dir,
    pg_user,
    write_recovery_conf,
)
from autograph.dr.postgres.physical import PhysicalBackupManager
from autograph.dr.postgres.private import private_server
from autograph.errors import OperationFailed
from autograph.stack.infra import streaming_lag_bytes
from autograph.stack.lifecycle import Stack
from stackutil import make_home, remove_home, settings_env, stack_settings


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    home = make_home("autograph-pitr-")
    stack = Stack(stack_settings(home))
    stack.up()
    try:
        yield stack
    finally:
        stack.down()
        remove_home(home)


def _connect(stack: Stack) -> psycopg.Connection:
    s = stack.settings
    return psycopg.connect(host=s.host, port=s.pg_port, user=s.pg_user,
                           password=stack.creds.pg_password, dbname=s.pg_database,
                           autocommit=True)


def _insert(stack: Stack, first: int, last: int) -> None:
    with _connect(stack) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS events (id int primary key, at timestamptz)")
        for i in range(first, last + 1):
            conn.execute("INSERT INTO events VALUES (%s, now())", (i,))


def _ids(stack: Stack) -> list[int]:
    with _connect(stack) as conn:
        return [row[0] for row in conn.execute("SELECT id FROM events ORDER BY id")]


def _wait_streamed(stack: Stack) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if streaming_lag_bytes(stack.settings, stack.creds) == 0:
            return
        time.sleep(0.2)
    raise AssertionError("WAL receiver did not catch up")


def _recover(stack: Stack, **options: object) -> object:
    manager = PhysicalBackupManager(stack.settings, stack.creds)
    result = manager.recover(lambda: stack.stop("postgres"), lambda: stack.start("postgres"),
                             **options)  # type: ignore[arg-type]
    stack.restart("walstream")
    return result


def test_recovery_to_latest_keeps_writes_made_after_the_base_backup(stack: Stack) -> None:
    _insert(stack, 1, 10)
    entry = PhysicalBackupManager(stack.settings, stack.creds).create()
    assert entry.locations == ["local", "s3"] and entry.size_bytes > 0
    _insert(stack, 11, 25)  # after the base backup: only the streamed WAL has these
    _wait_streamed(stack)
    result = _recover(stack)
    assert _ids(stack) == list(range(1, 26))
    assert result.wal_segments >= 1  # type: ignore[attr-defined]
    _insert(stack, 26, 26)  # the recovered cluster is writable (promoted)


def test_recovery_to_a_time_stops_there(stack: Stack) -> None:
    PhysicalBackupManager(stack.settings, stack.creds).create()
    _insert(stack, 100, 104)
    time.sleep(1.1)
    cut = datetime.now(UTC)
    time.sleep(1.1)
    _insert(stack, 200, 204)
    _wait_streamed(stack)
    _recover(stack, target_time=cut)
    ids = _ids(stack)
    assert set(range(100, 105)) <= set(ids)
    assert not set(range(200, 205)) & set(ids)


def test_recovery_to_a_time_past_the_end_of_the_wal_replays_to_its_end_and_says_why(
        stack: Stack) -> None:
    """PostgreSQL shuts down when the WAL ends before the recovery target; the cluster is then
    replayed to the end of the WAL, and the note says why the first replay stopped."""
    PhysicalBackupManager(stack.settings, stack.creds).create()
    _insert(stack, 700, 704)
    _wait_streamed(stack)
    beyond = datetime.now(UTC) + timedelta(hours=1)  # no commit of the WAL reaches it
    result = _recover(stack, target_time=beyond)
    assert set(range(700, 705)) <= set(_ids(stack))
    gap = getattr(result, "wal_gap", None) or ""
    assert "the WAL ends before" in gap, gap
    assert "recovery ended before configured recovery target was reached" in gap, gap


def test_the_wait_for_a_promotion_ends_when_the_restored_server_stops(stack: Stack) -> None:
    """Issue 12: a restored cluster that had started (read-only, replaying) and then shut down
    (as PostgreSQL does when the WAL ends before the recovery target, once consistent) was
    polled until the wait's limit (600 s in a recovery: ``dr recover`` held in
    restore_database, no child process, the base-backup lock held). The wait now sees the
    server gone and says so."""
    manager = PhysicalBackupManager(stack.settings, stack.creds)
    entry = manager.create()
    user = pg_user(stack.settings)
    folder = live_data_dir(stack.settings).with_name("postgres.standby-test")
    extract_base_backup(manager.catalog.local.path(entry.artifact), folder, user)
    write_recovery_conf(folder, None, user)
    (folder / "recovery.signal").rename(folder / "standby.signal")  # stays in recovery
    try:
        with private_server(stack.settings, folder, user) as server:
            pid = int((folder / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGKILL)  # the server exits while the wait polls it
            with pytest.raises(OperationFailed) as caught:
                server.wait_promoted(timeout=60)
        assert "stopped during recovery" in caught.value.message, caught.value.message
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_failed_recovery_puts_the_previous_cluster_back(stack: Stack, tmp_path: Path) -> None:
    _insert(stack, 300, 302)
    manager = PhysicalBackupManager(stack.settings, stack.creds)
    entry = manager.create()
    before = _ids(stack)
    # A base backup that passes its checksum but cannot start: its WAL removed, and no
    # streamed WAL for it (another cluster's identifier).
    artifact = manager.catalog.local.path(entry.artifact)
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    with tarfile.open(artifact) as tar:
        tar.extractall(unpacked, filter="tar")
    for segment in (unpacked / "pg_wal").iterdir():
        if segment.is_file():
            segment.unlink()
    with tarfile.open(artifact, "w") as tar:
        for child in sorted(unpacked.iterdir()):
            tar.add(child, arcname=child.name)
    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
    broken = entry.manifest().model_copy(update={
        "extra": {"system_identifier": "0"}, "sha256": digest,
        "size_bytes": artifact.stat().st_size})
    manager.catalog.write_manifest(broken, ["local"])
    with pytest.raises(OperationFailed) as caught:
        _recover(stack, name=entry.name)
    assert "put back" in str(caught.value)
    assert _ids(stack) == before
    _insert(stack, 303, 303)  # and it is the live, writable cluster again


def test_cli_reports_the_wal_stream_and_prunes_wal_no_base_backup_needs(stack: Stack) -> None:
    env = settings_env(stack.settings)
    runner = CliRunner()
    with _connect(stack) as conn:  # move to a fresh segment so older ones become prunable
        conn.execute("SELECT pg_switch_wal()")
        conn.execute("INSERT INTO events VALUES (900, now()) ON CONFLICT DO NOTHING")
        conn.execute("SELECT pg_switch_wal()")
    _wait_streamed(stack)
    status = CliRunner().invoke(app, ["backup", "base", "wal", "--json"], env=env)
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["streaming"] is True
    manager = PhysicalBackupManager(stack.settings, stack.creds)
    for entry in manager.catalog.list().backups:
        manager.catalog.delete(entry.name)
    created = runner.invoke(app, ["backup", "base", "create", "--json"], env=env)
    assert created.exit_code == 0, created.output
    start = json.loads(created.stdout)["extra"]["start_wal_file"]
    pruned = runner.invoke(app, ["backup", "base", "prune-wal", "--json"], env=env)
    assert pruned.exit_code == 0, pruned.output
    removed = json.loads(pruned.stdout)["removed"]
    assert removed and all(name.split("/")[1][8:24] < start[8:] for name in removed)
    bad = runner.invoke(app, ["backup", "base", "recover", "--to", "yesterday", "--yes"], env=env)
    assert bad.exit_code != 0 and "ISO 8601" in bad.output


def test_scheduled_base_backup_then_prune_keeps_the_newest(stack: Stack) -> None:
    from autograph.dr.schedules import build_schedules, open_catalogs

    catalogs = open_catalogs(stack.settings, stack.creds)
    schedule = next(s for s in build_schedules(stack.settings, stack.creds, catalogs)
                    if s.kind == "basebackup")
    assert schedule.sources == ("cluster",)
    for _ in range(3):
        entry = schedule.backup("cluster")
        assert "scheduled" in entry.tags  # type: ignore[attr-defined]
        time.sleep(1.1)  # distinct names (second resolution)
    newest = [e.name for e in catalogs["basebackup"].list().backups][:2]
    assert schedule.prune is not None
    removed = schedule.prune()
    assert [e.name for e in catalogs["basebackup"].list().backups] == newest
    assert len([r for r in removed if "/" not in r]) >= 1  # type: ignore[union-attr]


def test_wal_streaming_resumes_after_a_recovery_with_no_writes_since_the_base_backup(
        stack: Stack) -> None:
    _insert(stack, 400, 401)
    _wait_streamed(stack)
    PhysicalBackupManager(stack.settings, stack.creds).create()
    _recover(stack)  # nothing written after the base backup
    _insert(stack, 402, 402)
    _wait_streamed(stack)  # the receiver streams the new timeline
    assert 402 in _ids(stack)


def test_recovery_gives_the_restored_role_the_current_password(stack: Stack) -> None:
    """A new machine has new secrets: the cluster restored from a base backup (which carries
    the old role password) is given the current one before anything logs in (#11)."""
    _insert(stack, 500, 502)
    PhysicalBackupManager(stack.settings, stack.creds).create()
    _insert(stack, 503, 503)
    _wait_streamed(stack)
    secret_file = stack.settings.secrets_dir / "pg-password"
    old = stack.creds.pg_password
    new = dataclasses.replace(stack.creds, pg_password=secrets.token_urlsafe(16))
    secret_file.write_text(new.pg_password + "\n")
    rebuilt = Stack(stack.settings, new)
    try:
        _recover(rebuilt)
        assert [i for i in _ids(rebuilt) if 500 <= i < 600] == [500, 501, 502, 503]
        with pytest.raises(psycopg.OperationalError, match="password"):
            _connect(stack).close()  # the old password no longer works
    finally:
        secret_file.write_text(old + "\n")
        with _connect(rebuilt) as conn:
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(stack.settings.pg_user), sql.Literal(old)))
        stack.restart("walstream")


def test_a_cluster_recovered_to_before_a_migration_is_migrated_before_it_listens(
        stack: Stack) -> None:
    with _connect(stack) as conn:  # the state a base backup taken before the hub migrated has
        conn.execute("DROP TABLE webhook_deliveries, webhooks, integration_cursors")
        conn.execute("DELETE FROM schema_migrations WHERE version = 1001")
    PhysicalBackupManager(stack.settings, stack.creds).create()
    _wait_streamed(stack)
    result = _recover(stack)
    # Done on the private socket, in the replay step (before `start_server` opens TCP).
    replay = next(s for s in result.steps  # type: ignore[attr-defined]
                  if s.name == "replay WAL and promote")
    assert "(applied 1001)" in replay.detail
    with _connect(stack) as conn:
        assert conn.execute("SELECT to_regclass('webhook_deliveries') IS NOT NULL"
                            ).fetchone() == (True,)
        assert conn.execute("SELECT count(*) FROM schema_migrations WHERE version = 1001"
                            ).fetchone() == (1,)
