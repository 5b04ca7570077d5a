"""Failure injection for drills, one per scenario, plus the bit rot used to test fallbacks.

- complete: SIGKILL every process of the stack (each program's process group, then
  supervisord) and delete the data folders (PostgreSQL, Redis, S3 — the buckets with them);
- database: corrupt the live database (rows deleted and garbled) or drop it;
- objects: delete every object of the application buckets;
- machine: SIGKILL every process and delete the whole home (local backups, WAL, secrets too).

Except for ``machine``, backups under the backup folder are left alone: they stand for copies
kept off the failed infrastructure. These functions destroy data by design; only drills call them.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any, Literal

from autograph.dr.catalog import LOCAL_FOLDERS
from autograph.dr.models import BackupEntry
from autograph.dr.recovery.integrity import connect
from autograph.errors import NotFound, OperationFailed
from autograph.s3.boto import app_client
from autograph.stack.infra import postgres_data_dir
from autograph.stack.lifecycle import Stack
from autograph.stack.supervisor import Supervisor

DatabaseFault = Literal["corrupt", "drop"]


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def kill_everything(stack: Stack, timeout: float = 15.0) -> list[str]:
    """SIGKILL every running program of the stack (its whole process group), then supervisord.
    Returns what was killed. Raises OperationFailed if a process survives ``timeout``."""
    killed: list[str] = []
    pids: list[int] = []
    supervisor = Supervisor(stack.settings)
    for name, info in supervisor.all_info().items():
        if info.pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(info.pid, signal.SIGKILL)
            pids.append(info.pid)
            killed.append(name)
    pidfile = stack.settings.run_dir / "supervisord.pid"
    if pidfile.exists():
        with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
            pid = int(pidfile.read_text().strip())
            os.kill(pid, signal.SIGKILL)
            pids.append(pid)
            killed.append("supervisord")
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            raise OperationFailed("processes survived SIGKILL: "
                                  + ", ".join(str(p) for p in pids if _alive(p)))
        time.sleep(0.05)
    return killed


def delete_data_folders(stack: Stack) -> list[str]:
    """Remove the data folders of PostgreSQL, Redis and S3 (the buckets' contents)."""
    removed = []
    for name in ("postgres", "redis", "s3"):
        folder = postgres_data_dir(stack.settings) if name == "postgres" \
            else stack.settings.data_dir / name
        if folder.exists():
            shutil.rmtree(folder)
            removed.append(str(folder))
    return removed


def complete_failure(stack: Stack) -> dict[str, Any]:
    """Scenario 1: every process killed, every data folder gone."""
    start = time.monotonic()
    killed = kill_everything(stack)
    dead = time.monotonic()
    removed = delete_data_folders(stack)
    return {"killed": killed, "removed": removed,
            "kill_seconds": round(dead - start, 3),
            "delete_seconds": round(time.monotonic() - dead, 3)}


def machine_failure(stack: Stack) -> dict[str, Any]:
    """The whole machine lost: every process killed, the entire home deleted (data, local
    backups, streamed WAL, secrets, logs). Only the off-site store (and the kit) survive."""
    start = time.monotonic()
    killed = kill_everything(stack)
    dead = time.monotonic()
    home = stack.settings.home_dir
    removed = [str(home)]
    outside = not stack.settings.backups_dir.is_relative_to(home)
    if outside and stack.settings.backups_dir.exists():  # a backup folder elsewhere goes too
        shutil.rmtree(stack.settings.backups_dir)
        removed.append(str(stack.settings.backups_dir))
    shutil.rmtree(home)
    return {"killed": killed, "removed": removed, "kill_seconds": round(dead - start, 3),
            "delete_seconds": round(time.monotonic() - dead, 3)}


def database_failure(stack: Stack, mode: DatabaseFault = "corrupt") -> dict[str, Any]:
    """Scenario 2: ``corrupt`` deletes every diagram version and garbles every password hash
    (the database answers, its data is wrong); ``drop`` drops the database."""
    settings = stack.settings
    if mode == "drop":
        with connect(settings, stack.creds, dbname="postgres") as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{settings.pg_database}" WITH (FORCE)')
        return {"dropped": settings.pg_database}
    with connect(settings, stack.creds) as conn:
        versions = conn.execute("DELETE FROM diagram_versions").rowcount
        users = conn.execute("UPDATE users SET password_hash = 'corrupted'").rowcount
    return {"corrupted": {"diagram_versions_deleted": versions, "users_garbled": users}}


def objects_failure(stack: Stack) -> dict[str, Any]:
    """Scenario 3: every object of every application bucket deleted."""
    s3 = app_client(stack.settings, stack.creds)
    deleted: dict[str, int] = {}
    for bucket in stack.settings.app_buckets:
        count = 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            for start in range(0, len(keys), 1000):
                s3.delete_objects(Bucket=bucket,
                                  Delete={"Objects": keys[start:start + 1000], "Quiet": True})
            count += len(keys)
        deleted[bucket] = count
    return {"deleted": deleted}


def flip_byte(path: Path, offset: int | None = None) -> None:
    """Invert one byte of a file in place (the middle one by default)."""
    size = path.stat().st_size
    where = size // 2 if offset is None else offset
    with open(path, "r+b") as handle:
        handle.seek(where)
        byte = handle.read(1)
        handle.seek(where)
        handle.write(bytes([byte[0] ^ 0xFF]))


def corrupt_backup(stack: Stack, entry: BackupEntry) -> list[str]:
    """Bit rot in every copy of one backup: a byte flipped in the local artifact, the S3 copy
    and the off-site ciphertext (so no intact copy remains). Returns the copies damaged."""
    from autograph.s3.boto import backup_client

    damaged = []
    local = stack.settings.backups_dir / LOCAL_FOLDERS[entry.kind] / entry.artifact
    if local.exists():
        flip_byte(local)
        damaged.append(str(local))
    if "s3" in entry.locations:
        bucket, prefix = {
            "database": (stack.settings.backup_bucket_database, "database/"),
            "basebackup": (stack.settings.backup_bucket_database, "base/"),
        }.get(entry.kind, (stack.settings.backup_bucket_objects, ""))
        client = backup_client(stack.settings, stack.creds)
        key = prefix + entry.artifact
        body = bytearray(client.get_object(Bucket=bucket, Key=key)["Body"].read())
        body[len(body) // 2] ^= 0xFF
        client.put_object(Bucket=bucket, Key=key, Body=bytes(body))
        damaged.append(f"s3://{bucket}/{key}")
    if "offsite" in entry.locations:  # the stored ciphertext: authentication must catch it
        from autograph.dr.storage.offsite import area_prefix, offsite_client

        settings = stack.settings
        client = offsite_client(settings)
        key = area_prefix(settings, LOCAL_FOLDERS[entry.kind]) + entry.artifact
        bucket = settings.offsite_s3_bucket
        body = bytearray(client.get_object(Bucket=bucket, Key=key)["Body"].read())
        body[len(body) // 2] ^= 0xFF
        client.put_object(Bucket=bucket, Key=key, Body=bytes(body))
        damaged.append(f"offsite:{key}")
    return damaged


def corrupt_snapshot(stack: Stack, name: str) -> list[str]:
    """Bit rot in every copy of one snapshot's index (its blobs may be shared with other
    snapshots, so they are left alone). Returns the copies damaged."""
    from autograph.dr.buckets.snapshots.store import INDEX_SUFFIX, SnapshotStore

    store = SnapshotStore(stack.settings, stack.creds)
    damaged = []
    for tier in store.tiers():
        try:
            with tier.index.open(name + INDEX_SUFFIX) as handle:
                body = bytearray(handle.read())
        except NotFound:
            continue
        body[len(body) // 2] ^= 0xFF
        tier.index.put(name + INDEX_SUFFIX, io.BytesIO(bytes(body)))
        damaged.append(f"{tier.name}:{tier.index.describe()}{name}{INDEX_SUFFIX}")
    return damaged
