"""The object outbox (issue 12) on real PostgreSQL and S3: diagrams written through the
service's own write path, the replicator shipping them to both tiers, killed mid-drain, with
its backup store down, and a point-in-time recovery of both the database and the objects."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from autograph.dr.alerts.dispatcher import AlertDispatcher
from autograph.dr.alerts.file import FileChannel
from autograph.dr.buckets.outbox import VISIBILITY_MARGIN, Replicator
from autograph.dr.buckets.snapshots.store import SnapshotStore
from autograph.dr.buckets.watermark import read_state, read_watermark
from autograph.dr.monitor.monitor import Monitor
from autograph.dr.monitor.status import consistent_point
from autograph.dr.postgres.physical import PhysicalBackupManager
from autograph.dr.recovery.consistent import choose_point, orphans, replay_outbox
from autograph.dr.recovery.integrity import dangling_references, object_fingerprints
from autograph.s3.boto import app_client
from autograph.services.auth.accounts import prepare_auth_database
from autograph.services.common.resources import Resources
from autograph.services.diagrams import store as diagram_store
from autograph.stack.infra import streaming_lag_bytes
from autograph.stack.lifecycle import Stack
from bucketbackups import S3Proxy
from stackutil import make_home, remove_home, settings_env, stack_settings


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    home = make_home("autograph-outbox-")
    stack = Stack(stack_settings(home))
    stack.up()
    try:
        s3 = app_client(stack.settings, stack.creds)
        for bucket in stack.settings.app_buckets:
            try:
                s3.create_bucket(Bucket=bucket)
            except Exception as exc:  # already there
                if "BucketAlready" not in str(exc):
                    raise
        yield stack
    finally:
        stack.down()
        remove_home(home)


def _write_pairs(stack: Stack, count: int, label: str) -> list[dict[str, Any]]:
    """Diagrams made by the diagram service's own write path (object, then its row and
    outbox record in one transaction); each is a row + object pair."""

    async def run() -> list[dict[str, Any]]:
        resources = Resources(stack.settings, stack.creds, prepare_database=prepare_auth_database)
        try:
            pool = await resources.db()
            async with pool.connection() as conn:
                owner = (await (await conn.execute("SELECT min(id) FROM users")).fetchone())[0]
            made = []
            for index in range(count):
                detail = await diagram_store.create_diagram(
                    resources, owner, f"{label} {index}", {"label": label, "n": index,
                                                           "salt": uuid.uuid4().hex})
                made.append({"id": detail.id, "sha256": detail.sha256})
            return made
        finally:
            await resources.close()

    return asyncio.run(run())


def _db(stack: Stack) -> psycopg.Connection[Any]:
    s = stack.settings
    return psycopg.connect(host=s.host, port=s.pg_port, user=s.pg_user,
                           password=stack.creds.pg_password, dbname=s.pg_database,
                           autocommit=True)


def _outbox(stack: Stack) -> dict[str, list[str]]:
    with _db(stack) as conn:
        rows = conn.execute("SELECT object_key, shipped FROM object_outbox").fetchall()
    return {key: list(shipped) for key, shipped in rows}


def _key_of(stack: Stack, diagram_id: uuid.UUID) -> str:
    with _db(stack) as conn:
        row = conn.execute("SELECT object_key FROM diagram_versions WHERE diagram_id = %s",
                           (diagram_id,)).fetchone()
    assert row is not None
    return str(row[0])


def test_a_write_is_in_the_outbox_with_its_row_and_a_pass_ships_it_to_both_tiers(
        stack: Stack) -> None:
    [made] = _write_pairs(stack, 1, "first")
    key = _key_of(stack, made["id"])
    assert _outbox(stack)[key] == []  # recorded in the row's transaction, not shipped yet
    result = Replicator(stack.settings, stack.creds).run_pass()
    assert result.rows >= 1 and not result.failed and result.pending == 0
    assert _outbox(stack)[key] == ["local", "s3"]
    store = SnapshotStore(stack.settings, stack.creds)
    for tier in store.tiers():
        names = {o.key for o in tier.blobs.list()}
        assert {made["sha256"], made["sha256"] + ".z"} & names, tier.name
        point = read_watermark(tier)
        assert point is not None and (datetime.now(UTC) - point).total_seconds() < 10
    shown = consistent_point(stack.settings.dr_dir, datetime.now(UTC))  # as dr status shows
    assert shown is not None and shown.age_seconds < 10 and shown.pending_objects == 0


_CHILD = """
import sys, time
from autograph.config import load_settings
from autograph.secrets import load_credentials
from autograph.dr.buckets.outbox import Replicator
settings = load_settings()
def shipped(tier, blob):
    sys.stdout.write(f"{tier} {blob}\n")  # one write: threads do not interleave lines
    sys.stdout.flush()
    time.sleep(0.15)
