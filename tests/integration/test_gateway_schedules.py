"""Two real gateway processes on one backup folder run one scheduled database backup between
them, and a gateway started just after that run does not run it again."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from alertservers import free_port
from autograph.clock import utc_now
from autograph.config import Settings
from autograph.dr.catalog import open_catalog
from autograph.s3.boto import backup_client, ensure_buckets
from autograph.stack.lifecycle import Stack
from stackutil import settings_env

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture
def gateway_settings(infra_stack: Stack, tmp_path: Path) -> Settings:
    """The infra stack's servers and credentials, with a home, backup folder and backup
    bucket of this test's own."""
    home = tmp_path / "home"
    shutil.copytree(infra_stack.settings.secrets_dir, home / "secrets")
    bucket = f"gw-backups-{secrets.token_hex(4)}"
    settings = infra_stack.settings.model_copy(update={
        "home": home, "backup_dir": tmp_path / "backups", "backup_bucket_database": bucket,
        "app_buckets": (), "scheduler_enabled": True, "scheduler_poll_seconds": 0.2,
        "scheduler_startup_delay_seconds": 0.0, "monitor_interval_seconds": 1.0,
        "disk_usage_alert_percent": 100.0, "backup_storage_min_free_bytes": 0})
    ensure_buckets(backup_client(settings, infra_stack.creds), [bucket])
    return settings


class Gateway:
    """A gateway process (uvicorn) on its own port."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self.port = free_port()
        env = {**os.environ, **settings_env(settings), "AUTOGRAPH_GATEWAY_PORT": str(self.port),
               "PYTHONPATH": str(SRC)}
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "autograph.services.gateway.app:create_app",
             "--factory", "--host", "127.0.0.1", "--port", str(self.port), "--log-level",
             "warning"], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)

    def status(self, key: str) -> dict[str, Any]:
        response = httpx.get(f"http://127.0.0.1:{self.port}/api/admin/dr/status",
                             headers={"Authorization": f"Bearer {key}"}, timeout=30)
        response.raise_for_status()
        return dict(response.json())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def stop_all(gateways: list[Gateway]) -> None:
    for gateway in gateways:  # signal them all first: they shut down side by side
        if gateway.process.poll() is None:
            gateway.process.terminate()
    for gateway in gateways:
        gateway.stop()


def wait_for(what: str, check: Any, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except (httpx.HTTPError, OSError):
            value = None
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def ticked_after(gateway: Gateway, key: str, moment: datetime) -> bool:
    tick = gateway.status(key)["scheduler_last_tick"]
    return tick is not None and datetime.fromisoformat(tick.replace("Z", "+00:00")) > moment


@pytest.fixture
def gateways(gateway_settings: Settings, tmp_path: Path) -> Iterator[list[Gateway]]:
    started: list[Gateway] = []
    yield started
    stop_all(started)


def test_two_gateways_run_one_scheduled_backup_and_a_restart_does_not_repeat_it(
        gateway_settings: Settings, gateways: list[Gateway], infra_stack: Stack,
        tmp_path: Path) -> None:
    key = infra_stack.creds.admin_api_key
    catalog = open_catalog(gateway_settings, infra_stack.creds, "database")

    def scheduled() -> list[str]:
        return [e.name for e in catalog.list().backups if e.name.startswith("scheduled_")]

    gateways.extend(Gateway(gateway_settings, tmp_path / f"gateway-{i}.log") for i in (1, 2))
    wait_for("a scheduled backup", scheduled)
    seen = utc_now()
    for gateway in gateways:  # both schedulers have checked again since the backup committed
        wait_for("a scheduler tick", lambda g=gateway: ticked_after(g, key, seen))
    assert len(scheduled()) == 1
    first = catalog.get(scheduled()[0])
    assert set(first.locations) == {"local", "s3"}
    assert first.verification.status == "passed"

    stop_all(gateways)
    gateways.clear()
    restarted = Gateway(gateway_settings, tmp_path / "gateway-3.log")
    gateways.append(restarted)
    started = utc_now()
    wait_for("the restarted scheduler's tick", lambda: ticked_after(restarted, key, started))
    status = restarted.status(key)
    database = next(s for s in status["sources"] if s["kind"] == "database")
    assert scheduled() == [first.name]
    assert database["last_success"]["name"] == first.name
    next_run = datetime.fromisoformat(database["next_scheduled_run"].replace("Z", "+00:00"))
    assert (next_run - first.created_at).total_seconds() == \
        gateway_settings.database_backup_interval_seconds


def test_two_gateways_take_one_snapshot_of_a_bucket_per_interval(
        gateway_settings: Settings, gateways: list[Gateway], infra_stack: Stack,
        tmp_path: Path) -> None:
    from autograph.dr.buckets.snapshots.store import SnapshotStore
    from autograph.s3.boto import app_client

    token = secrets.token_hex(3)
    bucket, kept_in = f"gw-snap-{token}", f"gw-mbk-{token}"
    ensure_buckets(backup_client(gateway_settings, infra_stack.creds), [kept_in])
    source = app_client(gateway_settings, infra_stack.creds)
    source.create_bucket(Bucket=bucket)
    source.put_object(Bucket=bucket, Key="k", Body=b"v")
    settings = gateway_settings.model_copy(update={
        "app_buckets": (bucket,), "backup_bucket_objects": kept_in,
        "snapshot_interval_seconds": 3600})
    store = SnapshotStore(settings, infra_stack.creds)
    try:
        gateways.extend(Gateway(settings, tmp_path / f"gateway-{i}.log") for i in (1, 2))
        first = wait_for("a snapshot", lambda: store.all_names(bucket))
        seen = utc_now()
        for gateway in gateways:  # both runtimes' schedulers (snapshots included) ran since
            wait_for("a scheduler tick", lambda g=gateway: ticked_after(
                g, infra_stack.creds.admin_api_key, seen))
        assert store.all_names(bucket) == first and len(first) == 1
        status = gateways[1].status(infra_stack.creds.admin_api_key)
        assert [(s["bucket"], s["latest"], s["status"]) for s in status["snapshots"]] == [
            (bucket, first[0], "ok")]
        [shown] = status["snapshots"]  # the admin API shows the snapshot schedule's next run
        taken = datetime.fromisoformat(shown["taken_at"].replace("Z", "+00:00"))
        assert datetime.fromisoformat(shown["next_scheduled_run"].replace("Z", "+00:00")) == (
            taken + timedelta(seconds=3600))
    finally:
        stop_all(gateways)
        for name in (bucket, kept_in):
            for page in source.get_paginator("list_objects_v2").paginate(Bucket=name):
                for item in page.get("Contents", []):
                    source.delete_object(Bucket=name, Key=item["Key"])
            source.delete_bucket(Bucket=name)
