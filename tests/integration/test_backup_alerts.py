"""Real backups, real channels: a failing database backup alerts once on every channel (console,
file, e-mail through aiosmtpd, Slack through a local webhook server) and is resolved once after
the next success; broken channels delay neither the backup nor the other channels."""

from __future__ import annotations

import io
import json
import logging
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr

from alertservers import Webhook, free_port, smtp_server, webhook_server
from autograph.config import Settings
from autograph.dr.alerting import build_channels
from autograph.dr.alerts.console import ConsoleChannel
from autograph.dr.alerts.dispatcher import AlertDispatcher
from autograph.dr.catalog import Catalog
from autograph.dr.monitor.monitor import Monitor
from autograph.dr.ops import hooks, journal
from autograph.dr.postgres import DatabaseBackupManager
from autograph.errors import AutographError
from autograph.s3.boto import app_client, backup_client, ensure_buckets
from autograph.stack.lifecycle import Stack
from catalogutil import two_tier_catalog

FIRED = "backup_failed:database firing"
RESOLVED = "backup_failed:database resolved"


@dataclass
class Rig:
    settings: Settings
    stack: Stack
    catalog: Catalog
    monitor: Monitor
    dispatcher: AlertDispatcher
    console: io.StringIO
    log: Path

    def manager(self, *, broken: bool = False) -> DatabaseBackupManager:
        settings = self.settings
        if broken:  # PostgreSQL "down": nothing listens on this port
            settings = settings.model_copy(update={"pg_port": free_port()})
        return DatabaseBackupManager(settings, self.stack.creds, catalog=self.catalog)

    def file_notices(self) -> list[str]:
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        return [f"{a['key']} {a['status']}" for a in map(json.loads, lines)]

    def console_notices(self) -> list[str]:
        lines = self.console.getvalue().splitlines()
        return [f"{a['key']} {a['status']}" for a in map(json.loads, lines)]


@pytest.fixture
def rig_factory(infra_stack: Stack, tmp_path: Path) -> Iterator[object]:
    made: list[tuple[AlertDispatcher, object]] = []

    def make(smtp_port: int, hook: Webhook, **dispatch: object) -> Rig:
        settings = infra_stack.settings.model_copy(update={
            "backup_dir": tmp_path / "backups", "alerts_log": tmp_path / "alerts.log",
            "smtp_host": "127.0.0.1", "smtp_port": smtp_port,
            "alert_email_to": ("ops@autograph.test",), "slack_webhook_url": SecretStr(hook.url),
            "disk_usage_alert_percent": 100.0, "backup_storage_min_free_bytes": 0})
        console = io.StringIO()
        channels = [ConsoleChannel(stream=console), *build_channels(settings)[1:]]
        dispatch.setdefault("backoff_seconds", 0.05)
        dispatcher = AlertDispatcher(channels, state_path=tmp_path / "alerts-state.json",
                                     **dispatch)  # type: ignore[arg-type]
        catalog = two_tier_catalog(tmp_path / "backups", "database",
                                   backup_client(settings, infra_stack.creds),
                                   settings.backup_bucket_database)
        events = journal.journal_path(tmp_path / "dr")
        made.append((dispatcher, hooks.on_event(journal.recorder(events))))
        monitor = Monitor(settings, dispatcher, {"database": catalog}, journal_path=events)
        return Rig(settings, infra_stack, catalog, monitor, dispatcher, console,
                   tmp_path / "alerts.log")

    yield make
    for dispatcher, unsubscribe in made:
        unsubscribe()  # type: ignore[operator]
        dispatcher.close(timeout=1)


def test_a_failed_backup_alerts_once_per_channel_and_resolves_after_the_next_success(
        rig_factory: object) -> None:
    with smtp_server() as (smtp_port, mailbox), webhook_server() as hook:
        rig: Rig = rig_factory(smtp_port, hook)  # type: ignore[operator]
        for _ in range(2):  # two failures in a row: still one alert
            with pytest.raises(AutographError):
                rig.manager(broken=True).create(scheduled=True)
            rig.monitor.run_once()
        entry = rig.manager().create(scheduled=True)
        rig.monitor.run_once()
        rig.monitor.run_once()
        assert rig.dispatcher.flush(timeout=60)

        assert entry.verification.status == "passed"
        assert mailbox.alerts() == [FIRED, RESOLVED]
        assert hook.alerts() == [FIRED, RESOLVED]
        assert rig.file_notices() == [FIRED, RESOLVED]
        assert rig.console_notices() == [FIRED, RESOLVED]
        assert "PostgreSQL" in mailbox.messages[0].get_payload()


@pytest.mark.parametrize("webhook_trouble", ["hangs", "answers 500"])
def test_broken_channels_delay_neither_the_backup_nor_the_other_channels(
        rig_factory: object, webhook_trouble: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with webhook_server() as hook:
        if webhook_trouble == "hangs":
            hook.hang = threading.Event()
        else:
            hook.status = 500
        # Nothing listens on the SMTP port: every delivery is refused and retried.
        rig: Rig = rig_factory(free_port(), hook, retry_attempts=2)  # type: ignore[operator]
        with pytest.raises(AutographError):
            rig.manager(broken=True).create(scheduled=True)
        rig.monitor.run_once()
        assert rig.dispatcher.flush(timeout=30, channels=["console", "file"])
        assert rig.file_notices() == [FIRED]

        entry = rig.manager().create(scheduled=True)  # completes while Slack and SMTP are down
        rig.monitor.run_once()
        assert rig.dispatcher.flush(timeout=30, channels=["console", "file"])
        assert entry.name.startswith("scheduled_backup_")
        assert rig.file_notices() == [FIRED, RESOLVED]
        assert rig.console_notices() == [FIRED, RESOLVED]
        if webhook_trouble == "hangs":
            assert hook.received.is_set() and hook.answered == 0  # still holding the request
            hook.hang.set()  # type: ignore[union-attr]
        assert rig.dispatcher.flush(timeout=60)
    failed = rig.dispatcher.failed_deliveries()
    assert failed["email"] == 2
    assert failed["slack"] == (2 if webhook_trouble == "answers 500" else 0)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "secret-token-xyz" not in logged


def test_bucket_quota_exceeded(infra_stack: Stack, tmp_path: Path) -> None:
    client = app_client(infra_stack.settings, infra_stack.creds)
    bucket = f"quota-{secrets.token_hex(4)}"
    ensure_buckets(client, [bucket])
    for index in range(3):
        client.put_object(Bucket=bucket, Key=f"object-{index}", Body=b"x" * 1000)
    settings = infra_stack.settings.model_copy(update={
        "bucket_quota_bytes": {bucket: 2500}, "quota_check_seconds": 0.0,
        "backup_dir": tmp_path / "backups"})
    dispatcher = AlertDispatcher([ConsoleChannel(stream=io.StringIO())])
    try:
        monitor = Monitor(settings, dispatcher, {}, s3_client=lambda: client)
        monitor.check_quotas()
        assert [a.key for a in dispatcher.active()] == [f"bucket_quota:{bucket}"]
        assert dispatcher.active()[0].details["used_bytes"] == 3000
        monitor.settings = settings.model_copy(update={"bucket_quota_bytes": {bucket: 5000}})
        monitor.check_quotas()
        assert dispatcher.active() == []
        assert [a.status for a in dispatcher.recent()] == ["resolved"]
    finally:
        dispatcher.close(timeout=1)
