"""Alerts and the Channel protocol every notification channel implements."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from autograph.clock import isoformat

Severity = Literal["critical", "warning"]
Status = Literal["firing", "resolved", "escalated"]


class Alert(BaseModel):
    """One occurrence of an alert condition, from when it started to when it ended.

    ``key`` identifies the condition (``"backup_failed:database"``); a key fires at most once
    until it is resolved. ``rule`` names the kind of check (``"backup_failed"``).
    """

    model_config = ConfigDict(frozen=True)

    key: str
    rule: str
    severity: Severity
    message: str
    details: dict[str, JsonValue] = {}
    started_at: datetime
    resolved_at: datetime | None = None
    status: Status = "firing"
    level: str | None = Field(default=None, description="the escalation level this notice "
                              "is for (AUTOGRAPH_ALERT_ESCALATION), if any")
    escalations: tuple[str, ...] = Field(default=(), description="levels notified so far")

    def subject(self) -> str:
        """One line for an e-mail subject or a chat message's first line."""
        to = f" to {self.level}" if self.level and self.status != "resolved" else ""
        return f"[AutoGraph] {self.status.upper()}{to} {self.severity}: {self.key}"

    def text(self) -> str:
        """A few human-readable lines: what happened, when, and the details."""
        lines = [self.subject(), self.message, f"started: {isoformat(self.started_at)}"]
        if self.resolved_at is not None:
            minutes = (self.resolved_at - self.started_at).total_seconds() / 60
            lines.append(f"resolved: {isoformat(self.resolved_at)} (after {minutes:.1f} min)")
        if self.status == "escalated":
            lines.append(f"escalated to: {self.level} (still active, not acknowledged)")
        if self.details:
            lines.append("details: " + json.dumps(self.details, sort_keys=True))
        return "\n".join(lines)

    def json_line(self) -> str:
        """The alert as one line of JSON (no newline), as console and file channels write it."""
        return self.model_dump_json()


class Channel(Protocol):
    """Somewhere alerts are delivered: console, file, e-mail, Slack.

    ``send`` delivers one alert (firing or resolved) or raises; it may block up to its own
    timeout. Errors it raises must not contain secrets (passwords, webhook URLs): the dispatcher
    logs the message of an ``AutographError`` and only the type of any other exception.
    """

    name: str

    def send(self, alert: Alert) -> None:
        """Deliver one alert notice; raise on failure."""
        ...


class Notification(BaseModel):
    """One notice handed to one channel, and whether it was delivered (the notification
    timeline a recovery report keeps)."""

    at: datetime
    channel: str
    key: str
    status: Status
    severity: Severity
    level: str | None = None
    delivered: bool
    message: str
