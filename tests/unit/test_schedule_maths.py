"""The pure schedule maths: when the next run is due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from autograph.dr.scheduler import next_run

T0 = datetime(2024, 3, 10, 2, 0, tzinfo=UTC)
DAY = timedelta(days=1)
DELAY = timedelta(seconds=30)
HOUR = timedelta(hours=1)


def test_first_run_is_due_shortly_after_start() -> None:
    assert next_run(None, DAY, started_at=T0, startup_delay=DELAY) == T0 + DELAY


def test_a_restart_just_after_a_run_waits_the_whole_interval() -> None:
    last = T0 - timedelta(minutes=1)
    assert next_run(last, DAY, started_at=T0, startup_delay=DELAY) == last + DAY


def test_a_run_missed_while_down_is_due_soon_after_start() -> None:
    last = T0 - 3 * DAY
    assert next_run(last, DAY, started_at=T0, startup_delay=DELAY) == T0 + DELAY


def test_a_failure_after_the_last_success_waits_for_the_retry_delay() -> None:
    last = T0 - 2 * DAY
    failed = T0 + timedelta(minutes=5)
    due = next_run(last, DAY, started_at=T0, startup_delay=DELAY, failed_at=failed, retry=HOUR)
    assert due == failed + HOUR


def test_a_failure_older_than_the_last_success_is_ignored() -> None:
    last = T0 - HOUR
    due = next_run(last, DAY, started_at=T0, startup_delay=DELAY, failed_at=last - HOUR,
                   retry=HOUR)
    assert due == last + DAY


@given(
    last_offset=st.integers(min_value=-40 * 86400, max_value=86400),
    interval=st.integers(min_value=60, max_value=8 * 86400),
    delay=st.integers(min_value=0, max_value=600),
)
def test_never_earlier_than_start_delay_nor_than_one_interval_after_the_last(
        last_offset: int, interval: int, delay: int) -> None:
    last = T0 + timedelta(seconds=last_offset)
    every, wait = timedelta(seconds=interval), timedelta(seconds=delay)
    due = next_run(last, every, started_at=T0, startup_delay=wait)
    assert due >= T0 + wait
    assert due >= last + every
    assert due in (T0 + wait, last + every)  # never later than needed either
