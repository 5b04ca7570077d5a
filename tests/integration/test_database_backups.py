"""DatabaseBackupManager on the real stack: create, verify, restore, and the issue's faults."""

from __future__ import annotations

import hashlib
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from psycopg_pool import ConnectionPool

from autograph.dr.catalog import open_catalog
from autograph.dr.models import manifest_key
from autograph.dr.postgres import DatabaseBackupManager
from autograph.dr.postgres.manager import READ_BACK
from autograph.errors import Conflict, IntegrityError, NotFound, OperationFailed
from autograph.s3.boto import backup_client
from autograph.stack.lifecycle import Stack
from dbbackups import isolated_settings, kill_child_when, recorded_events, table_rows
from stackutil import free_port_block


@pytest.fixture
def manager(infra_stack: Stack, tmp_path: Path) -> Iterator[DatabaseBackupManager]:
    with isolated_settings(infra_stack, tmp_path) as settings:
        yield DatabaseBackupManager(settings, infra_stack.creds)


def _flip_byte(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]


def test_create_commits_a_verified_backup_in_both_tiers(manager: DatabaseBackupManager) -> None:
    with recorded_events() as events:
        entry = manager.create()
    assert entry.name.startswith("manual_backup_")
    assert entry.locations == ["local", "s3"]
    assert entry.row_counts == {"extra.Mixed Case": 3, "public.docs": 300, "public.items": 1000}
    assert entry.verification.status == "passed"
    assert entry.server_version and entry.server_version.startswith("15")
    local = manager.catalog.local.path(entry.artifact)
    assert hashlib.sha256(local.read_bytes()).hexdigest() == entry.sha256
    assert local.stat().st_size == entry.size_bytes
    listed = manager.list().backups
    assert [b.name for b in listed] == [entry.name]
    assert listed[0].locations == ["local", "s3"]
    assert [e.event for e in events] == ["backup_succeeded"]


def test_the_checksum_check_reads_the_file_back_once(manager: DatabaseBackupManager) -> None:
    uploaded = manager.create("read_back_by_s3")
    assert uploaded.verification.checks["sha256"] == READ_BACK  # its S3 copy hashed the file
    local_only = manager.create("read_back_by_verify", upload=False)
    assert local_only.verification.checks["sha256"] == "ok"  # nothing else read it: verify did


def test_a_name_taken_only_in_s3_is_refused_and_that_backup_is_left_alone(
        manager: DatabaseBackupManager) -> None:
    entry = manager.create("only_in_s3")
    manager.catalog.local.delete(manifest_key(entry.name))
    manager.catalog.local.delete(entry.artifact)
    with pytest.raises(Conflict, match="already exists"):
        manager.create("only_in_s3")  # S3 is checked beside the dump: refused when it ends
    kept = manager.catalog.get("only_in_s3")
    assert kept.locations == ["s3"] and kept.sha256 == entry.sha256
    assert manager.verify("only_in_s3").verification.status == "passed"
    assert not manager.catalog.local.path(entry.artifact).exists()
    assert manager.restore("only_in_s3").source_location == "s3"  # no local manifest: S3's


def test_pg_dump_killed_midway_leaves_nothing_and_calls_the_hook(
        manager: DatabaseBackupManager) -> None:
    earlier = manager.create("earlier")
    with manager.server.connect(manager.server.live_database) as conn:
        conn.execute("CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((g + 1)::text) || "
                     "md5(random()::text) || md5(random()::text) AS t "
                     "FROM generate_series(1, 300000) g")
    folder = manager.catalog.local.root
    failures: list[BaseException] = []

    def run() -> None:
        try:
            manager.create("doomed")
        except BaseException as exc:
            failures.append(exc)

    def partial_written() -> bool:
        return any(p.stat().st_size > 1_000_000 for p in folder.glob(".doomed.dump.partial-*"))

    with recorded_events() as events:
        worker = threading.Thread(target=run)
        worker.start()
        kill_child_when("pg_dump", partial_written)
        worker.join(60)
    assert len(failures) == 1 and isinstance(failures[0], OperationFailed)
    assert "pg_dump" in str(failures[0])
    assert [b.name for b in manager.list().backups] == ["earlier"]
    assert sorted(p.name for p in folder.iterdir()) == ["earlier.dump", "earlier.manifest.json"]
    assert manager.catalog.incomplete() == {"local": [], "s3": []}
    assert [(e.event, e.name) for e in events] == [("backup_failed", "doomed")]
    assert manager.verify(earlier.name).verification.status == "passed"


