"""RPO maths: writes lost and seconds of history lost, from the writer's acknowledged writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autograph.dr.drill.rpo import AckedWrite, data_loss, parse_log
from autograph.errors import InvalidInput

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _writes(count: int, kind: str = "database", step: float = 1.0) -> list[AckedWrite]:
    return [AckedWrite(kind, f"w{i}", T0 + timedelta(seconds=i * step), f"fp{i}")  # type: ignore[arg-type]
            for i in range(count)]


def test_nothing_lost_is_zero_seconds() -> None:
    writes = _writes(5)
    loss = data_loss("database", writes, {w.key: w.fingerprint for w in writes})
    assert (loss.acknowledged, loss.lost, loss.seconds) == (5, 0, 0.0)
    assert loss.recovery_point == loss.last_acknowledged == T0 + timedelta(seconds=4)


def test_writes_after_the_backup_are_lost_and_the_window_is_measured() -> None:
    writes = _writes(10)  # w0..w9 at 0..9 s; the backup kept w0..w5
    survived = {f"w{i}": f"fp{i}" for i in range(6)}
    loss = data_loss("database", writes, survived)
    assert loss.lost == 4
    assert loss.recovery_point == T0 + timedelta(seconds=5)
    assert loss.seconds == 4.0  # from w5 (last kept) to w9 (last acknowledged)
    assert loss.lost_sample == ["w6", "w7", "w8", "w9"]


def test_an_older_backup_costs_more() -> None:
    writes = _writes(10)
    newer = data_loss("object", [AckedWrite("object", w.key, w.at) for w in writes],
                      {f"w{i}": None for i in range(8)})
    older = data_loss("object", [AckedWrite("object", w.key, w.at) for w in writes],
                      {f"w{i}": None for i in range(3)})
    assert older.lost > newer.lost
    assert older.seconds > newer.seconds


def test_only_writes_of_the_asked_kind_count() -> None:
    writes = _writes(3, "database") + _writes(4, "object")
    loss = data_loss("object", writes, {})
    assert loss.acknowledged == 4 and loss.lost == 4


def test_writes_after_the_failure_do_not_count_toward_the_rpo() -> None:
    writes = _writes(6)
    survived = {f"w{i}": f"fp{i}" for i in range(4)}
    loss = data_loss("database", writes, survived, failure_at=T0 + timedelta(seconds=3.5))
    assert (loss.acknowledged, loss.lost, loss.after_failure) == (4, 0, 2)


def test_a_changed_fingerprint_counts_as_lost() -> None:
    writes = _writes(3)
    survived = {"w0": "fp0", "w1": "other", "w2": "fp2"}
    loss = data_loss("object", [AckedWrite("object", w.key, w.at, w.fingerprint)
                                for w in writes], survived)
    assert loss.lost == 1 and loss.changed == 1


def test_an_overwritten_key_needs_only_its_last_fingerprint() -> None:
    writes = [AckedWrite("object", "k", T0, "v1"),
              AckedWrite("object", "k", T0 + timedelta(seconds=1), "v2")]
    assert data_loss("object", writes, {"k": "v2"}).lost == 0
    lost = data_loss("object", writes, {"k": "v1"})
    assert lost.lost == 1 and lost.recovery_point == T0


def test_a_hole_in_the_middle_sets_the_recovery_point_before_it() -> None:
    writes = _writes(6)
    survived = {k: None for k in ("w0", "w1", "w3", "w4", "w5")}
    loss = data_loss("database", writes, survived)
    assert loss.lost == 1
    assert loss.recovery_point == T0 + timedelta(seconds=1)
    assert loss.seconds == 4.0


def test_the_log_round_trips_and_a_torn_last_line_is_ignored() -> None:
    writes = _writes(3, "object")
    lines = [w.to_json() for w in writes] + ['{"kind": "obj']
    assert parse_log(lines) == writes


def test_a_malformed_line_in_the_middle_is_an_error() -> None:
    lines = [_writes(1)[0].to_json(), "not json", _writes(1)[0].to_json()]
    with pytest.raises(InvalidInput, match="line 2"):
        parse_log(lines)


@given(st.lists(st.booleans(), min_size=1, max_size=40))
def test_loss_counts_and_window_are_consistent(kept: list[bool]) -> None:
    writes = _writes(len(kept))
    survived = {w.key: w.fingerprint for w, k in zip(writes, kept, strict=True) if k}
    loss = data_loss("database", writes, survived)
    assert loss.lost == kept.count(False)
    assert 0.0 <= loss.seconds <= len(kept) - 1
    if all(kept):
        assert loss.seconds == 0.0
