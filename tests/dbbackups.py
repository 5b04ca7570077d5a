"""Test support for database backups: an isolated database, backup folder and bucket per test,
on the session's real stack."""

from __future__ import annotations

import os
import secrets
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from autograph.config import Settings
from autograph.dr.ops import hooks
from autograph.dr.ops.hooks import BackupEvent
from autograph.dr.postgres import DatabaseBackupManager
from autograph.s3.boto import backup_client
from autograph.stack.lifecycle import Stack

SEED_SQL = """
CREATE TABLE items (id serial PRIMARY KEY, label text NOT NULL);
INSERT INTO items (label) SELECT 'item ' || g FROM generate_series(1, 1000) g;
CREATE TABLE docs (id bigint PRIMARY KEY, body jsonb NOT NULL);
INSERT INTO docs SELECT g, jsonb_build_object('n', g, 'text', repeat('x', 50))
FROM generate_series(1, 300) g;
CREATE SCHEMA extra;
CREATE TABLE extra."Mixed Case" (v int);
INSERT INTO extra."Mixed Case" VALUES (1), (2), (3);
"""


@contextmanager
def isolated_settings(stack: Stack, tmp_path: Path) -> Iterator[Settings]:
    """Settings naming a fresh database (seeded), backup folder and backup bucket.

    Everything is removed afterwards: databases starting with the test database's name and the
    bucket with its objects.
    """
    token = secrets.token_hex(4)
    dbname, bucket = f"t_{token}", f"t-backups-{token}"
    settings = stack.settings.model_copy(update={
        "pg_database": dbname, "backup_dir": tmp_path / "backups",
        "backup_bucket_database": bucket,
    })
    client = backup_client(settings, stack.creds)
    client.create_bucket(Bucket=bucket)
    manager = DatabaseBackupManager(settings, stack.creds)
    manager.server.create_database(dbname)
    with manager.server.connect(dbname) as conn:
        conn.execute(SEED_SQL)
    try:
        yield settings
    finally:
        for name in manager.server.databases(dbname):
            manager.server.drop_database(name)
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=item["Key"])
        client.delete_bucket(Bucket=bucket)


@contextmanager
def recorded_events() -> Iterator[list[BackupEvent]]:
    """Collect the events published on the hook bus during the block."""
    events: list[BackupEvent] = []
    unsubscribe = hooks.on_event(events.append)
    try:
        yield events
    finally:
        unsubscribe()


def child_pids(name: str) -> list[int]:
    """PIDs of this process's children whose command name is ``name``."""
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1: stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        if ppid == me and comm == name:
            found.append(int(entry))
    return found


def kill_child_when(name: str, ready: Callable[[], bool], timeout: float = 30.0) -> int:
    """Wait for a child process ``name`` and ``ready()``, then SIGKILL it; return its pid."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = child_pids(name)
        if pids and ready():
            os.kill(pids[0], signal.SIGKILL)
            return pids[0]
        time.sleep(0.005)
    raise AssertionError(f"no {name} child process became ready within {timeout} s")


def table_rows(manager: DatabaseBackupManager, dbname: str, table: str) -> int:
    """Rows in ``table`` of ``dbname``."""
    with manager.server.connect(dbname) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