def test_s3_down_during_backup_keeps_the_local_copy_and_sync_uploads_it_later(
        infra_stack: Stack, manager: DatabaseBackupManager) -> None:
    dead = manager.settings.model_copy(
        update={"backup_s3_endpoint": f"http://127.0.0.1:{free_port_block()}"})
    offline = DatabaseBackupManager(dead, infra_stack.creds)
    entry = offline.create("while_s3_down")
    assert entry.locations == ["local"]
    assert entry.s3_copy == "missing" and entry.s3_error
    listing = offline.list()
    assert "s3" in listing.unreachable
    assert [b.name for b in listing.backups] == ["while_s3_down"]

    assert manager.get("while_s3_down").locations == ["local"]
    report = manager.sync()
    assert report.uploaded == ["while_s3_down"]
    synced = manager.get("while_s3_down")
    assert synced.locations == ["local", "s3"]
    assert synced.s3_copy == "uploaded" and synced.s3_error is None


def test_one_flipped_byte_fails_verify_and_restore_refuses_before_touching_the_live_db(
        manager: DatabaseBackupManager) -> None:
    entry = manager.create("flipped")
    live = manager.server.live_database
    with manager.server.connect(live) as conn:
        conn.execute("INSERT INTO items (label) VALUES ('written after the backup')")
    local = manager.catalog.local.path(entry.artifact)
    local.write_bytes(_flip_byte(local.read_bytes()))

    with recorded_events() as events, pytest.raises(IntegrityError, match="sha256"):
        manager.verify("flipped")
    assert manager.get("flipped").verification.status == "failed"
    assert "verification_failed" in [e.event for e in events]

    s3 = manager.catalog.remote
    assert s3 is not None
    client, bucket = s3.client, s3.bucket  # type: ignore[attr-defined]
    key = "database/" + entry.artifact
    good = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    client.put_object(Bucket=bucket, Key=key, Body=_flip_byte(good))
    with pytest.raises(IntegrityError, match="no intact copy"):
        manager.restore("flipped")
    assert table_rows(manager, live, "items") == 1001
    assert manager.server.databases(live) == [live]


def test_restore_uses_the_s3_copy_when_the_local_one_is_damaged(
        manager: DatabaseBackupManager) -> None:
    entry = manager.create("repairable")
    local = manager.catalog.local.path(entry.artifact)
    local.write_bytes(_flip_byte(local.read_bytes()))
    result = manager.restore("repairable")
    assert result.source_location == "s3"
    assert hashlib.sha256(local.read_bytes()).hexdigest() == entry.sha256


def test_pg_restore_failing_halfway_leaves_the_live_database_and_drops_the_scratch(
        manager: DatabaseBackupManager) -> None:
    live = manager.server.live_database
    role = f"{live}_owner"
    with manager.server.connect() as conn:
        conn.execute(f'CREATE ROLE "{role}"')
    with manager.server.connect(live) as conn:
        conn.execute(f'CREATE TABLE zz_owned (v int); ALTER TABLE zz_owned OWNER TO "{role}"')
    manager.create("needs_role")
    with manager.server.connect(live) as conn:
        conn.execute(f'REASSIGN OWNED BY "{role}" TO CURRENT_USER; DROP OWNED BY "{role}"')
        conn.execute("INSERT INTO items (label) VALUES ('after')")
    with manager.server.connect() as conn:
        conn.execute(f'DROP ROLE "{role}"')
    with recorded_events() as events, pytest.raises(OperationFailed, match="pg_restore"):
        manager.restore("needs_role")
    assert table_rows(manager, live, "items") == 1001
    assert manager.server.databases(live) == [live]
    assert [e.event for e in events] == ["restore_failed"]


