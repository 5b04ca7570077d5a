"""The recovery report's restore phase: the union of the restore commands' intervals, so
restores that ran at the same time are counted once (what bench/dr_rto.py subtracts)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from autograph.clock import isoformat
from autograph.dr.models import StepRecord
from autograph.dr.recovery.report import RecoveryReport

T0 = datetime(2026, 12, 2, 9, 0, 0, tzinfo=UTC)


def _at(seconds: float) -> str:
    return isoformat(T0 + timedelta(seconds=seconds))


def _report(database: tuple[float, float], buckets: dict[str, tuple[float, float]],
            bucket_status: str = "passed") -> RecoveryReport:
    steps = [
        StepRecord(name="restore_database", started_at=T0, duration_seconds=database[1],
                   data={"started_at": _at(database[0]), "finished_at": _at(database[1])}),
        StepRecord(name="restore_buckets", started_at=T0, duration_seconds=1.0,
                   status=bucket_status,  # type: ignore[arg-type]
                   data={"buckets": {b: {"started_at": _at(s), "finished_at": _at(e)}
                                     for b, (s, e) in buckets.items()}}),
    ]
    return RecoveryReport(scenario="complete", params={}, status="passed", started_at=T0,
                          finished_at=T0 + timedelta(seconds=60), steps=steps)


def test_overlapping_restores_count_once() -> None:
    report = _report((1.0, 4.0), {"diagrams": (1.5, 17.0), "exports": (1.5, 9.0)})
    assert report.restore_phase_seconds() == 16.0  # 1.0 .. 17.0


def test_restores_one_after_another_add_up_and_a_gap_is_not_counted() -> None:
    report = _report((0.0, 3.0), {"diagrams": (5.0, 9.0), "exports": (9.0, 10.5)})
    assert report.restore_phase_seconds() == 8.5  # 3 + 4 + 1.5; 3..5 is orchestration


def test_a_restore_inside_another_adds_nothing() -> None:
    report = _report((0.0, 10.0), {"exports": (2.0, 5.0)})
    assert report.restore_phase_seconds() == 10.0


def test_a_failed_bucket_step_contributes_no_interval() -> None:
    report = _report((0.0, 3.0), {"exports": (2.0, 20.0)}, bucket_status="failed")
    assert report.restore_intervals() == [(T0, T0 + timedelta(seconds=3))]
    assert report.restore_phase_seconds() == 3.0
