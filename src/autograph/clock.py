"""An injectable notion of "now", so retention, schedules and RPO maths are testable."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


def fixed_clock(at: datetime) -> Clock:
    """Return a clock that always answers ``at`` (for tests)."""
    return lambda: at


def isoformat(moment: datetime) -> str:
    """Format an aware datetime as ISO 8601 UTC with a trailing ``Z``."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