def test_restore_swaps_in_the_backup_keeps_the_previous_database_and_can_roll_back(
        manager: DatabaseBackupManager) -> None:
    live = manager.server.live_database
    manager.create("before_changes")
    with manager.server.connect(live) as conn:
        conn.execute("DELETE FROM items WHERE id <= 500")
    pool = ConnectionPool(conninfo="", kwargs={
        "host": manager.server.host, "port": manager.server.port, "user": manager.server.user,
        "password": manager.server.password, "dbname": live},
        min_size=1, max_size=2, check=ConnectionPool.check_connection, open=True)
    try:
        with pool.connection() as conn:
            assert conn.execute("SELECT count(*) FROM items").fetchone()[0] == 500
        result = manager.restore("before_changes")
        assert result.previous and result.previous.startswith(f"{live}__pre_restore_")
        assert [s.name for s in result.steps] == ["pg_restore", "row counts", "migrate", "swap"]
        with pool.connection() as conn:  # the pool's old session was terminated: it reconnects
            assert conn.execute("SELECT count(*) FROM items").fetchone()[0] == 1000
    finally:
        pool.close()
    assert table_rows(manager, result.previous, "items") == 500
    assert manager.previous_databases() == [result.previous]

    rolled = manager.rollback()
    assert rolled["restored_from"] == result.previous
    assert table_rows(manager, live, "items") == 500


def test_two_restores_in_the_same_second_keep_both_previous_databases(
        manager: DatabaseBackupManager) -> None:
    live = manager.server.live_database
    manager.create("twice")
    manager.clock = lambda: datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    first = manager.restore("twice")
    second = manager.restore("twice")
    assert first.previous == f"{live}__pre_restore_20260102030405"
    assert second.previous == f"{live}__pre_restore_20260102030405_02"
    assert manager.previous_databases() == [second.previous, first.previous]
    assert table_rows(manager, live, "items") == 1000


def test_only_the_newest_pre_restore_databases_are_kept(manager: DatabaseBackupManager) -> None:
    manager.create("thrice")
    results = [manager.restore("thrice") for _ in range(3)]
    kept = manager.previous_databases()
    assert kept == [results[2].previous, results[1].previous]  # pre_restore_keep = 2
    assert results[2].extra["dropped_previous"] == [results[0].previous]


def test_rolling_back_to_a_kept_database_a_killed_swap_left_refusing_connections(
        manager: DatabaseBackupManager) -> None:
    live = manager.server.live_database
    manager.create("reopen")
    kept = manager.restore("reopen").previous
    assert kept is not None
    with manager.server.connect() as conn:  # as a swap killed before its last statement
        conn.execute(f'ALTER DATABASE "{kept}" ALLOW_CONNECTIONS false')
    rolled = manager.rollback()
    assert rolled["restored_from"] == kept
    assert table_rows(manager, live, "items") == 1000  # it accepts connections again
    manager.restore("reopen")  # and a restore re-opens any database left refusing
    with manager.server.connect() as conn:
        refusing = conn.execute("SELECT datname FROM pg_database WHERE NOT datallowconn AND "
                                "starts_with(datname, %s)", (live,)).fetchall()
    assert refusing == []


def test_restore_recreates_a_missing_live_database(manager: DatabaseBackupManager) -> None:
    live = manager.server.live_database
    manager.create("full_loss")
    manager.server.drop_database(live)
    result = manager.restore("full_loss")
    assert result.previous is None
    assert table_rows(manager, live, "items") == 1000
    assert manager.server.databases(live) == [live]


