"""What the monitor watches, as data: probed components, sources expected to be backed up, and
how an alert key names what it is about."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from autograph.dr.models import Kind
from autograph.stack.health import Health

Role = Literal["database", "s3", "backup_s3", "service"]


@dataclass(frozen=True)
class Watched:
    """A probed component and what its failure means."""

    name: str
    role: Role
    probe: Callable[[], Health]


@dataclass(frozen=True)
class Expected:
    """A source that should get a successful backup at least every ``interval``."""

    kind: Kind
    source: str
    interval: timedelta


def subject(kind: str, source: str | None) -> str:
    """The part of an alert key naming what it is about: ``database`` or ``bucket:<name>``."""
    return kind if kind == "database" or not source else f"{kind}:{source}"


def hours(delta: timedelta) -> str:
    """``delta`` in hours with one decimal, for alert messages."""
    return f"{delta.total_seconds() / 3600:.1f} h"
