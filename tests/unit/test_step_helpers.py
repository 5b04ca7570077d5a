"""The shared step helpers: ``hooks.reporting`` (the failure event, then the error re-raised),
``StepTimer`` (timed step records) and ``jsonable``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from autograph.dr.models import StepRecord, jsonable
from autograph.dr.ops import hooks
from autograph.dr.ops.steps import StepTimer
from autograph.errors import Conflict, IntegrityError, OperationFailed


@pytest.fixture
def events() -> Iterator[list[hooks.BackupEvent]]:
    seen: list[hooks.BackupEvent] = []
    unsubscribe = hooks.on_event(seen.append)
    yield seen
    unsubscribe()


def test_an_autograph_error_is_reported_then_raised_as_it_is(
        events: list[hooks.BackupEvent]) -> None:
    with pytest.raises(Conflict, match="busy"), hooks.reporting(
            "backup_failed", "bucket", None, prefix="bucket diagrams: ",
            data={"bucket": "diagrams"}) as failing:
        failing.name = "b1"
        raise Conflict("busy")
    assert [(e.event, e.kind, e.name, e.detail, e.data) for e in events] == [
        ("backup_failed", "bucket", "b1", "bucket diagrams: busy", {"bucket": "diagrams"})]


def test_another_error_is_wrapped_only_when_named(events: list[hooks.BackupEvent]) -> None:
    with pytest.raises(OperationFailed, match="restore of d1 failed: KeyError") as raised, \
            hooks.reporting("restore_failed", "database", "d1", what="restore of d1"):
        raise KeyError("x")
    assert isinstance(raised.value.__cause__, KeyError)
    assert events[-1].detail == raised.value.message
    with pytest.raises(KeyError), hooks.reporting("restore_failed", "database", "d1"):
        raise KeyError("y")
    assert len(events) == 1  # not an AutographError and not named: not reported


def test_nothing_is_emitted_when_the_block_succeeds(events: list[hooks.BackupEvent]) -> None:
    with hooks.reporting("backup_failed", "database", "d1", what="backup d1"):
        pass
    assert events == []


def test_a_failed_verification_is_reported_and_returned(
        events: list[hooks.BackupEvent]) -> None:
    error = hooks.verification_failed("database", "d1", None)
    assert isinstance(error, IntegrityError)
    assert error.message == "backup d1 failed verification: None"
    assert (events[0].event, events[0].detail) == ("verification_failed",
                                                   "verification failed")


def test_step_timer_times_each_step_from_its_start() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    ticks = iter([0.0, 1.5, 2.0, 4.25])
    steps = StepTimer(clock=lambda: now, timer=lambda: next(ticks))
    steps.done("fetch", "local copy")
    steps.start()
    steps.done("put objects", "3 restored")
    assert [(s.name, s.detail, s.duration_seconds, s.status) for s in steps.steps] == [
        ("fetch", "local copy", 1.5, "passed"), ("put objects", "3 restored", 2.25, "passed")]
    assert all(s.started_at == now for s in steps.steps)


@dataclass
class _Point:
    at: datetime


def test_jsonable_dumps_models_and_dataclasses_inside_plain_data() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    step = StepRecord(name="a", started_at=at, duration_seconds=1.0)
    found = jsonable({"steps": [step], "point": _Point(at + timedelta(seconds=1)), 3: (1, 2)})
    assert found["steps"][0]["started_at"] == "2026-01-01T00:00:00Z"
    assert found["point"] == {"at": at + timedelta(seconds=1)}  # values left as they are
    assert found["3"] == [1, 2]
