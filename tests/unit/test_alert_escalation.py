"""Escalation by elapsed time, with an injected clock (no sleeping): each level sent once,
acknowledged or silenced alerts held back, the levels kept across a restart, every notice
logged for the recovery report's timeline, and the setting's one-line errors."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from tests.unit.test_alert_dispatcher import T0, RecordingChannel, StepClock

from autograph.config import load_settings
from autograph.dr.alerts import acks, escalation, notifications
from autograph.dr.alerts.acks import AlertAck
from autograph.dr.alerts.dispatcher import AlertDispatcher
from autograph.errors import ConfigError

PATH = escalation.path_from(((0, "operations"), (30, "lead"), (60, "coordinator")))


def make(clock: StepClock, tmp_path: Path, *channels: RecordingChannel) -> AlertDispatcher:
    return AlertDispatcher(list(channels) or [RecordingChannel("console")], clock,
                           backoff_seconds=0.0, escalation=PATH,
                           state_path=tmp_path / "alerts-state.json",
                           notifications_path=notifications.log_path(tmp_path))


def at(clock: StepClock, minutes: float) -> None:
    clock.now = T0 + timedelta(minutes=minutes)


def test_each_level_is_sent_once_when_its_minute_comes(tmp_path: Path) -> None:
    clock = StepClock()
    channel = RecordingChannel("slack")
    dispatcher = make(clock, tmp_path, channel)
    dispatcher.fire("db", "database_unreachable", "critical", "PostgreSQL down")
    sent = []
    for minute in (0, 10, 29.9, 30, 31, 45, 59, 60, 90, 300):
        at(clock, minute)
        sent += [(minute, n.level) for n in dispatcher.escalate({})]
    assert sent == [(30, "lead"), (60, "coordinator")]
    dispatcher.flush(5)
    assert [(a.status, a.level) for a in channel.sent] == [
        ("firing", "operations"), ("escalated", "lead"), ("escalated", "coordinator")]
    assert "ESCALATED to lead critical: db" in channel.sent[1].subject()
    assert dispatcher.active()[0].escalations == ("operations", "lead", "coordinator")
    dispatcher.close()


def test_a_gateway_back_after_an_hour_sends_only_the_highest_level_due(tmp_path: Path) -> None:
    clock = StepClock()
    dispatcher = make(clock, tmp_path)
    dispatcher.fire("s3", "s3_unreachable", "critical", "S3 down")
    at(clock, 75)
    assert [n.level for n in dispatcher.escalate({})] == ["coordinator"]
    assert dispatcher.escalate({}) == []
    dispatcher.close()


def test_acknowledged_or_silenced_alerts_do_not_escalate(tmp_path: Path) -> None:
    clock = StepClock()
    acks.record(tmp_path, "c", "ops@example.org", T0 - timedelta(minutes=1),
                silence=timedelta(minutes=41))  # silenced before this occurrence started
    dispatcher = make(clock, tmp_path)
    for key in ("a", "b", "c", "d"):
        dispatcher.fire(key, "backup_failed", "critical", f"{key} failed")
    at(clock, 5)
    acks.record(tmp_path, "a", "ops@example.org", clock.now)
    acks.record(tmp_path, "b", "ops@example.org", clock.now, silence=timedelta(minutes=10))
    at(clock, 35)
    assert [n.key for n in dispatcher.escalate(acks.load(tmp_path))] == ["d"]
    # c's silence ended and nobody acknowledged this occurrence: it escalates now; a and b
    # stay acknowledged (a silence is an acknowledgement too).
    at(clock, 41)
    assert [(n.key, n.level) for n in dispatcher.escalate(acks.load(tmp_path))] == [("c", "lead")]
    at(clock, 61)
    assert sorted(n.key for n in dispatcher.escalate(acks.load(tmp_path))) == ["c", "d"]
    dispatcher.close()


def test_an_acknowledgement_of_an_earlier_occurrence_does_not_hold_a_new_one() -> None:
    clock = StepClock()
    dispatcher = AlertDispatcher([], clock, escalation=PATH)
    dispatcher.fire("k", "backup_failed", "warning", "failed")
    old = AlertAck(key="k", by="ops", at=T0 - timedelta(hours=2))
    at(clock, 31)
    assert [n.level for n in dispatcher.escalate({"k": old})] == ["lead"]
    dispatcher.close()


def test_a_resolved_alert_stops_escalating_and_levels_survive_a_restart(tmp_path: Path) -> None:
    clock = StepClock()
    first = make(clock, tmp_path)
    first.fire("x", "backup_failed", "critical", "x failed")
    at(clock, 31)
    assert len(first.escalate({})) == 1
    first.close()
    second = make(clock, tmp_path)  # a new leader with the persisted state
    at(clock, 40)
    assert second.escalate({}) == []
    second.resolve("x")
    at(clock, 70)
    assert second.escalate({}) == []
    second.close()


def test_every_notice_is_logged_per_channel_and_read_back_by_time(tmp_path: Path) -> None:
    clock = StepClock()
    dispatcher = make(clock, tmp_path, RecordingChannel("console"),
                      RecordingChannel("email", failures=9))
    dispatcher.fire("db", "database_unreachable", "critical", "PostgreSQL down")
    dispatcher.flush(5)
    at(clock, 30)
    dispatcher.escalate({})
    dispatcher.flush(5)
    dispatcher.close()
    log = notifications.log_path(tmp_path)
    rows = notifications.between(log, T0, T0 + timedelta(minutes=30))
    assert sorted((n.channel, n.status, n.level, n.delivered) for n in rows) == [
        ("console", "escalated", "lead", True), ("console", "firing", "operations", True),
        ("email", "escalated", "lead", False), ("email", "firing", "operations", False)]
    assert notifications.between(log, T0 + timedelta(minutes=1),
                                 T0 + timedelta(minutes=29)) == []


def test_no_path_configured_means_no_level_and_no_escalation(tmp_path: Path) -> None:
    clock = StepClock()
    dispatcher = AlertDispatcher([], clock)
    dispatcher.fire("k", "backup_failed", "warning", "failed")
    at(clock, 600)
    assert dispatcher.escalate({}) == []
    assert dispatcher.active()[0].level is None
    dispatcher.close()


def test_the_setting_parses_json_pairs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AUTOGRAPH_ALERT_ESCALATION",
                       '[[0,"operations"],[30,"lead"],[60,"coordinator"]]')
    settings = load_settings(home=tmp_path)
    assert [(lv.minutes, lv.recipient) for lv in escalation.path_from(
        settings.alert_escalation)] == [(0, "operations"), (30, "lead"), (60, "coordinator")]


def test_a_level_goes_to_its_own_channels(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    """The operations channel first, the lead by email, the coordinator everywhere; a level
    whose channels are none of the configured ones is sent on every channel, not dropped."""
    monkeypatch.setenv("AUTOGRAPH_ALERT_ESCALATION", '[[0,"operations",["slack"]],'
                       '[30,"lead",["email"]],[60,"coordinator"],[90,"cto",["file"]]]')
    levels = escalation.path_from(load_settings(home=tmp_path).alert_escalation)
    assert [lv.channels for lv in levels] == [("slack",), ("email",), (), ("file",)]
    clock = StepClock()
    slack, email = RecordingChannel("slack"), RecordingChannel("email")
    dispatcher = AlertDispatcher([slack, email], clock, backoff_seconds=0.0, escalation=levels,
                                 state_path=tmp_path / "alerts-state.json")
    dispatcher.fire("db", "database_unreachable", "critical", "PostgreSQL down")
    for minute in (30, 60, 90):
        at(clock, minute)
        dispatcher.escalate({})
    dispatcher.flush(5)
    assert [(a.status, a.level) for a in email.sent] == [
        ("firing", "operations"), ("escalated", "lead"), ("escalated", "coordinator"),
        ("escalated", "cto")]
    assert [(a.status, a.level) for a in slack.sent] == [
        ("firing", "operations"), ("escalated", "coordinator"), ("escalated", "cto")]
    dispatcher.close()


@pytest.mark.parametrize(("value", "words"), [
    ('[[30,"lead"],[0,"ops"]]', "minute 0"),
    ('[[0,"ops"],[30,"lead"],[30,"boss"]]', "increase strictly"),
    ('[[0,"ops"],[30,"ops"]]', "distinct"),
    ('[[0,"ops"],[30," "]]', "distinct non-empty"),
    ('[[0]]', "AUTOGRAPH_ALERT_ESCALATION"),
    ('not json', "AUTOGRAPH_ALERT_ESCALATION"),
    ('[[0,"ops",["pager"]]]', "unknown channel"),
])
def test_a_bad_setting_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                             value: str, words: str) -> None:
    monkeypatch.setenv("AUTOGRAPH_ALERT_ESCALATION", value)
    with pytest.raises(ConfigError) as caught:
        load_settings(home=tmp_path)
    assert "AUTOGRAPH_ALERT_ESCALATION" in str(caught.value)
    assert words in str(caught.value)
    assert "\n" not in str(caught.value)
