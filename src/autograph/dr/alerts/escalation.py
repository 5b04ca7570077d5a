"""Escalation by elapsed time: the plan's path from the operations channel to the technical
lead to the coordinator while an alert stays active and nobody has taken it.

The path is a setting (``AUTOGRAPH_ALERT_ESCALATION``), a JSON list of ``[minutes, level]``
or ``[minutes, level, [channel, ...]]``, minutes strictly increasing from 0, e.g.
``[[0, "operations", ["slack"]], [30, "lead", ["email"]], [60, "coordinator"]]``. The level due
at 0 minutes is named on the alert's first notice; each later level is sent once, as an
``escalated`` notice on its channels (none named: every channel), when the alert has been
firing that long and is neither acknowledged since it started nor silenced now. These are pure
functions of the alert, the path, the acknowledgement and the time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from autograph.dr.alerts.acks import AlertAck
from autograph.dr.alerts.models import Alert


class EscalationLevel(BaseModel):
    """From ``minutes`` after an alert started, ``recipient`` (a level name) is notified."""

    model_config = ConfigDict(frozen=True)

    minutes: float = Field(ge=0)
    recipient: str = Field(min_length=1, max_length=64)
    channels: tuple[str, ...] = Field(default=(), description="empty: every channel")


def path_from(levels: Sequence[tuple[Any, ...]]) -> tuple[EscalationLevel, ...]:
    """The levels from the setting's ``(minutes, level[, channels])`` entries (checked by the
    settings: minutes from 0 strictly increasing, distinct names, known channels)."""
    return tuple(EscalationLevel(minutes=level[0], recipient=level[1],
                                 channels=tuple(level[2]) if len(level) > 2 else ())
                 for level in levels)


def held(alert: Alert, ack: AlertAck | None, now: datetime) -> bool:
    """True when someone has the alert: acknowledged since it started, or silenced now."""
    if ack is None:
        return False
    if ack.silenced_until is not None and ack.silenced_until > now:
        return True
    return ack.at >= alert.started_at


def initial(levels: Sequence[EscalationLevel]) -> EscalationLevel | None:
    """The level named on an alert's first notice (the one due at 0 minutes), if any."""
    return levels[0] if levels and levels[0].minutes == 0 else None


def due(alert: Alert, levels: Sequence[EscalationLevel], ack: AlertAck | None,
        now: datetime) -> EscalationLevel | None:
    """The highest level now due for ``alert`` and not yet sent, or None (resolved, held,
    or nothing new). Levels skipped over (a gateway down for an hour) are not sent one by
    one: the highest due one is, once."""
    if alert.status != "firing" or held(alert, ack, now):
        return None
    elapsed = now - alert.started_at
    reached = [lv for lv in levels if elapsed >= timedelta(minutes=lv.minutes)]
    if not reached:
        return None
    top = reached[-1]
    sent = set(alert.escalations)
    if top.recipient in sent or any(lv.recipient in sent for lv in levels[levels.index(top):]):
        return None
    return top