def test_deep_verify_restores_to_a_scratch_database_and_records_the_result(
        manager: DatabaseBackupManager) -> None:
    manager.create("deep")
    entry = manager.verify("deep", deep=True)
    assert entry.verification.status == "passed"
    assert entry.verification.checks["restore to scratch"].endswith("row counts match")
    assert entry.verification.checks["s3 copy sha256"] == "ok"
    assert manager.server.databases(manager.server.live_database) == [
        manager.server.live_database]


def test_a_dump_is_readable_by_plain_pg_restore(manager: DatabaseBackupManager) -> None:
    entry = manager.create("portable")
    path = manager.catalog.local.path(entry.artifact)
    target = manager.server.live_database + "_plain"
    env = {"PGPASSWORD": manager.server.password}
    subprocess.run([manager.server.program("createdb"), "-h", manager.server.host, "-p",
                    str(manager.server.port), "-U", manager.server.user, target],
                   env=env, check=True)
    subprocess.run([manager.server.program("pg_restore"), "-h", manager.server.host, "-p",
                    str(manager.server.port), "-U", manager.server.user, "-d", target,
                    "--exit-on-error", str(path)], env=env, check=True)
    assert table_rows(manager, target, "items") == 1000
    assert table_rows(manager, target, 'extra."Mixed Case"') == 3


def test_a_second_operation_of_the_kind_gets_conflict(manager: DatabaseBackupManager) -> None:
    manager.create("first")
    with manager.acquire("restore", "first"):
        with pytest.raises(Conflict, match="restore of first is already running"):
            manager.create()
        with pytest.raises(Conflict):
            manager.restore("first")
    assert manager.create("after").name == "after"


def test_delete_removes_both_copies(manager: DatabaseBackupManager) -> None:
    manager.create("gone")
    assert manager.delete("gone") == ["local", "s3"]
    with pytest.raises(NotFound):
        manager.get("gone")
    assert manager.catalog.local.list() == []
    assert manager.catalog.remote is not None and manager.catalog.remote.list() == []


def test_an_artifact_without_manifest_is_not_listed_and_is_cleaned_up(
        infra_stack: Stack, manager: DatabaseBackupManager) -> None:
    manager.create("complete")
    (manager.catalog.local.root / "orphan.dump").write_bytes(b"partial dump")
    client = backup_client(manager.settings, infra_stack.creds)
    client.put_object(Bucket=manager.settings.backup_bucket_database, Key="database/orphan.dump",
                      Body=b"partial dump")
    assert [b.name for b in manager.list().backups] == ["complete"]
    with pytest.raises(NotFound):
        manager.get("orphan")
    catalog = open_catalog(manager.settings, infra_stack.creds, "database")
    assert catalog.incomplete() == {"local": ["orphan.dump"], "s3": ["orphan.dump"]}
    assert sorted(catalog.clean_incomplete()) == ["local:orphan.dump", "s3:orphan.dump"]
    assert [o.key for o in catalog.local.list()] == ["complete.dump", "complete.manifest.json"]


def test_an_unusually_small_backup_fires_the_small_hook(manager: DatabaseBackupManager) -> None:
    live = manager.server.live_database
    with manager.server.connect(live) as conn:
        conn.execute("INSERT INTO docs SELECT g, jsonb_build_object('t', md5(g::text)) "
                     "FROM generate_series(1000, 20000) g")
    manager.create("normal")
    with manager.server.connect(live) as conn:
        conn.execute("TRUNCATE docs, items")
    with recorded_events() as events:
        small = manager.create("tiny")
    assert [(e.event, e.name) for e in events] == [("backup_succeeded", "tiny"),
                                                   ("backup_small", "tiny")]
    assert events[1].data["size_bytes"] == small.size_bytes
