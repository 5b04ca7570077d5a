"""The step runner: timing, statuses, timeouts, and resuming from a state file."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autograph.dr.ops.steps import Operation, Outcome, Skip, Step, StepContext
from autograph.errors import Conflict, OperationFailed

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


class FakeTime:
    """A clock and a timer that advance only when a step says so."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def clock(self) -> datetime:
        return T0 + timedelta(seconds=self.seconds)

    def timer(self) -> float:
        return self.seconds


def _step(name: str, calls: list[str], seconds: float = 0.0, fake: FakeTime | None = None,
          outcome: Outcome | str | None = None) -> Step:
    def run(_ctx: StepContext) -> Outcome | str | None:
        calls.append(name)
        if fake:
            fake.seconds += seconds
        return outcome

    return Step(name, run, timeout_seconds=30)


def test_steps_run_in_order_with_their_start_time_and_duration() -> None:
    fake, calls = FakeTime(), []
    steps = [_step("a", calls, 2.5, fake, "did a"), _step("b", calls, 1.0, fake)]
    result = Operation("recover", steps, clock=fake.clock, timer=fake.timer).run()
    assert calls == ["a", "b"]
    assert [(s.name, s.status, s.detail) for s in result.steps] == [
        ("a", "passed", "did a"), ("b", "passed", "")]
    assert result.steps[0].started_at == T0
    assert result.steps[0].duration_seconds == 2.5
    assert result.steps[1].started_at == T0 + timedelta(seconds=2.5)
    assert result.status == "passed" and result.failed_step is None


def test_a_failed_step_stops_the_run_and_names_the_next_action() -> None:
    calls: list[str] = []

    def broken(_ctx: StepContext) -> None:
        raise OperationFailed("pg_restore failed (exit 1): disk full")

    steps = [_step("a", calls), Step("restore_database", broken, 30, on_failure="free space"),
             _step("c", calls)]
    result = Operation("recover", steps).run()
    assert calls == ["a"]
    assert [s.status for s in result.steps] == ["passed", "failed"]
    assert result.status == "failed"
    assert result.failed_step == "restore_database"
    assert "disk full" in result.next_action and "free space" in result.next_action


def test_an_unexpected_exception_is_recorded_with_its_type() -> None:
    def broken(_ctx: StepContext) -> None:
        raise KeyError("bucket")

    result = Operation("recover", [Step("x", broken, 30)]).run()
    assert result.steps[0].status == "failed"
    assert result.steps[0].detail.startswith("KeyError")


def test_skip_is_recorded_as_skipped_and_does_not_fail_the_run() -> None:
    def nothing(_ctx: StepContext) -> None:
        raise Skip("buckets intact", {"buckets": []})

    result = Operation("recover", [Step("restore_buckets", nothing, 30)]).run()
    assert result.steps[0].status == "skipped"
    assert result.steps[0].detail == "buckets intact"
    assert result.steps[0].data == {"buckets": []}
    assert result.status == "passed"


def test_a_step_over_its_timeout_fails_with_a_timeout_detail() -> None:
    release = threading.Event()

    def hangs(_ctx: StepContext) -> None:
        release.wait(10)

    result = Operation("recover", [Step("wait", hangs, timeout_seconds=0.2)]).run()
    release.set()
    assert result.steps[0].status == "failed"
    assert "timed out after" in result.steps[0].detail


def test_later_steps_see_earlier_steps_data() -> None:
    seen: dict[str, object] = {}

    def first(_ctx: StepContext) -> Outcome:
        return Outcome("chose", {"backup": "scheduled_backup_20260105_020000"})

    def second(ctx: StepContext) -> None:
        seen.update(ctx.data("assess"))

    Operation("recover", [Step("assess", first, 30), Step("restore", second, 30)]).run()
    assert seen == {"backup": "scheduled_backup_20260105_020000"}


def test_a_rerun_after_a_failure_continues_from_the_failed_step(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    calls: list[str] = []
    attempts = {"n": 0}

    def flaky(_ctx: StepContext) -> str:
        attempts["n"] += 1
        calls.append("b")
        if attempts["n"] == 1:
            raise OperationFailed("S3 unreachable")
        return "ok now"

    steps = [_step("a", calls, outcome=Outcome("a", {"k": 1})), Step("b", flaky, 30),
             _step("c", calls)]
    first = Operation("recover", steps, params={"scenario": "complete"}, state_path=state).run()
    assert first.failed_step == "b" and state.exists()
    second = Operation("recover", steps, params={"scenario": "complete"},
                       state_path=state).run()
    assert calls == ["a", "b", "b", "c"]
    assert [(s.name, s.status, s.resumed) for s in second.steps] == [
        ("a", "passed", True), ("b", "passed", False), ("c", "passed", False)]
    assert second.steps[0].data == {"k": 1}
    assert not state.exists()  # a finished run leaves no state behind


def test_a_run_killed_mid_step_resumes_at_that_step(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    calls: list[str] = []

    def dies(_ctx: StepContext) -> None:
        raise KeyboardInterrupt  # the process is going away mid-step

    with pytest.raises(KeyboardInterrupt):
        Operation("recover", [_step("a", calls), Step("b", dies, 30)],
                  state_path=state).run()
    pending = Operation("recover", [], state_path=state).pending()
    assert pending is not None and pending.current == "b"
    assert [r.name for r in pending.done] == ["a"]
    result = Operation("recover", [_step("a", calls), _step("b", calls)],
                       state_path=state).run()
    assert calls == ["a", "b"]
    assert [s.resumed for s in result.steps] == [True, False]


def test_a_pending_run_with_other_parameters_is_a_conflict(tmp_path: Path) -> None:
    state = tmp_path / "state.json"

    def broken(_ctx: StepContext) -> None:
        raise OperationFailed("no")

    Operation("recover", [Step("a", broken, 30)], params={"scenario": "database"},
              state_path=state).run()
    with pytest.raises(Conflict, match="scenario=database"):
        Operation("recover", [Step("a", broken, 30)], params={"scenario": "objects"},
                  state_path=state).run()


def test_discard_forgets_the_pending_run(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    calls: list[str] = []

    def broken(_ctx: StepContext) -> None:
        raise OperationFailed("no")

    Operation("recover", [_step("a", calls), Step("b", broken, 30)], state_path=state).run()
    op = Operation("recover", [_step("a", calls), _step("b", calls)], state_path=state)
    op.discard()
    op.run()
    assert calls == ["a", "a", "b"]


def test_a_second_concurrent_run_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    inside, release = threading.Event(), threading.Event()

    def blocks(_ctx: StepContext) -> None:
        inside.set()
        release.wait(10)

    first = Operation("recover", [Step("a", blocks, 30)], state_path=state)
    runner = threading.Thread(target=first.run)
    runner.start()
    inside.wait(10)
    try:
        with pytest.raises(Conflict, match="another recover is running"):
            Operation("recover", [Step("a", blocks, 30)], state_path=state).run()
    finally:
        release.set()
        runner.join()


def test_duplicate_step_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="unique"):
        Operation("x", [Step("a", lambda _c: None, 1), Step("a", lambda _c: None, 1)])
