"""Acknowledged and silenced alerts (``dr/alert-acks.json``), set from the DR console.

Acknowledging says "someone is on it"; silencing for a time also keeps the alert off the
console's list of things needing attention until then. Both are kept per alert key and shown
beside the alert; the monitor still raises and resolves it (the record stays honest).
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import BaseModel

FILE_NAME = "alert-acks.json"


class AlertAck(BaseModel):
    """Who acknowledged an alert key, when, and until when it is silenced (if at all)."""

    key: str
    by: str
    at: datetime
    silenced_until: datetime | None = None
    note: str = ""


def load(dr_dir: Path) -> dict[str, AlertAck]:
    """Every acknowledgement by alert key (empty when none or unreadable)."""
    try:
        raw = json.loads((dr_dir / FILE_NAME).read_text())
        return {k: AlertAck.model_validate(v) for k, v in raw.items()}
    except (OSError, ValueError, AttributeError):
        return {}


def record(dr_dir: Path, key: str, by: str, now: datetime,
           silence: timedelta | None = None, note: str = "") -> AlertAck:
    """Acknowledge ``key`` (and silence it for ``silence``); replaces an earlier record."""
    acks = load(dr_dir)
    ack = AlertAck(key=key, by=by, at=now, note=note,
                   silenced_until=now + silence if silence else None)
    acks[key] = ack
    dr_dir.mkdir(parents=True, exist_ok=True)
    tmp = dr_dir / (FILE_NAME + ".tmp")
    tmp.write_text(json.dumps({k: v.model_dump(mode="json") for k, v in acks.items()}))
    os.replace(tmp, dr_dir / FILE_NAME)
    return ack
