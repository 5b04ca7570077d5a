"""AlertDispatcher state machine, retries and persistence, with in-memory fake channels."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autograph.dr.alerts.dispatcher import AlertDispatcher
from autograph.dr.alerts.models import Alert
from autograph.errors import ConfigError, InvalidInput, OperationFailed

T0 = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)


@dataclass
class RecordingChannel:
    """Records what it is sent; can fail the first ``failures`` sends or wait for ``gate``."""

    name: str
    failures: int = 0
    error: Exception = field(default_factory=lambda: OperationFailed("channel down"))
    gate: threading.Event | None = None
    sent: list[Alert] = field(default_factory=list)
    tries: int = 0

    def send(self, alert: Alert) -> None:
        self.tries += 1
        if self.gate is not None:
            self.gate.wait()
        if self.tries <= self.failures:
            raise self.error
        self.sent.append(alert)


class StepClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> StepClock:
    return StepClock()


def make(channels: list[RecordingChannel], clock: StepClock, **kwargs: object) -> AlertDispatcher:
    kwargs.setdefault("backoff_seconds", 0.0)
    return AlertDispatcher(channels, clock, **kwargs)  # type: ignore[arg-type]


def test_fires_once_and_resolves_once(clock: StepClock) -> None:
    a, b = RecordingChannel("a"), RecordingChannel("b")
    alerts = make([a, b], clock)
    assert alerts.fire("backup_failed:database", "backup_failed", "critical", "dump failed")
    clock.now = T0 + timedelta(minutes=1)
    assert not alerts.fire("backup_failed:database", "backup_failed", "critical", "again")
    assert alerts.is_firing("backup_failed:database")
    clock.now = T0 + timedelta(hours=1)
    assert alerts.resolve("backup_failed:database")
    assert not alerts.resolve("backup_failed:database")
    assert not alerts.resolve("never_fired")
    assert alerts.flush(timeout=10)
    for channel in (a, b):
        assert [(x.status, x.message) for x in channel.sent] == [
            ("firing", "dump failed"),
            ("resolved", "dump failed"),
        ]
        assert channel.sent[1].started_at == T0
        assert channel.sent[1].resolved_at == T0 + timedelta(hours=1)
    assert alerts.active() == []
    alerts.close()


def test_a_resolved_condition_can_fire_again(clock: StepClock) -> None:
    channel = RecordingChannel("a")
    alerts = make([channel], clock)
    alerts.fire("disk_usage:/", "disk_usage", "warning", "disk 85 %")
    alerts.resolve("disk_usage:/")
    clock.now = T0 + timedelta(days=1)
    assert alerts.fire("disk_usage:/", "disk_usage", "warning", "disk 91 %")
    assert alerts.flush(timeout=10)
    assert [x.status for x in channel.sent] == ["firing", "resolved", "firing"]
    recent = alerts.recent(10)
    assert [(x.message, x.status) for x in recent] == [
        ("disk 91 %", "firing"),
        ("disk 85 %", "resolved"),
    ]
    assert [x.key for x in alerts.active()] == ["disk_usage:/"]
    alerts.close()


def test_active_and_recent_are_newest_first_and_bounded(clock: StepClock) -> None:
    alerts = make([], clock, history_limit=3)
    for minute in range(5):
        clock.now = T0 + timedelta(minutes=minute)
        alerts.fire(f"k{minute}", "rule", "warning", f"m{minute}", {"n": minute})
    assert [x.key for x in alerts.active()] == ["k4", "k3", "k2", "k1", "k0"]
    assert [x.key for x in alerts.recent(2)] == ["k4", "k3"]
    assert [x.key for x in alerts.recent(50)] == ["k4", "k3", "k2"]
    assert alerts.recent(0) == []
    assert alerts.recent(1)[0].details == {"n": 4}
    alerts.close()


def test_a_failing_channel_is_retried_until_it_delivers(
    clock: StepClock, caplog: pytest.LogCaptureFixture
) -> None:
    flaky = RecordingChannel("flaky", failures=2)
    alerts = make([flaky], clock, retry_attempts=3)
    alerts.fire("s3_unreachable", "s3_unreachable", "critical", "S3 down")
    assert alerts.flush(timeout=10)
    assert flaky.tries == 3
    assert [x.key for x in flaky.sent] == ["s3_unreachable"]
    assert alerts.failed_deliveries() == {"flaky": 0}
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == 2
    alerts.close()


def test_a_channel_that_keeps_failing_is_given_up_and_logged_without_details(
    clock: StepClock, caplog: pytest.LogCaptureFixture
) -> None:
    broken = RecordingChannel("broken", failures=99, error=RuntimeError("token=hunter2 rejected"))
    alerts = make([broken], clock, retry_attempts=2)
    alerts.fire("backup_failed:database", "backup_failed", "critical", "dump failed")
    assert alerts.flush(timeout=10)
    assert broken.tries == 3
    assert alerts.failed_deliveries() == {"broken": 1}
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [
        "alert backup_failed:database firing not delivered to channel broken after 3 tries: "
        "RuntimeError"
    ]
    assert "hunter2" not in caplog.text
    alerts.close()


def test_a_blocked_channel_does_not_hold_up_the_others_or_the_caller(clock: StepClock) -> None:
    gate = threading.Event()
    stuck, fast = RecordingChannel("stuck", gate=gate), RecordingChannel("fast")
    alerts = make([stuck, fast], clock)
    assert alerts.fire("db_down", "database_unreachable", "critical", "no PostgreSQL")
    assert alerts.flush(timeout=10, channels=["fast"])
    assert [x.key for x in fast.sent] == ["db_down"]
    assert not alerts.flush(timeout=0, channels=["stuck"])
    assert stuck.sent == []
    gate.set()
    assert alerts.flush(timeout=10)
    assert [x.key for x in stuck.sent] == ["db_down"]
    alerts.close()


def test_state_survives_a_restart(clock: StepClock, tmp_path: Path) -> None:
    state = tmp_path / "state" / "alerts.json"
    first = RecordingChannel("a")
    before = make([first], clock, state_path=state)
    before.fire("backup_failed:bucket", "backup_failed", "critical", "archive failed")
    before.fire("disk_usage:/", "disk_usage", "warning", "disk 85 %")
    before.resolve("disk_usage:/")
    before.close()

    second = RecordingChannel("a")
    after = make([second], clock, state_path=state)
    assert after.is_firing("backup_failed:bucket")
    assert not after.fire("backup_failed:bucket", "backup_failed", "critical", "archive failed")
    assert [(x.key, x.status) for x in after.recent()] == [
        ("disk_usage:/", "resolved"),
        ("backup_failed:bucket", "firing"),
    ]
    assert after.resolve("backup_failed:bucket")
    assert after.flush(timeout=10)
    assert [(x.key, x.status) for x in second.sent] == [("backup_failed:bucket", "resolved")]
    after.close()


def test_an_unreadable_state_file_starts_empty(
    clock: StepClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "alerts.json"
    state.write_text("{not json")
    alerts = make([], clock, state_path=state)
    assert alerts.active() == []
    assert "unreadable" in caplog.text
    assert alerts.fire("k", "rule", "warning", "m")
    assert '"key": "k"' in state.read_text()
    alerts.close()


@pytest.mark.parametrize(
    ("severity", "details"),
    [("fatal", {}), ("critical", {"when": datetime(2026, 1, 1)})],
    ids=["bad-severity", "details-not-json"],
)
def test_bad_alerts_are_rejected(clock: StepClock, severity: str, details: dict) -> None:
    alerts = make([], clock)
    with pytest.raises(InvalidInput):
        alerts.fire("k", "rule", severity, "m", details)  # type: ignore[arg-type]
    assert not alerts.is_firing("k")
    alerts.close()


def test_bad_settings_are_rejected(clock: StepClock) -> None:
    with pytest.raises(ConfigError, match="distinct names"):
        make([RecordingChannel("a"), RecordingChannel("a")], clock)
    with pytest.raises(ConfigError):
        make([], clock, retry_attempts=-1)
    alerts = make([RecordingChannel("a")], clock)
    with pytest.raises(InvalidInput, match="no alert channel named b"):
        alerts.flush(timeout=0, channels=["b"])
    alerts.close()


def test_after_close_alerts_are_recorded_but_not_sent(clock: StepClock) -> None:
    channel = RecordingChannel("a")
    alerts = make([channel], clock)
    alerts.close()
    assert alerts.fire("k", "rule", "warning", "m")
    assert alerts.flush(timeout=0)
    assert channel.sent == []
    assert alerts.is_firing("k")