Replicator(settings, load_credentials(settings), on_ship=shipped).run_pass()
"""


def test_a_replicator_killed_mid_drain_resumes_with_nothing_shipped_twice(
        stack: Stack) -> None:
    Replicator(stack.settings, stack.creds).run_pass()  # start from an empty outbox
    made = _write_pairs(stack, 16, "kill")
    env = {**os.environ, **settings_env(stack.settings)}
    child = subprocess.Popen([sys.executable, "-c", _CHILD], stdout=subprocess.PIPE,
                             env=env, text=True)
    assert child.stdout is not None
    first = [child.stdout.readline().split() for _ in range(9)]
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    first += [line.split() for line in child.stdout.read().splitlines() if line]
    assert any(_outbox(stack)[_key_of(stack, m["id"])] != ["local", "s3"] for m in made)
    second: list[list[str]] = []
    result = Replicator(stack.settings, stack.creds,
                        on_ship=lambda tier, blob: second.append([tier, blob])).run_pass()
    assert result.pending == 0 and not result.failed
    sends = [tuple(x) for x in first + second if len(x) == 2]  # the kill may tear a line
    assert len(sends) == len(set(sends)), "a blob was sent twice"
    wanted = {(tier, m["sha256"]) for m in made for tier in ("local", "s3")}
    assert {(t, b.removesuffix(".z")) for t, b in sends} <= wanted
    store = SnapshotStore(stack.settings, stack.creds)
    held = {(tier.name, o.key.removesuffix(".z")) for tier in store.tiers()
            for o in tier.blobs.list()}
    assert wanted <= held  # nothing missed
    assert all(_outbox(stack)[_key_of(stack, m["id"])] == ["local", "s3"] for m in made)


def test_backup_store_down_the_outbox_grows_an_alert_fires_and_it_drains_on_return(
        stack: Stack, tmp_path: Path) -> None:
    settings = stack.settings.model_copy(update={"outbox_alert_seconds": 4.0})
    proxy = S3Proxy(stack.settings.s3_url)
    through = settings.model_copy(update={"backup_s3_endpoint": proxy.url})
    Replicator(through, stack.creds).run_pass()
    proxy.close()  # the backup store goes away
    _write_pairs(stack, 5, "down")
    down = Replicator(through, stack.creds).run_pass()
    assert "s3" in down.failed and down.pending >= 5
    assert "local" in down.protected and "s3" not in down.protected
    time.sleep(4.5)
    alerts = AlertDispatcher([FileChannel(tmp_path / "alerts.log")], lambda: datetime.now(UTC),
                             backoff_seconds=0.0)
    monitor = Monitor(settings, alerts, {})
    monitor.check_outbox()
    firing = {a.key for a in alerts.active()}
    assert "object_protection:s3" in firing
    state = read_state(settings.dr_dir)
    assert state is not None and state.pending >= 5 and "s3" in state.failed
    back = Replicator(settings, stack.creds).run_pass()  # the store is back
    assert not back.failed and back.pending == 0 and back.sent.get("s3", 0) >= 5
    monitor.check_outbox()
    assert "object_protection:s3" not in {a.key for a in alerts.active()}
    alerts.close(5)


def _wait_streamed(stack: Stack) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if streaming_lag_bytes(stack.settings, stack.creds) == 0:
            return
        time.sleep(0.2)
    raise AssertionError("WAL receiver did not catch up")


def test_recovery_to_a_time_between_two_writes_brings_back_the_first_pair_only(
        stack: Stack) -> None:
    manager = PhysicalBackupManager(stack.settings, stack.creds)
    manager.create()
    replicator = Replicator(stack.settings, stack.creds)
    [first] = _write_pairs(stack, 1, "before")
    replicator.run_pass()
    time.sleep(0.5)
    with _db(stack) as conn:
        between = conn.execute("SELECT clock_timestamp()").fetchone()[0]
    time.sleep(0.5)
    [second] = _write_pairs(stack, 1, "after")
    # A pass protects up to its start minus the visibility margin: past ``between`` only once
    # that much has gone by (on a quiet machine the write above takes far less).
    time.sleep(VISIBILITY_MARGIN.total_seconds() + 0.2)
    replicator.run_pass()
    keys = {"first": _key_of(stack, first["id"]), "second": _key_of(stack, second["id"])}
    point = choose_point(stack.settings, stack.creds, between)
    assert point.consistent is True and point.point == between
    _wait_streamed(stack)
    manager.recover(lambda: stack.stop("postgres"), lambda: stack.start("postgres"),
                    target_time=point.point)
    stack.restart("walstream")
    s3 = app_client(stack.settings, stack.creds)
    for key in keys.values():  # the bucket lost them both
        s3.delete_object(Bucket="diagrams", Key=key)
    replayed = replay_outbox(stack.settings, stack.creds, list(stack.settings.app_buckets), s3)
    assert replayed["unprotected"] == 0
    with _db(stack) as conn:
        ids = {r[0] for r in conn.execute("SELECT id FROM diagrams")}
    assert first["id"] in ids and second["id"] not in ids
    present = object_fingerprints(s3, ["diagrams"])["diagrams"]
    assert keys["first"] in present and keys["second"] not in present
    found = dangling_references(stack.settings, stack.creds,
                                object_fingerprints(s3, ["diagrams", "uploads"]))
    assert found["ok"], found
    assert orphans(stack.settings, stack.creds, s3)["diagrams"]["orphans"] == 0
    # the second pair's object without its row (lost after the point): an orphan, reported
    # and kept, removed only when asked
    s3.put_object(Bucket="diagrams", Key=keys["second"], Body=b"{}")
    assert orphans(stack.settings, stack.creds, s3)["diagrams"]["sample"] == [keys["second"]]
    assert keys["second"] in object_fingerprints(s3, ["diagrams"])["diagrams"]
    orphans(stack.settings, stack.creds, s3, clean=True)
    assert keys["second"] not in object_fingerprints(s3, ["diagrams"])["diagrams"]
    assert keys["first"] in object_fingerprints(s3, ["diagrams"])["diagrams"]
