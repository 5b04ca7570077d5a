"""Database backups under the faults the test audit found untested, on the session's real
stack: PostgreSQL SIGKILLed while a dump runs, S3 cut at each request of the upload, and
pg_restore failing after the data has loaded."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from alertservers import free_port
from autograph.dr.postgres import DatabaseBackupManager
from autograph.errors import AutographError, DependencyDown, NotFound, OperationFailed
from autograph.stack.lifecycle import Stack
from bucketbackups import S3Proxy
from dbbackups import isolated_settings, recorded_events, table_rows


@pytest.fixture
def manager(infra_stack: Stack, tmp_path: Path) -> Iterator[DatabaseBackupManager]:
    with isolated_settings(infra_stack, tmp_path) as settings:
        yield DatabaseBackupManager(settings, infra_stack.creds)


def _pg_dump_waiting_on_a_lock(manager: DatabaseBackupManager, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with manager.server.connect() as conn:
            waiting = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_dump' "
                "AND wait_event_type = 'Lock'").fetchone()[0]
        if waiting:
            return
        time.sleep(0.05)
    raise AssertionError("pg_dump never waited on the held lock")


def test_postgres_sigkilled_during_a_dump_fails_the_backup_cleanly_and_start_heals(
        infra_stack: Stack, manager: DatabaseBackupManager) -> None:
    earlier = manager.create("earlier")
    live = manager.server.live_database
    # A transaction holding an exclusive lock keeps pg_dump waiting inside the server.
    holder = manager.server.connect(live, autocommit=False)
    holder.execute("LOCK TABLE items IN ACCESS EXCLUSIVE MODE")
    outcome: list[BaseException | object] = []

    def backup() -> None:
        try:
            outcome.append(manager.create("doomed"))
        except BaseException as exc:  # handed to the test thread
            outcome.append(exc)

    with recorded_events() as events:
        worker = threading.Thread(target=backup)
        worker.start()
        try:
            _pg_dump_waiting_on_a_lock(manager)
            postmaster = {row.name: row for row in infra_stack.ps()}["postgres"].pid
            assert postmaster is not None
            os.kill(postmaster, signal.SIGKILL)
            worker.join(60)
        finally:
            holder.close()
            if not {row.name: row for row in infra_stack.ps()}["postgres"].healthy:
                infra_stack.start("postgres")
    assert not worker.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], AutographError), outcome
    assert "pg_dump" in str(outcome[0]) or "PostgreSQL" in str(outcome[0]), outcome
    assert [(e.event, e.name) for e in events] == [("backup_failed", "doomed")]
    assert [b.name for b in manager.list().backups] == ["earlier"]
    assert sorted(p.name for p in manager.catalog.local.root.iterdir()) == \
        ["earlier.dump", "earlier.manifest.json"]
    assert manager.catalog.incomplete() == {"local": [], "s3": []}
    # After `start postgres` (crash recovery) the data and the next backup are whole.
    assert table_rows(manager, live, "items") == 1000
    assert manager.create("after").verification.status == "passed"
    assert manager.verify(earlier.name).verification.status == "passed"


def _through(proxy: S3Proxy, manager: DatabaseBackupManager,
             stack: Stack) -> DatabaseBackupManager:
    """The same backups, with the S3 copy sent through ``proxy``."""
    settings = manager.settings.model_copy(update={"backup_s3_endpoint": proxy.url})
    return DatabaseBackupManager(settings, stack.creds)


def test_s3_cut_at_each_request_of_the_upload_keeps_a_local_backup_recording_the_missing_copy(
        infra_stack: Stack, manager: DatabaseBackupManager) -> None:
    counting = S3Proxy(infra_stack.settings.s3_url)
    try:
        assert _through(counting, manager, infra_stack).create("counted").s3_copy == "uploaded"
        requests = counting.requests
    finally:
        counting.close()
    assert requests >= 2
    for budget in range(requests):
        name = f"cut_after_{budget}"
        proxy = S3Proxy(infra_stack.settings.s3_url)
        proxy.cut_after(budget)
        try:
            entry = _through(proxy, manager, infra_stack).create(name)
        finally:
            proxy.close()
        assert entry.locations == ["local"], (budget, entry)
        assert entry.s3_copy == "missing" and entry.s3_error, (budget, entry)
        # Through the healthy endpoint: listed once, local only, never a half S3 copy.
        seen = manager.get(name)
        assert seen.locations == ["local"], (budget, seen.locations)
        assert manager.verify(name).verification.status == "passed"
    report = manager.sync()
    assert sorted(report.uploaded) == sorted(f"cut_after_{b}" for b in range(requests))
    for budget in range(requests):
        assert manager.get(f"cut_after_{budget}").locations == ["local", "s3"]
    assert manager.catalog.incomplete() == {"local": [], "s3": []}


def test_pg_restore_failing_after_the_data_loaded_leaves_the_live_database_as_it_was(
        manager: DatabaseBackupManager) -> None:
    """A grant to a role that no longer exists: pg_restore applies grants last, after every
    row and index, so it fails with the scratch database fully loaded."""
    live = manager.server.live_database
    role = f"{live}_reader"
    with manager.server.connect() as conn:
        conn.execute(f'CREATE ROLE "{role}"')
    with manager.server.connect(live) as conn:
        conn.execute(f'GRANT SELECT ON items TO "{role}"')
    manager.create("grants_a_gone_role")
    with manager.server.connect(live) as conn:
        conn.execute(f'REVOKE ALL ON items FROM "{role}"')
        conn.execute("INSERT INTO items (label) VALUES ('written after the backup')")
    with manager.server.connect() as conn:
        conn.execute(f'DROP ROLE "{role}"')
    with recorded_events() as events, pytest.raises(OperationFailed) as failed:
        manager.restore("grants_a_gone_role")
    assert "pg_restore" in str(failed.value) and role in str(failed.value)
    assert table_rows(manager, live, "items") == 1001
    with manager.server.connect(live) as conn:
        last = conn.execute("SELECT label FROM items ORDER BY id DESC LIMIT 1").fetchone()
    assert last == ("written after the backup",)
    assert manager.server.databases(live) == [live]
    assert [e.event for e in events] == ["restore_failed"]


def test_restoring_an_unknown_backup_while_postgres_is_down_says_the_name_is_unknown(
        infra_stack: Stack, manager: DatabaseBackupManager) -> None:
    manager.create("known")
    closed_port = free_port()
    down = DatabaseBackupManager(manager.settings.model_copy(update={"pg_port": closed_port}),
                                 infra_stack.creds)
    with pytest.raises(NotFound, match="no database backup named unknown"):
        down.restore("unknown")
    # The known name gets as far as PostgreSQL, which is then named as the problem.
    with pytest.raises(DependencyDown, match="PostgreSQL"):
        down.restore("known")
